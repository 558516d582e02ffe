/**
 * The small IMAP client of bench/imap.ts: raw sockets (plain text, LOGIN), one command at a
 * time per connection, responses parsed as they stream in and mostly counted, not kept.
 *
 * What it reads: tagged status lines, continuation requests, `* n EXISTS`, `* SEARCH` numbers,
 * the number of `* n FETCH` responses and the bytes of the literals in them (a FETCH BODY[] is
 * counted, never copied). A literal `{n}` at the end of a line is skipped by count, so a message
 * body that contains what looks like a response line cannot confuse it.
 */
import { connect, type Socket } from 'node:net';

const CRLF = Buffer.from('\r\n');
const LITERAL = /\{(\d+)\+?\}$/;

export interface Reply {
  tag: string;
  status: 'OK' | 'NO' | 'BAD';
  /** The rest of the tagged line (response code and text). */
  text: string;
  /** Untagged responses received while the command ran. */
  untagged: number;
  /** `* n FETCH` responses among them. */
  fetches: number;
  /** Bytes of literals in the responses. */
  literalBytes: number;
  /** Numbers of `* SEARCH` responses, when asked for. */
  search: number[] | null;
  /** performance.now() when the tagged line arrived. */
  at: number;
}

interface Pending {
  tag: string;
  collectSearch: boolean;
  untagged: number;
  fetches: number;
  literalBytes: number;
  search: number[] | null;
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
}

export class ImapClient {
  /** The mailbox size the server last announced. */
  exists = 0;
  /** Called for each `* n EXISTS` (at: performance.now()). */
  onExists: ((n: number, at: number) => void) | null = null;
  /** The greeting line, once it arrived. */
  greeting: Promise<string>;
  private greeted!: (line: string) => void;
  private greetFailed!: (e: Error) => void;
  private gotGreeting = false;
  private carry: Buffer | null = null;
  private literalLeft = 0;
  /** The first segment of a response that continues after a literal. */
  private head: string | null = null;
  private pending: Pending | null = null;
  private continuation: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private tags = 0;
  private failure: Error | null = null;

  private constructor(readonly socket: Socket) {
    this.greeting = new Promise((resolve, reject) => {
      this.greeted = resolve;
      this.greetFailed = reject;
    });
    this.greeting.catch(() => {});
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  static open(host: string, port: number, localAddress?: string): Promise<ImapClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port, localAddress });
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new ImapClient(s));
      });
    });
  }

  /** Connects, reads the greeting and logs in. */
  static async login(host: string, port: number, user: string, pass: string, localAddress?: string): Promise<ImapClient> {
    const c = await ImapClient.open(host, port, localAddress);
    try {
      const greeting = await c.greeting;
      if (!greeting.startsWith('* OK')) throw new Error(`greeting: ${greeting}`);
      const r = await c.command(`LOGIN ${quote(user)} ${quote(pass)}`);
      if (r.status !== 'OK') throw new Error(`LOGIN ${user}: ${r.status} ${r.text}`);
      return c;
    } catch (e) {
      c.socket.destroy();
      throw e;
    }
  }

  get failed(): Error | null {
    return this.failure;
  }

  /** Sends `tag command` (plus `literal` bytes right after, for LITERAL+ commands) and resolves with the tagged reply. */
  command(text: string, options: { collectSearch?: boolean; literal?: Buffer } = {}): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending) return Promise.reject(new Error('one command at a time'));
    const tag = `b${++this.tags}`;
    return new Promise((resolve, reject) => {
      this.pending = { tag, collectSearch: options.collectSearch ?? false, untagged: 0, fetches: 0, literalBytes: 0, search: null, resolve, reject };
      if (options.literal) {
        this.socket.cork();
        this.socket.write(`${tag} ${text}`);
        this.socket.write(options.literal);
        this.socket.write('\r\n');
        this.socket.uncork();
      } else {
        this.socket.write(`${tag} ${text}\r\n`);
      }
    });
  }

  /**
   * IDLE: resolves when the server's continuation request arrived, with the tagged reply to come
   * (wrapped: an async function would wait for a returned promise); `done()` ends it.
   */
  async idle(): Promise<{ reply: Promise<Reply> }> {
    const went = new Promise<void>((resolve, reject) => (this.continuation = { resolve, reject }));
    const reply = this.command('IDLE');
    reply.catch(() => {});
    await Promise.race([went, reply.then((r) => Promise.reject(new Error(`IDLE: ${r.status} ${r.text}`)))]);
    return { reply };
  }

  /** Ends IDLE; the promise idle() returned resolves with the tagged reply. */
  done(): void {
    this.socket.write('DONE\r\n');
  }

  close(): void {
    this.socket.destroy();
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    const p = this.pending;
    this.pending = null;
    p?.reject(e);
    this.continuation?.reject(e);
    this.continuation = null;
    if (!this.gotGreeting) this.greetFailed(e);
  }

  private onData(chunk: Buffer): void {
    try {
      this.parse(chunk);
    } catch (e) {
      this.socket.destroy();
      this.fail(e as Error);
    }
  }

  private parse(chunk: Buffer): void {
    let buf = chunk;
    if (this.carry) {
      buf = Buffer.concat([this.carry, chunk]);
      this.carry = null;
    }
    let pos = 0;
    while (pos < buf.length) {
      if (this.literalLeft > 0) {
        const take = Math.min(this.literalLeft, buf.length - pos);
        this.literalLeft -= take;
        pos += take;
        if (this.pending) this.pending.literalBytes += take;
        continue;
      }
      const nl = buf.indexOf(CRLF, pos);
      if (nl < 0) {
        if (buf.length - pos > 16 * 1024 * 1024) throw new Error('response line too long');
        this.carry = Buffer.from(buf.subarray(pos));
        return;
      }
      const endsInBrace = nl > pos && buf[nl - 1] === 0x7d; /* } */
      if (endsInBrace) {
        const tailText = buf.toString('latin1', Math.max(pos, nl - 24), nl);
        const m = LITERAL.exec(tailText);
        if (m) {
          if (this.head === null) this.head = buf.toString('latin1', pos, nl);
          this.literalLeft = Number(m[1]);
          pos = nl + 2;
          continue;
        }
      }
      const line = this.head ?? buf.toString('latin1', pos, nl);
      this.head = null;
      pos = nl + 2;
      this.onLine(line);
    }
  }

  private onLine(line: string): void {
    if (!this.gotGreeting) {
      this.gotGreeting = true;
      this.greeted(line);
      return;
    }
    const p = this.pending;
    if (line.startsWith('+')) {
      const c = this.continuation;
      this.continuation = null;
      c?.resolve();
      return;
    }
    if (line.startsWith('* ')) {
      if (p) p.untagged++;
      if (line.endsWith(' EXISTS')) {
        const n = Number(line.slice(2, -7));
        this.exists = n;
        this.onExists?.(n, performance.now());
      } else if (p && line.charCodeAt(2) >= 0x30 && line.charCodeAt(2) <= 0x39 && line.includes(' FETCH ')) {
        p.fetches++;
      } else if (p?.collectSearch && line.startsWith('* SEARCH')) {
        const nums = line.slice(8).trim();
        p.search = (p.search ?? []).concat(nums === '' ? [] : nums.split(' ').map(Number));
      } else if (line.startsWith('* BYE')) {
        // The close that follows fails the pending command.
      }
      return;
    }
    const sp = line.indexOf(' ');
    const tag = line.slice(0, sp);
    if (!p || tag !== p.tag) throw new Error(`unexpected line: ${line.slice(0, 200)}`);
    const rest = line.slice(sp + 1);
    const sp2 = rest.indexOf(' ');
    const status = (sp2 < 0 ? rest : rest.slice(0, sp2)).toUpperCase();
    if (status !== 'OK' && status !== 'NO' && status !== 'BAD') throw new Error(`bad status line: ${line.slice(0, 200)}`);
    this.pending = null;
    p.resolve({
      tag,
      status,
      text: sp2 < 0 ? '' : rest.slice(sp2 + 1),
      untagged: p.untagged,
      fetches: p.fetches,
      literalBytes: p.literalBytes,
      search: p.search ?? (p.collectSearch ? [] : null),
      at: performance.now(),
    });
  }
}

/** A quoted string (the bench only quotes ASCII without quotes or backslashes in practice). */
export function quote(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}
