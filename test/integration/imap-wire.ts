/**
 * A raw IMAP client over node:net / node:tls for the integration tests that need exact control of
 * the bytes on the wire (hostile input, literals of every kind, pipelining after STARTTLS,
 * COMPRESS=DEFLATE), and the IMAP set-up helpers of the IMAP tests.
 *
 * Responses are read as the server sends them (rfc9051 2.2.2, 4.3, 7): a response line may end
 * in a literal announcement `{n}` CRLF, in which case n octets of literal data follow and the
 * line goes on after them; a response is complete at a CRLF that does not follow an
 * announcement. `+ ` continuation requests, untagged `* ` responses and tagged responses are
 * told apart by their first token. After COMPRESS, both directions go through raw deflate
 * (rfc4978: zlib without header, a sync flush after each of our writes).
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { constants as zlib, createDeflateRaw, createInflateRaw, type DeflateRaw, type InflateRaw } from 'node:zlib';
import type { FulmarProcess } from './harness.js';
import { connectSocket, WireSocket, type ConnectOptions } from './wire-socket.js';

/** One complete response: a line, with any literals it carries. */
export interface ImapResponse {
  /** The whole response as received, literal data included (latin1, one char per octet). */
  raw: string;
  /** The response (UTF-8) with each literal's data replaced by `{n}` (no CRLF): handy for matching. */
  text: string;
  /** The literal data, in order. */
  literals: Buffer[];
  kind: 'tagged' | 'untagged' | 'continuation';
  /** The tag of a tagged response. */
  tag: string | null;
}

/** A command's outcome: what came before the tagged response, and the tagged response. */
export interface ImapResult {
  tag: string;
  status: string;
  /** The response code in brackets, without them (`TOOBIG`, `APPENDUID 1 2`), or null. */
  code: string | null;
  /** Text after status and code. */
  text: string;
  tagged: ImapResponse;
  untagged: ImapResponse[];
  /** Untagged responses as their `text` form (literals shortened), for easy assertions. */
  lines: string[];
}

const CRLF = Buffer.from('\r\n');

export function parseTagged(r: ImapResponse): { status: string; code: string | null; text: string } {
  const m = /^\S+ (\S+)(?: \[([^\]]*)\])? ?(.*)$/s.exec(r.text);
  if (!m) return { status: '', code: null, text: r.text };
  return { status: m[1]!.toUpperCase(), code: m[2] ?? null, text: m[3]! };
}

export class ImapWire extends WireSocket {
  private joined: Buffer = Buffer.alloc(0);
  private parts: Buffer[] = [];
  private partsBytes = 0;
  /** Bytes needed before another look is worth it (a literal's end). */
  private need = 0;
  private tagCounter = 0;
  private deflate: DeflateRaw | null = null;
  private inflate: InflateRaw | null = null;
  /** Every byte received (after inflation), for the "nothing else happened" checks. */
  received = 0;
  protected accept(d: Buffer): void {
    if (this.inflate) {
      this.inflate.write(d);
      return;
    }
    this.take(d);
  }

  private constructor(socket: Socket | TLSSocket) {
    super(socket);
  }

  private take(d: Buffer): void {
    this.received += d.length;
    this.parts.push(d);
    this.partsBytes += d.length;
    // A large literal is joined once, when it is all there, not once per chunk.
    if (this.joined.length + this.partsBytes >= this.need) this.wake();
  }

  /** The unread bytes as one buffer. */
  private get buffer(): Buffer {
    if (this.parts.length > 0) {
      this.joined = Buffer.concat([this.joined, ...this.parts]);
      this.parts = [];
      this.partsBytes = 0;
    }
    return this.joined;
  }

  private set buffer(b: Buffer) {
    this.joined = b;
    this.parts = [];
    this.partsBytes = 0;
  }

  /** Opens a connection (implicit TLS with `tls`); does not read the greeting. */
  static async open(port: number, options: ConnectOptions = {}): Promise<ImapWire> {
    return new ImapWire(await connectSocket(port, options));
  }

  /** Opens a connection and checks the `* OK` greeting. */
  static async greeted(port: number, options: { tls?: boolean } = {}): Promise<ImapWire> {
    const w = await ImapWire.open(port, options);
    const greeting = await w.response();
    if (!greeting.text.startsWith('* OK')) throw new Error(`expected a * OK greeting, got ${greeting.raw}`);
    return w;
  }

  /** A logged-in connection over implicit TLS (LOGIN); `select` also selects a mailbox. */
  static async login(f: FulmarProcess, user: string, password = 'secret', select?: string): Promise<ImapWire> {
    const w = await ImapWire.greeted(f.ports.imaps, { tls: true });
    const r = await w.command(`LOGIN ${quote(user)} ${quote(password)}`);
    if (r.status !== 'OK') throw new Error(`login as ${user} failed: ${r.tagged.raw}`);
    if (select !== undefined) {
      const s = await w.command(`SELECT ${quote(select)}`);
      if (s.status !== 'OK') throw new Error(`SELECT ${select} failed: ${s.tagged.raw}`);
    }
    return w;
  }

  /** Bytes received and not read yet. */
  get pending(): Buffer {
    return this.buffer;
  }

  /** A fresh tag: A001, A002, ... */
  nextTag(): string {
    this.tagCounter++;
    return `A${String(this.tagCounter).padStart(3, '0')}`;
  }

  /** Sends raw bytes (through deflate once COMPRESS is active). */
  write(data: string | Buffer): void {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (this.deflate) {
      this.deflate.write(bytes);
      this.deflate.flush(zlib.Z_SYNC_FLUSH);
      return;
    }
    this.socket.write(bytes);
  }

  async writeAndDrain(data: string | Buffer): Promise<void> {
    if (this.deflate) {
      this.write(data);
      return;
    }
    await new Promise<void>((res, rej) => this.socket.write(data, (err) => (err ? rej(err) : res())));
  }

  private async waitFor<T>(take: () => T | null, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = take();
      if (got !== null) return got;
      if (this.ended) throw new Error(`connection closed while waiting (buffered: ${JSON.stringify(this.buffer.toString('latin1').slice(0, 2000))})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`nothing complete within ${timeoutMs} ms (buffered: ${JSON.stringify(this.buffer.toString('latin1').slice(0, 2000))})`);
      await this.nextWake(left);
    }
  }

  /** Takes one complete response from the buffer, or null when it is not all there yet. */
  private takeResponse(): ImapResponse | null {
    let pos = 0;
    const literals: Buffer[] = [];
    let text = '';
    for (;;) {
      const nl = this.buffer.indexOf(CRLF, pos);
      if (nl < 0) return null;
      const line = this.buffer.toString('utf8', pos, nl);
      const m = /\{(\d+)\}$/.exec(line);
      if (!m) {
        text += line;
        pos = nl + 2;
        break;
      }
      const n = Number(m[1]);
      const start = nl + 2;
      if (this.buffer.length < start + n) {
        this.need = start + n;
        return null;
      }
      literals.push(Buffer.from(this.buffer.subarray(start, start + n)));
      text += line;
      pos = start + n;
    }
    this.need = 0;
    const raw = this.buffer.toString('latin1', 0, pos);
    this.buffer = this.buffer.subarray(pos);
    const kind = text.startsWith('+') ? 'continuation' : text.startsWith('* ') ? 'untagged' : 'tagged';
    return { raw, text, literals, kind, tag: kind === 'tagged' ? text.split(' ', 1)[0]! : null };
  }

  /** Reads one complete response. */
  async response(timeoutMs = 10_000): Promise<ImapResponse> {
    return this.waitFor(() => this.takeResponse(), timeoutMs);
  }

  /** Reads responses until the tagged one for `tag`. */
  async until(tag: string, timeoutMs = 10_000): Promise<ImapResult> {
    const untagged: ImapResponse[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.response(Math.max(1, deadline - Date.now()));
      if (r.kind === 'tagged' && r.tag === tag) {
        const t = parseTagged(r);
        return { tag, ...t, tagged: r, untagged, lines: untagged.map((u) => u.text) };
      }
      if (r.kind === 'tagged') throw new Error(`tagged response for ${r.tag} while waiting for ${tag}: ${r.raw}`);
      if (r.kind === 'continuation') throw new Error(`unexpected continuation request while waiting for ${tag}: ${r.raw}`);
      untagged.push(r);
    }
  }

  /** Sends `tag command` CRLF (a fresh tag unless given) and reads through the tagged response. */
  async command(command: string, options: { tag?: string; timeoutMs?: number } = {}): Promise<ImapResult> {
    const tag = options.tag ?? this.nextTag();
    this.write(`${tag} ${command}\r\n`);
    return this.until(tag, options.timeoutMs);
  }

  /** Sends a raw line as is (CRLF added) and reads the next response, whatever it is. */
  async raw(line: string | Buffer, timeoutMs?: number): Promise<ImapResponse> {
    this.write(Buffer.concat([typeof line === 'string' ? Buffer.from(line, 'utf8') : line, CRLF]));
    return this.response(timeoutMs);
  }

  /** Waits for a `+` continuation request; anything else is an error. */
  async continuation(timeoutMs = 10_000): Promise<ImapResponse> {
    const r = await this.response(timeoutMs);
    if (r.kind !== 'continuation') throw new Error(`expected a continuation request, got ${r.raw}`);
    return r;
  }

  /**
   * Sends a command whose last argument is a synchronising literal: the text (ending in
   * `{n}`), waits for `+`, then the data and `after` (CRLF added). Returns the continuation
   * request or the tagged response if the server refused the literal.
   */
  async withLiteral(tag: string, head: string, data: Buffer | string, after = ''): Promise<ImapResult> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    this.write(`${tag} ${head} {${bytes.length}}\r\n`);
    const r = await this.response();
    if (r.kind === 'tagged') return { tag, ...parseTagged(r), tagged: r, untagged: [], lines: [] };
    if (r.kind !== 'continuation') throw new Error(`expected + or a tagged response, got ${r.raw}`);
    await this.writeAndDrain(bytes);
    this.write(`${after}\r\n`);
    return this.until(tag, 120_000);
  }

  /** APPEND with a synchronising literal; returns the tagged result. */
  async append(mailbox: string, message: Buffer | string, flags = ''): Promise<ImapResult> {
    const tag = this.nextTag();
    return this.withLiteral(tag, `APPEND ${quote(mailbox)}${flags ? ` (${flags})` : ''}`, message);
  }

  /** STARTTLS, its OK and the handshake. */
  async startTls(): Promise<ImapResult> {
    const r = await this.command('STARTTLS');
    if (r.status !== 'OK') throw new Error(`STARTTLS refused: ${r.tagged.raw}`);
    await this.upgrade();
    return r;
  }

  /**
   * COMPRESS DEFLATE (rfc4978): sends the command, reads the tagged OK in clear, then deflates
   * what we send and inflates what we receive. Returns the tagged result.
   */
  async compress(options: { pipelined?: string } = {}): Promise<ImapResult> {
    const deflate = createDeflateRaw();
    const tag = this.nextTag();
    if (options.pipelined !== undefined) {
      // rfc4978 3: what follows COMPRESS in the same write is already compressed.
      const compressed = await new Promise<Buffer>((res) => {
        const parts: Buffer[] = [];
        const onData = (c: Buffer): number => parts.push(c);
        deflate.on('data', onData);
        deflate.write(options.pipelined!);
        deflate.flush(zlib.Z_SYNC_FLUSH, () => {
          deflate.off('data', onData);
          res(Buffer.concat(parts));
        });
      });
      this.socket.write(Buffer.concat([Buffer.from(`${tag} COMPRESS DEFLATE\r\n`), compressed]));
    } else {
      this.socket.write(`${tag} COMPRESS DEFLATE\r\n`);
    }
    // The tagged OK comes in clear; nothing else may precede it.
    const ok = await this.response();
    const r: ImapResult = { tag, ...parseTagged(ok), tagged: ok, untagged: [], lines: [] };
    if (ok.tag !== tag || r.status !== 'OK') {
      deflate.destroy();
      return r;
    }
    deflate.on('data', (chunk: Buffer) => this.socket.write(chunk));
    const inflate = createInflateRaw();
    inflate.on('data', (chunk: Buffer) => this.take(chunk));
    inflate.on('error', (err) => {
      this.take(Buffer.from(`* CLIENT-INFLATE-ERROR ${err.message}\r\n`));
    });
    this.deflate = deflate;
    this.inflate = inflate;
    // Anything already buffered after the OK was compressed.
    if (this.buffer.length > 0) {
      const rest = this.buffer;
      this.buffer = Buffer.alloc(0);
      this.received -= rest.length;
      inflate.write(rest);
    }
    return r;
  }

  /** Waits until the server closed the connection. */
  async waitClosed(timeoutMs = 10_000): Promise<void> {
    await Promise.race([
      this.closed,
      new Promise((_, rej) => setTimeout(() => rej(new Error(`connection not closed within ${timeoutMs} ms`)), timeoutMs).unref()),
    ]);
  }

  /** Reads whatever arrives within `ms` (for "nothing else came" checks). */
  async drain(ms = 150): Promise<string> {
    await new Promise((res) => setTimeout(res, ms));
    const s = this.buffer.toString('latin1');
    this.buffer = Buffer.alloc(0);
    return s;
  }

  close(): void {
    this.deflate?.destroy();
    this.inflate?.destroy();
    this.socket.destroy();
  }
}

/** An IMAP quoted string (rfc9051 9) for test values without CR, LF or NUL. */
export function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/** The mailbox names LIST "" "*" returns, decoded from quoted strings and atoms. */
export function listedNames(r: ImapResult): string[] {
  const out: string[] = [];
  for (const line of r.lines) {
    const m = /^\* LIST \([^)]*\) (?:"[^"]*"|NIL) (.*)$/.exec(line);
    if (!m) continue;
    const name = m[1]!;
    out.push(name.startsWith('"') ? name.slice(1, -1).replace(/\\(["\\])/g, '$1') : name);
  }
  return out.sort();
}
