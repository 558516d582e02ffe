/**
 * One SMTP client connection: a socket (plain, STARTTLS-upgraded or implicit TLS), the reply
 * reader, and awaitable steps with a deadline each (read a reply, send commands, write body
 * bytes with backpressure, upgrade to TLS, QUIT).
 *
 * Purpose: the transport of one client session. What to send and what a reply means belongs
 * to deliver.ts; this module knows sockets, bytes, replies and time limits.
 *
 * Invariants
 * - Every failure (connect error, socket error, close, timeout, malformed reply) is recorded
 *   once as a `SmtpClientError`; from then on every step rejects with it, and the sockets are
 *   destroyed. A step's promise exists only while it is awaited, so no rejection goes unhandled,
 *   and every socket has an 'error' listener for its whole life.
 * - `destroy()` may be called at any time and more than once; `quit()` never rejects.
 * - Steps are used one at a time (the session is sequential); pipelined replies simply queue up.
 *
 * Security: the server is untrusted. Replies are bounded by the reply reader (line length and
 * line count); bytes received but not yet asked for are bounded too (the socket is paused past
 * MAX_UNREAD_BYTES, so a server that floods us waits in its own buffers). Bytes that arrive
 * between the 220 to STARTTLS and the handshake are discarded, never read as replies (rfc3207
 * 4.2 and 6: the client forgets what it learnt before TLS; the client side of CVE-2011-0411).
 * Commands are checked for CR and LF before they are written, so no text can add a command.
 *
 * Standards: rfc5321 3.8 and 4.5.3.2 (timeouts), 4.2 (replies), rfc3207 (STARTTLS),
 * rfc8314 (implicit TLS for submission to a smarthost).
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, rootCertificates, type ConnectionOptions } from 'node:tls';
import type { Logger } from '../../log/logger.js';
import { ReplyReader, type SmtpClientReply } from './reply.js';

export type SmtpClientErrorKind =
  /** The TCP connection could not be made (refused, unreachable, connect timeout). */
  | 'connect'
  /** No reply or no progress within the stage's time limit. */
  | 'timeout'
  /** The server closed the connection or it broke (reset, EPIPE). */
  | 'closed'
  /** The server sent something that is not a reply, or too much of it. */
  | 'protocol'
  /** The TLS handshake failed (including an unverifiable certificate when verification is on). */
  | 'tls';

export class SmtpClientError extends Error {
  constructor(
    readonly kind: SmtpClientErrorKind,
    message: string,
    /** The system error code when there is one (ECONNREFUSED, ECONNRESET, ...). */
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'SmtpClientError';
  }
}

export interface ClientTlsOptions {
  /** The name the certificate must carry (the MX host name), also sent as SNI unless an IP. */
  servername: string;
  /** Verify the certificate chain and name; false = encrypt without authenticating (opportunistic). */
  verify: boolean;
  /** Extra trusted CA certificates (PEM), added to Node's bundled roots. */
  ca?: Array<string | Buffer>;
  handshakeMs: number;
}

export interface ConnectOptions {
  /** The server's name, for logs and, under TLS, the certificate check. */
  host: string;
  /** The IP address to connect to. */
  address: string;
  port: number;
  localAddress?: string;
  connectMs: number;
  /** Implicit TLS from the first byte (rfc8314 3.3), e.g. a smarthost on port 465. */
  implicitTls?: ClientTlsOptions | null;
  log?: Logger;
}

export interface TlsInfo {
  version: string;
  cipher: string;
  /** The certificate chain and name were verified. */
  authorized: boolean;
  /** Why not, when not (for logs). */
  authorizationError: string | null;
}

/** Bytes received and not yet asked for, past which the socket is paused. */
const MAX_UNREAD_BYTES = 256 * 1024;

interface Waiter {
  resolve: () => void;
  reject: (err: SmtpClientError) => void;
  timer: NodeJS.Timeout;
}

export class SmtpClientConnection {
  readonly host: string;
  readonly address: string;
  readonly port: number;
  private readonly log: Logger | undefined;
  /** The TCP socket. */
  private raw: Socket;
  /** The socket read and written: `raw`, or the TLS socket over it. */
  private active: Socket;
  private tlsInfo: TlsInfo | null = null;
  private reader = new ReplyReader();
  private failure: SmtpClientError | null = null;
  /** Woken when a reply arrives, the socket drains, or the connection fails. */
  private waiter: Waiter | null = null;

  private constructor(options: ConnectOptions, raw: Socket, active: Socket) {
    this.host = options.host;
    this.address = options.address;
    this.port = options.port;
    this.log = options.log;
    this.raw = raw;
    this.active = active;
  }

  /** `host[address]:port`, as Postfix names a peer in its logs. */
  get peer(): string {
    return `${this.host}[${this.address}]:${this.port}`;
  }

  get tls(): TlsInfo | null {
    return this.tlsInfo;
  }

  get failed(): SmtpClientError | null {
    return this.failure;
  }

  /** Opens the connection (and, for implicit TLS, completes the handshake). */
  static connect(options: ConnectOptions): Promise<SmtpClientConnection> {
    return new Promise((resolve, reject) => {
      const raw = netConnect({
        host: options.address,
        port: options.port,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      });
      let settled = false;
      const timer = setTimeout(() => {
        finish(new SmtpClientError('connect', `connect to ${options.host}[${options.address}]:${options.port}: Connection timed out`, 'ETIMEDOUT'));
      }, options.connectMs);
      const finish = (err: SmtpClientError | null, conn?: SmtpClientConnection): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        raw.off('connect', onConnect);
        if (err !== null) {
          raw.destroy();
          reject(err);
        } else {
          resolve(conn!);
        }
      };
      // Stays for the socket's life: the connection's own listeners come on top of it.
      raw.on('error', (err: NodeJS.ErrnoException) => {
        finish(
          new SmtpClientError('connect', `connect to ${options.host}[${options.address}]:${options.port}: ${describeSystemError(err)}`, err.code ?? null),
        );
      });
      const onConnect = (): void => {
        raw.setNoDelay(true);
        if (!options.implicitTls) {
          finish(null, new SmtpClientConnection(options, raw, raw).attach());
          return;
        }
        const conn = new SmtpClientConnection(options, raw, raw);
        clearTimeout(timer);
        conn.handshake(options.implicitTls).then(
          () => finish(null, conn.attach()),
          (err: SmtpClientError) => finish(err),
        );
      };
      raw.once('connect', onConnect);
    });
  }

  /** Installs the listeners of the active socket. */
  private attach(): this {
    const socket = this.active;
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('end', this.onEnd);
    socket.on('drain', this.onDrain);
    // The TLS socket's 'error' listener is installed by handshake() and forwards here.
    if (socket !== this.raw) this.raw.on('close', this.onClose);
    if (!this.raw.listeners('error').includes(this.onError)) this.raw.on('error', this.onError);
    return this;
  }

  private detach(): void {
    const socket = this.active;
    socket.off('data', this.onData);
    socket.off('close', this.onClose);
    socket.off('end', this.onEnd);
    socket.off('drain', this.onDrain);
    // 'error' listeners stay: a late error on a socket being replaced must not go uncaught.
  }

  private readonly onData = (chunk: Buffer): void => {
    // Parsed only when a step asks for a reply: bytes after the 220 to STARTTLS must be thrown
    // away unread, not taken for replies (or for errors).
    this.reader.push(chunk);
    if (this.reader.unparsedBytes > MAX_UNREAD_BYTES) this.active.pause();
    this.wake();
  };

  private readonly onError = (err: NodeJS.ErrnoException): void => {
    this.fail(new SmtpClientError('closed', describeSystemError(err), err.code ?? null));
  };

  private readonly onEnd = (): void => {
    this.fail(new SmtpClientError('closed', 'lost connection'));
  };

  private readonly onClose = (): void => {
    this.fail(new SmtpClientError('closed', 'lost connection'));
  };

  private readonly onDrain = (): void => {
    this.wake();
  };

  private wake(): void {
    const w = this.waiter;
    if (w === null) return;
    this.waiter = null;
    clearTimeout(w.timer);
    w.resolve();
  }

  /** Records the first failure, wakes the waiting step with it and destroys the sockets. */
  private fail(err: SmtpClientError): void {
    if (this.failure !== null) return;
    this.failure = err;
    const w = this.waiter;
    this.waiter = null;
    if (w !== null) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.active.destroy();
    this.raw.destroy();
  }

  /** Waits for wake() or a failure, at most `ms`; a timeout fails the connection. */
  private wait(ms: number, what: string): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        // The waiter is cleared first, so fail() does not reject it a second time.
        const err = new SmtpClientError('timeout', `timed out ${what}`);
        this.fail(err);
        reject(err);
      }, ms);
      this.waiter = { resolve, reject, timer };
    });
  }

  /** The next reply, waiting at most `timeoutMs` for it. */
  async readReply(timeoutMs: number, what = 'waiting for a reply'): Promise<SmtpClientReply> {
    // One deadline for the whole reply: a server dribbling a byte at a time does not extend it.
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // Replies that arrived before a failure (a 421, then the close) are still read first.
      const next = this.reader.next();
      if (next !== null) {
        if (!next.ok) {
          this.fail(new SmtpClientError('protocol', next.detail));
          throw this.failure!;
        }
        return next.reply;
      }
      if (this.failure !== null) throw this.failure;
      if (this.active.isPaused()) this.active.resume();
      await this.wait(Math.max(1, deadline - Date.now()), what);
    }
  }

  /**
   * Writes command lines (CRLF added to each) in one write: one line in lock-step, or a
   * pipelined group (rfc2920 3.1). A line with CR or LF is refused (it would add a command).
   * Without error when the connection already failed: the next read reports it.
   */
  send(lines: string | string[], secret = false): void {
    const list = Array.isArray(lines) ? lines : [lines];
    for (const line of list) {
      if (/[\r\n]/.test(line)) throw new Error('SMTP command line contains CR or LF');
    }
    if (this.failure !== null) return;
    this.log?.debug({ event: 'smtp.client.send', peer: this.peer, lines: secret ? ['***'] : list.map(redactAuth) });
    this.active.write(list.map((l) => `${l}\r\n`).join(''));
  }

  /** Sends one command and reads its reply; `secret` keeps the line out of the debug log. */
  async command(line: string, timeoutMs: number, what: string, secret = false): Promise<SmtpClientReply> {
    this.send(line, secret);
    return this.readReply(timeoutMs, what);
  }

  /**
   * Writes body bytes; when the socket's buffer is full, waits for it to drain, at most
   * `timeoutMs` (rfc5321 4.5.3.2.5: the data block timeout, per send).
   */
  async writeData(chunk: Buffer, timeoutMs: number): Promise<void> {
    if (this.failure !== null) throw this.failure;
    if (chunk.length === 0) return;
    if (this.active.write(chunk)) return;
    const deadline = Date.now() + timeoutMs;
    while (this.active.writableNeedDrain) {
      await this.wait(Math.max(1, deadline - Date.now()), 'while sending message body');
    }
  }

  /**
   * Upgrades to TLS after the server's 220 to STARTTLS (rfc3207 4). Bytes the server sent
   * after that 220 are discarded. Rejects with kind 'tls' when the handshake fails; the
   * connection is then unusable (the caller may connect again without TLS).
   */
  async startTls(options: ClientTlsOptions): Promise<void> {
    if (this.failure !== null) throw this.failure;
    // rfc3207 4.2: nothing received before the handshake is kept.
    this.reader = new ReplyReader();
    this.detach();
    if (this.raw.isPaused()) this.raw.resume();
    try {
      await this.handshake(options);
    } catch (err) {
      this.fail(err as SmtpClientError);
      throw err;
    }
    this.attach();
  }

  /** Wraps `raw` in TLS; on success `active` is the TLS socket. */
  private handshake(options: ClientTlsOptions): Promise<void> {
    return new Promise((resolve, reject) => {
      const tlsOptions: ConnectionOptions = {
        socket: this.raw,
        rejectUnauthorized: options.verify,
        // The certificate is checked against the MX host name, not the address connected to.
        host: options.servername,
        minVersion: 'TLSv1.2',
      };
      if (isIP(options.servername) === 0) tlsOptions.servername = options.servername;
      if (options.ca && options.ca.length > 0) tlsOptions.ca = [...rootCertificates, ...options.ca];
      const secure = tlsConnect(tlsOptions);
      let settled = false;
      const done = (err: SmtpClientError | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        secure.off('secureConnect', onSecure);
        secure.off('close', onClose);
        if (err !== null) {
          secure.destroy();
          this.raw.destroy();
          reject(err);
          return;
        }
        this.active = secure;
        const cipher = secure.getCipher();
        this.tlsInfo = {
          version: secure.getProtocol() ?? 'TLS',
          cipher: cipher?.standardName ?? cipher?.name ?? 'unknown',
          authorized: secure.authorized,
          authorizationError: secure.authorizationError ? String(secure.authorizationError) : null,
        };
        resolve();
      };
      const timer = setTimeout(() => done(new SmtpClientError('tls', 'TLS handshake timed out')), options.handshakeMs);
      const onSecure = (): void => done(null);
      const onClose = (): void => done(new SmtpClientError('tls', 'connection closed during the TLS handshake'));
      // Stays for the socket's life (see attach): errors after the handshake go to fail().
      secure.on('error', (err: NodeJS.ErrnoException) => {
        if (!settled) done(new SmtpClientError('tls', `TLS handshake failed: ${err.message}`, err.code ?? null));
        else this.onError(err);
      });
      secure.once('secureConnect', onSecure);
      secure.once('close', onClose);
    });
  }

  /**
   * Sends QUIT and waits briefly for its reply (rfc5321 4.1.1.10), then closes. Never rejects:
   * the transaction's outcome is known already, so a slow or rude goodbye changes nothing.
   */
  async quit(timeoutMs: number): Promise<void> {
    if (this.failure === null) {
      try {
        await this.command('QUIT', timeoutMs, 'after QUIT');
      } catch {
        // Ignored: see above.
      }
    }
    this.destroy();
  }

  /** Closes both sockets now; pending and later steps reject. */
  destroy(): void {
    this.fail(new SmtpClientError('closed', 'connection closed by us'));
    this.active.destroy();
    this.raw.destroy();
  }
}

/** Hides the credentials of AUTH commands in debug logs. */
function redactAuth(line: string): string {
  return /^AUTH /i.test(line) ? line.replace(/^(AUTH \S+) .*/i, '$1 ***') : line;
}

const SYSTEM_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'Connection refused',
  ECONNRESET: 'Connection reset by peer',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  ETIMEDOUT: 'Connection timed out',
  EPIPE: 'Broken pipe',
  EADDRNOTAVAIL: 'Cannot assign requested address',
};

export function describeSystemError(err: NodeJS.ErrnoException): string {
  return (err.code !== undefined ? SYSTEM_ERRORS[err.code] : undefined) ?? err.message;
}
