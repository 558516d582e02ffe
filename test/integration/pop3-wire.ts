/**
 * Helpers for the POP3 integration tests: a raw POP3 client over node:net / node:tls for the
 * cases a library client cannot produce (pipelined bytes, over-long lines, invalid UTF-8, a
 * connection dropped mid-session, a chosen source address), delivery by SMTP to set up mailboxes,
 * and a read of what the store holds, to compare with what POP3 serves.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { MessageRecord, Store } from '../../src/store/types.js';
import type { FulmarProcess } from './harness.js';
import { SmtpWire } from './smtp-wire.js';
import { connectSocket, WireSocket, type ConnectOptions } from './wire-socket.js';

export class Pop3Wire extends WireSocket {
  private buffer: Buffer = Buffer.alloc(0);
  protected accept(d: Buffer): void {
    this.buffer = this.buffer.length === 0 ? d : Buffer.concat([this.buffer, d]);
    this.wake();
  }

  private constructor(socket: Socket | TLSSocket) {
    super(socket);
  }

  /** Opens a connection (implicit TLS with `tls`); does not read the greeting. */
  static async open(port: number, options: ConnectOptions = {}): Promise<Pop3Wire> {
    return new Pop3Wire(await connectSocket(port, options));
  }

  /** Opens a connection and checks the +OK greeting. */
  static async greeted(port: number, options: { tls?: boolean; localAddress?: string } = {}): Promise<Pop3Wire> {
    const w = await Pop3Wire.open(port, options);
    const greeting = await w.line();
    if (!greeting.startsWith('+OK ')) throw new Error(`expected a +OK greeting, got ${greeting}`);
    return w;
  }

  /** Logs in with AUTH PLAIN (the connection must allow it: TLS or auth.allow_plaintext). */
  static async login(port: number, user: string, password: string, options: { tls?: boolean } = { tls: true }): Promise<Pop3Wire> {
    const w = await Pop3Wire.greeted(port, options);
    const r = await w.cmd(`AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`).toString('base64')}`);
    if (!r.startsWith('+OK')) throw new Error(`login as ${user} failed: ${r}`);
    return w;
  }

  /** Bytes received and not read yet. */
  get pending(): Buffer {
    return this.buffer;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  private async waitFor<T>(take: () => T | null, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = take();
      if (got !== null) return got;
      if (this.ended) throw new Error(`connection closed while waiting (buffered: ${JSON.stringify(this.buffer.toString('latin1'))})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`nothing within ${timeoutMs} ms (buffered: ${JSON.stringify(this.buffer.toString('latin1'))})`);
      await this.nextWake(left);
    }
  }

  /** One line, without its CRLF. */
  async line(timeoutMs = 10_000): Promise<string> {
    return this.waitFor(() => {
      const nl = this.buffer.indexOf('\r\n');
      if (nl < 0) return null;
      const text = this.buffer.subarray(0, nl).toString('utf8');
      this.buffer = this.buffer.subarray(nl + 2);
      return text;
    }, timeoutMs);
  }

  /** The raw bytes of a multi-line body after its status line, up to and including ".\r\n". */
  async multilineRaw(timeoutMs = 10_000): Promise<Buffer> {
    return this.waitFor(() => {
      if (this.buffer.subarray(0, 3).equals(Buffer.from('.\r\n'))) {
        this.buffer = this.buffer.subarray(3);
        return Buffer.from('.\r\n');
      }
      const end = this.buffer.indexOf('\r\n.\r\n');
      if (end < 0) return null;
      const body = this.buffer.subarray(0, end + 5);
      this.buffer = this.buffer.subarray(end + 5);
      return Buffer.from(body);
    }, timeoutMs);
  }

  /** A multi-line body's lines, dot-unstuffed, without the terminator. */
  async multiline(timeoutMs = 10_000): Promise<string[]> {
    const raw = (await this.multilineRaw(timeoutMs)).toString('utf8');
    const lines = raw.split('\r\n').slice(0, -2);
    return lines.map((l) => (l.startsWith('.') ? l.slice(1) : l));
  }

  /** Sends one command (CRLF added) and reads the status line. */
  async cmd(line: string, timeoutMs?: number): Promise<string> {
    this.write(`${line}\r\n`);
    return this.line(timeoutMs);
  }

  /** Sends a command whose +OK answer is multi-line; returns the status line and the lines. */
  async cmdMulti(line: string): Promise<{ status: string; lines: string[] }> {
    const status = await this.cmd(line);
    return { status, lines: status.startsWith('+OK') ? await this.multiline() : [] };
  }

  async waitClosed(timeoutMs = 10_000): Promise<void> {
    await Promise.race([
      this.closed,
      new Promise((_, rej) => setTimeout(() => rej(new Error(`connection not closed within ${timeoutMs} ms`)), timeoutMs).unref()),
    ]);
  }

  /** Drops the connection without QUIT. */
  close(): void {
    this.socket.destroy();
  }
}

/** RFC 5321 4.5.2 transparency for DATA. */
function smtpStuff(message: Buffer): Buffer {
  const text = message.toString('latin1').replace(/^\./gm, '..');
  return Buffer.from(text, 'latin1');
}

/** Delivers one message (CRLF line ends) to local recipients over port 25. */
export async function deliver(f: FulmarProcess, rcpts: string[], message: string | Buffer): Promise<void> {
  const body = typeof message === 'string' ? Buffer.from(message) : message;
  const w = await SmtpWire.greeted(f.ports.smtp);
  try {
    await w.ehlo('client.example');
    const mail = await w.cmd('MAIL FROM:<sender@far.example>');
    if (mail.code !== 250) throw new Error(`MAIL: ${mail.raw}`);
    for (const r of rcpts) {
      const reply = await w.cmd(`RCPT TO:<${r}>`);
      if (reply.code !== 250) throw new Error(`RCPT ${r}: ${reply.raw}`);
    }
    const data = await w.cmd('DATA');
    if (data.code !== 354) throw new Error(`DATA: ${data.raw}`);
    await w.writeAndDrain(smtpStuff(body));
    if (!body.subarray(-2).equals(Buffer.from('\r\n'))) w.write('\r\n');
    w.write('.\r\n');
    const done = await w.read(120_000);
    if (done.code !== 250) throw new Error(`end of DATA: ${done.raw}`);
    await w.cmd('QUIT');
  } finally {
    w.close();
  }
}

export interface StoredMessage {
  record: MessageRecord;
  bytes: Buffer;
}

/** The INBOX of an account as the store holds it (prefix + blob), in UID order, with its UIDVALIDITY. */
export async function storedInbox(f: FulmarProcess, address: string): Promise<{ uidValidity: number; messages: StoredMessage[] }> {
  const store: Store = await f.openStore();
  try {
    const account = await store.directory.getAccount(address.toLowerCase());
    if (!account) throw new Error(`no account ${address}`);
    const box = await store.mail.getMailbox(account.id, 'INBOX');
    if (!box) throw new Error(`no INBOX for ${address}`);
    const messages: StoredMessage[] = [];
    for (const record of await store.mail.listMessages(box.id)) {
      const chunks: Buffer[] = [];
      for await (const c of store.mail.openMessage(record)) chunks.push(c as Buffer);
      messages.push({ record, bytes: Buffer.concat(chunks) });
    }
    return { uidValidity: box.uidValidity, messages };
  } finally {
    await store.close();
  }
}

/** The UIDL Fulmar gives a message: %08X of the UID, then %08X of UIDVALIDITY. */
export function expectedUidl(uid: number, uidValidity: number): string {
  const hex = (n: number): string => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(uid)}${hex(uidValidity)}`;
}
