/**
 * Our POP3 client (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH PLAIN, RFC 8314
 * implicit TLS), for collecting mail from remote mailboxes (DomainPOP, MultiPOP).
 *
 * Invariants
 * - Every step has a deadline; a failure (connect, TLS, timeout, close, malformed reply) is
 *   recorded once as a Pop3ClientError and every later step rejects with it.
 * - Memory is bounded whatever the server sends: a status line is at most MAX_LINE bytes, a
 *   listing at most MAX_LIST_ENTRIES lines, and a message body is streamed to the caller's sink
 *   (dot-unstuffed), never held whole; past `maxBytes` it is counted and dropped. Unread input
 *   past MAX_UNREAD pauses the socket.
 * - Bytes that arrive between +OK to STLS and the handshake are discarded (rfc2595 4, the client
 *   side of CVE-2011-0411), and the capabilities are asked again over TLS.
 * - The password never appears in an error or a log line.
 */
import { createHash } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

export type Pop3TlsMode = 'none' | 'starttls' | 'implicit';

export type Pop3ClientErrorKind =
  | 'connect'
  | 'tls'
  | 'timeout'
  | 'closed'
  /** The server sent something that is not POP3, or too much of it. */
  | 'protocol'
  /** The server refused the login. */
  | 'auth'
  /** The server answered -ERR to a command. */
  | 'refused';

export class Pop3ClientError extends Error {
  constructor(
    readonly kind: Pop3ClientErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'Pop3ClientError';
  }
}

export interface Pop3ClientOptions {
  host: string;
  port: number;
  tls: Pop3TlsMode;
  /** Verify the server certificate (name and chain); off only for self-signed ISP boxes. */
  verify: boolean;
  /** Extra trusted CA certificates (PEM). */
  ca?: Array<string | Buffer>;
  connectMs?: number;
  /** Deadline for each reply, and for progress while a message streams in. */
  commandMs?: number;
}

export interface Pop3Credentials {
  user: string;
  password: string;
  /** Log in with APOP (the server must offer a timestamp in its greeting). */
  apop?: boolean;
}

export interface Pop3Listing {
  number: number;
  size: number;
}

const MAX_LINE = 4096;
const MAX_LIST_ENTRIES = 1_000_000;
const MAX_UNREAD = 256 * 1024;

/** One POP3 session, used one command at a time. */
export class Pop3Client {
  private socket: Socket;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failure: Pop3ClientError | null = null;
  private wake: (() => void) | null = null;
  private capabilities: Set<string> | null = null;
  greeting = '';
  private constructor(
    socket: Socket,
    private readonly options: Pop3ClientOptions,
  ) {
    this.socket = socket;
    this.attach(socket);
  }

  get peer(): string {
    return `${this.options.host}:${this.options.port}`;
  }

  /** The server's IP address, for the Received line. */
  get remoteAddress(): string | null {
    return this.socket.remoteAddress ?? null;
  }

  /** The APOP timestamp of the greeting (`<...@...>`), when the server offers one. */
  get apopTimestamp(): string | null {
    return /<[^<>\s]*@[^<>\s]*>/.exec(this.greeting)?.[0] ?? null;
  }

  /** Connects, reads the greeting and, for STLS, upgrades to TLS before anything else. */
  static async connect(options: Pop3ClientOptions): Promise<Pop3Client> {
    const socket = await openSocket(options);
    const client = new Pop3Client(socket, options);
    try {
      client.greeting = (await client.status('greeting'))!;
      if (options.tls === 'starttls') await client.startTls();
      return client;
    } catch (e) {
      client.destroy();
      throw e;
    }
  }

  /** CAPA (rfc2449): the capability names, upper-cased; null when the server has no CAPA. */
  async capa(): Promise<Set<string> | null> {
    if (this.capabilities) return this.capabilities;
    const ok = await this.command('CAPA', { allowErr: true });
    if (ok === null) return null;
    const lines = await this.listLines();
    this.capabilities = new Set(lines.map((l) => l.trim().toUpperCase()).filter(Boolean));
    return this.capabilities;
  }

  async login(credentials: Pop3Credentials): Promise<void> {
    const { user, password } = credentials;
    if (/[\r\n\0]/.test(user) || /[\r\n\0]/.test(password)) throw new Pop3ClientError('auth', 'the login or password holds a line break or NUL');
    const denied = (step: string, text: string): Pop3ClientError =>
      new Pop3ClientError('auth', `${this.peer} refused the login of ${user} (${step}): ${text || '-ERR'}`);
    if (credentials.apop) {
      const stamp = this.apopTimestamp;
      if (!stamp) throw new Pop3ClientError('auth', `${this.peer} offers no APOP timestamp in its greeting; turn APOP off for this source`);
      const digest = createHash('md5').update(stamp + password, 'utf8').digest('hex');
      const reply = await this.command(`APOP ${user} ${digest}`, { allowErr: true, secret: true });
      if (reply === null) throw denied('APOP', this.lastErr);
      return;
    }
    const caps = await this.capa().catch(() => null);
    const sasl = [...(caps ?? [])].find((c) => c.startsWith('SASL '));
    if (sasl && sasl.split(/\s+/).includes('PLAIN')) {
      const token = Buffer.from(`\0${user}\0${password}`, 'utf8').toString('base64');
      const reply = await this.command(`AUTH PLAIN ${token}`, { allowErr: true, secret: true });
      if (reply !== null) return;
      // [AUTH] (rfc3206) says the credentials are wrong: trying them again with USER/PASS would
      // count twice against the account at the ISP. Other refusals fall back to USER/PASS.
      if (/^\[AUTH\]/i.test(this.lastErr)) throw denied('AUTH PLAIN', this.lastErr);
    }
    if ((await this.command(`USER ${user}`, { allowErr: true })) === null) throw denied('USER', this.lastErr);
    if ((await this.command(`PASS ${password}`, { allowErr: true, secret: true })) === null) throw denied('PASS', this.lastErr);
  }

  async stat(): Promise<{ count: number; size: number }> {
    const text = (await this.command('STAT'))!;
    const m = /^(\d+)\s+(\d+)/.exec(text);
    if (!m) throw this.fail(new Pop3ClientError('protocol', `${this.peer} answered STAT with "${clip(text)}"`));
    return { count: Number(m[1]), size: Number(m[2]) };
  }

  async list(): Promise<Pop3Listing[]> {
    await this.command('LIST');
    return (await this.listLines()).map((line) => {
      const m = /^(\d+)\s+(\d+)/.exec(line);
      if (!m) throw this.fail(new Pop3ClientError('protocol', `${this.peer} sent a malformed LIST line "${clip(line)}"`));
      return { number: Number(m[1]), size: Number(m[2]) };
    });
  }

  /** UIDL: message number → unique id; null when the server has no UIDL. */
  async uidl(): Promise<Map<number, string> | null> {
    if ((await this.command('UIDL', { allowErr: true })) === null) return null;
    const map = new Map<number, string>();
    for (const line of await this.listLines()) {
      // rfc1939 7: the unique-id is 1 to 70 characters in the range 0x21 to 0x7E.
      const m = /^(\d+)\s+([\x21-\x7e]{1,70})\s*$/.exec(line);
      if (!m) throw this.fail(new Pop3ClientError('protocol', `${this.peer} sent a malformed UIDL line "${clip(line)}"`));
      map.set(Number(m[1]), m[2]!);
    }
    return map;
  }

  /** TOP n 0: the header section (unstuffed), at most `maxBytes`; null when TOP is refused. */
  async top(number: number, maxBytes = 256 * 1024): Promise<Buffer | null> {
    if ((await this.command(`TOP ${number} 0`, { allowErr: true })) === null) return null;
    const parts: Buffer[] = [];
    let kept = 0;
    await this.readBody((chunk) => {
      if (kept >= maxBytes) return;
      const slice = chunk.subarray(0, maxBytes - kept);
      parts.push(Buffer.from(slice));
      kept += slice.length;
    });
    return Buffer.concat(parts);
  }

  /**
   * RETR: streams the message (dot-unstuffed, CRLF line ends as sent) to `sink`; bytes past
   * `maxBytes` are read and counted but not passed on. Returns the full size.
   */
  async retr(number: number, sink: (chunk: Buffer) => Promise<void> | void, maxBytes = Infinity): Promise<{ size: number; truncated: boolean }> {
    await this.command(`RETR ${number}`);
    let size = 0;
    await this.readBody(async (chunk) => {
      const room = maxBytes - size;
      size += chunk.length;
      if (room <= 0) return;
      await sink(room >= chunk.length ? chunk : chunk.subarray(0, room));
    });
    return { size, truncated: size > maxBytes };
  }

  async dele(number: number): Promise<void> {
    await this.command(`DELE ${number}`);
  }

  /** QUIT: true when the server answered +OK, i.e. its deletions took effect (rfc1939 6). */
  async quit(): Promise<boolean> {
    try {
      const ok = (await this.command('QUIT', { allowErr: true })) !== null;
      return ok;
    } catch {
      return false;
    } finally {
      this.destroy();
    }
  }

  destroy(): void {
    this.failure ??= new Pop3ClientError('closed', `connection to ${this.peer} closed`);
    this.socket.destroy();
    this.wakeUp();
  }

  // --- the transport --------------------------------------------------------------------

  private lastErr = '';

  /**
   * Sends one command and reads its status line. Returns the text after +OK; with `allowErr`,
   * null for -ERR (the text is kept in lastErr), else -ERR rejects with kind 'refused'.
   */
  private async command(line: string, opts: { allowErr?: boolean; secret?: boolean } = {}): Promise<string | null> {
    if (/[\r\n]/.test(line)) throw new Pop3ClientError('protocol', 'a command holds a line break');
    this.check();
    this.socket.write(line + '\r\n');
    const verb = opts.secret ? line.split(' ')[0]! : line;
    return this.status(verb, opts.allowErr ?? false);
  }

  private async status(what: string, allowErr = false): Promise<string | null> {
    const line = (await this.readLine()).toString('latin1');
    if (line.startsWith('+OK')) return line.slice(3).trim();
    if (line.startsWith('-ERR')) {
      this.lastErr = clip(line.slice(4).trim());
      if (allowErr) return null;
      throw new Pop3ClientError('refused', `${this.peer} answered ${what} with -ERR ${this.lastErr}`);
    }
    throw this.fail(new Pop3ClientError('protocol', `${this.peer} answered ${what} with "${clip(line)}", not +OK or -ERR`));
  }

  private async startTls(): Promise<void> {
    await this.command('STLS');
    // Anything already received came before the handshake: it is discarded, never read.
    this.chunks = [];
    this.buffered = 0;
    this.detach(this.socket);
    const raw = this.socket;
    const secure = await handshake(raw, this.options);
    this.socket = secure;
    this.attach(secure);
    this.capabilities = null;
  }

  /** The lines of a multi-line listing (CAPA, LIST, UIDL), terminator removed, unstuffed. */
  private async listLines(): Promise<string[]> {
    const lines: string[] = [];
    for (;;) {
      const raw = (await this.readLine()).toString('latin1');
      if (raw === '.') return lines;
      if (lines.length >= MAX_LIST_ENTRIES) throw this.fail(new Pop3ClientError('protocol', `${this.peer} sent too long a listing`));
      lines.push(raw.startsWith('.') ? raw.slice(1) : raw);
    }
  }

  /** Streams a multi-line body to `sink` until ".CRLF", undoing the dot-stuffing. */
  private async readBody(sink: (chunk: Buffer) => Promise<void> | void): Promise<void> {
    let atLineStart = true;
    /** A line start too short to tell a stuffed dot from the terminator, kept for the next chunk. */
    let held: Buffer | null = null;
    for (;;) {
      let chunk = await this.nextChunk();
      if (held) {
        chunk = Buffer.concat([held, chunk]);
        held = null;
      }
      let start = 0;
      const out: Buffer[] = [];
      let i = 0;
      let finished = false;
      while (i < chunk.length) {
        if (atLineStart) {
          if (chunk[i] === 0x2e) {
            // ".\r\n" (or ".\n") ends the body; any other leading dot is a stuffed one.
            const rest = chunk.length - i;
            if (rest === 1 || (rest === 2 && chunk[i + 1] === 0x0d)) {
              // Not enough bytes to tell: keep the line start for the next chunk.
              if (i > start) out.push(chunk.subarray(start, i));
              held = Buffer.from(chunk.subarray(i));
              start = chunk.length;
              i = chunk.length;
              break;
            }
            if (chunk[i + 1] === 0x0a || (chunk[i + 1] === 0x0d && chunk[i + 2] === 0x0a)) {
              if (i > start) out.push(chunk.subarray(start, i));
              const after = i + (chunk[i + 1] === 0x0a ? 2 : 3);
              if (after < chunk.length) this.unshift(chunk.subarray(after));
              start = i = chunk.length;
              finished = true;
              break;
            }
            if (i > start) out.push(chunk.subarray(start, i));
            start = i + 1; // drop the stuffed dot
          }
          atLineStart = false;
        }
        const lf = chunk.indexOf(0x0a, i);
        if (lf < 0) {
          i = chunk.length;
          break;
        }
        i = lf + 1;
        atLineStart = true;
      }
      if (start < chunk.length && !finished) out.push(chunk.subarray(start, Math.min(i, chunk.length)));
      for (const part of out) if (part.length > 0) await sink(part);
      if (finished) return;
    }
  }

  private async readLine(): Promise<Buffer> {
    for (;;) {
      const line = this.takeLine();
      if (line) return line;
      if (this.buffered > MAX_LINE) throw this.fail(new Pop3ClientError('protocol', `${this.peer} sent a line longer than ${MAX_LINE} bytes`));
      await this.waitForData();
    }
  }

  private takeLine(): Buffer | null {
    if (this.chunks.length === 0) return null;
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    const data = this.chunks[0]!;
    const lf = data.indexOf(0x0a);
    if (lf < 0) return null;
    if (lf > MAX_LINE) throw this.fail(new Pop3ClientError('protocol', `${this.peer} sent a line longer than ${MAX_LINE} bytes`));
    const end = lf > 0 && data[lf - 1] === 0x0d ? lf - 1 : lf;
    const line = data.subarray(0, end);
    this.consume(lf + 1);
    return line;
  }

  private async nextChunk(): Promise<Buffer> {
    while (this.chunks.length === 0) await this.waitForData();
    const chunk = this.chunks.shift()!;
    this.buffered -= chunk.length;
    if (this.buffered < MAX_UNREAD) this.socket.resume();
    return chunk;
  }

  /** Puts back bytes read past the end of a body (the start of the next reply). */
  private unshift(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.unshift(chunk);
    this.buffered += chunk.length;
  }

  private consume(n: number): void {
    const data = this.chunks[0]!;
    if (n >= data.length) this.chunks.shift();
    else this.chunks[0] = data.subarray(n);
    this.buffered -= n;
    if (this.buffered < MAX_UNREAD) this.socket.resume();
  }

  private waitForData(): Promise<void> {
    this.check();
    const ms = this.options.commandMs ?? 60_000;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.wake = null;
        reject(this.fail(new Pop3ClientError('timeout', `${this.peer} sent nothing for ${Math.round(ms / 1000)} s`)));
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        if (this.failure && this.chunks.length === 0) reject(this.failure);
        else resolve();
      };
    });
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  private fail(error: Pop3ClientError): Pop3ClientError {
    if (!this.failure) {
      this.failure = error;
      this.socket.destroy();
    }
    return this.failure;
  }

  private wakeUp(): void {
    this.wake?.();
  }

  private readonly onData = (chunk: Buffer): void => {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.buffered >= MAX_UNREAD) this.socket.pause();
    this.wakeUp();
  };

  private readonly onClose = (): void => {
    this.failure ??= new Pop3ClientError('closed', `${this.peer} closed the connection`);
    this.wakeUp();
  };

  private readonly onError = (err: Error): void => {
    this.failure ??= new Pop3ClientError('closed', `connection to ${this.peer} broke: ${err.message}`);
    this.wakeUp();
  };

  private attach(socket: Socket): void {
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
  }

  private detach(socket: Socket): void {
    socket.off('data', this.onData);
    socket.off('close', this.onClose);
    // The error listener stays, so a late error on the old socket is never uncaught.
  }
}

function openSocket(options: Pop3ClientOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const raw = netConnect({ host: options.host, port: options.port });
    const timer = setTimeout(() => {
      raw.destroy();
      reject(new Pop3ClientError('connect', `connect to ${options.host}:${options.port}: timed out`));
    }, options.connectMs ?? 30_000);
    raw.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new Pop3ClientError('connect', `connect to ${options.host}:${options.port}: ${err.code ?? err.message}`));
    });
    raw.once('connect', () => {
      clearTimeout(timer);
      raw.removeAllListeners('error');
      raw.on('error', () => {});
      raw.setNoDelay(true);
      if (options.tls !== 'implicit') return resolve(raw);
      handshake(raw, options).then(resolve, reject);
    });
  });
}

function handshake(raw: Socket, options: Pop3ClientOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const isIp = /^[\d.]+$|:/.test(options.host);
    const secure = tlsConnect({
      socket: raw,
      ...(isIp ? {} : { servername: options.host }),
      rejectUnauthorized: options.verify,
      ...(options.ca ? { ca: options.ca } : {}),
      minVersion: 'TLSv1.2',
    });
    const timer = setTimeout(() => {
      secure.destroy();
      reject(new Pop3ClientError('tls', `TLS handshake with ${options.host}:${options.port} timed out`));
    }, options.connectMs ?? 30_000);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      secure.removeAllListeners('error');
      secure.on('error', () => {});
      resolve(secure);
    });
    secure.once('error', (err) => {
      clearTimeout(timer);
      secure.destroy();
      const hint = options.verify ? ' (a self-signed server needs --insecure on this source)' : '';
      reject(new Pop3ClientError('tls', `TLS with ${options.host}:${options.port} failed: ${err.message}${hint}`));
    });
  });
}

function clip(text: string): string {
  const printable = text.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > 200 ? `${printable.slice(0, 200)}...` : printable;
}
