/**
 * One POP3 connection (RFC 1939): AUTHORIZATION → TRANSACTION → UPDATE, with CAPA (RFC 2449),
 * STLS (RFC 2595), AUTH PLAIN/LOGIN (RFC 5034) and UTF8 (RFC 6856).
 *
 * Invariants
 * - The maildrop is the INBOX as it was at login; mail arriving later shows in the next session.
 * - DELE only marks. Deletions happen at QUIT in the UPDATE state, in one durable transaction,
 *   and only then does QUIT say +OK. A dropped connection or a timeout deletes nothing.
 * - One POP3 session per maildrop (the server's lock); a second one gets [IN-USE].
 * - Input is processed in order and the socket is paused while a command runs; RETR streams the
 *   message with backpressure, never holding it whole.
 *
 * Security: every line is untrusted; lines are bounded, errors counted (pop3.max_errors closes
 * the session), failed logins are delayed and counted per IP address.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { TLSSocket, type SecureContext } from 'node:tls';
import { decodePlain, LoginExchange, type LoginStep } from '../directory/sasl.js';
import type { Logger } from '../log/logger.js';
import { normalizeIp } from '../net/ip.js';
import { LineReader } from '../net/line-reader.js';
import { describeTls, upgradeServerSocket } from '../net/tls.js';
import type { SettingsSnapshot } from '../store/runtime-settings.js';
import type { Account, MessageRecord } from '../store/types.js';
import { DotStuffer } from './dot-stuff.js';
import { parsePop3Command, type Pop3Command } from './parser.js';
import type { Pop3Services } from './services.js';

type State = 'authorization' | 'transaction' | 'update';

/** AUTH initial responses may exceed RFC 2449's 255 octets (RFC 5034 4). */
const MAX_LINE = 8192;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const TERMINATOR = Buffer.from('.\r\n');

/** Messages up to this size are read whole instead of streamed. */
const READ_WHOLE_LIMIT = 256 * 1024;

interface Maildrop {
  mailboxId: number;
  uidValidity: number;
  messages: Array<{ uid: number; size: number }>;
  deleted: Set<number>;
  release: () => void;
}

export class Pop3Session {
  readonly id = randomBytes(6).toString('base64url');
  private state: State = 'authorization';
  private socket: Socket;
  private tls: { version: string; cipher: string } | null;
  private readonly lines = new LineReader({ maxLineLength: MAX_LINE });
  private readonly inbox: Buffer[] = [];
  private pumping = false;
  private closing = false;
  private finished = false;
  private errors = 0;
  private userName: string | null = null;
  private account: Account | null = null;
  private maildrop: Maildrop | null = null;
  private utf8Enabled = false;
  private readonly apopTimestamp: string;
  /** A SASL exchange waiting for the client's next line. */
  private saslContinuation: ((line: string) => Promise<void>) | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private lastActivity = Date.now();
  private lastFlushed = 0;
  /** A RETR or TOP is streaming. */
  private sending = false;
  private readonly log: Logger;
  readonly remoteAddress: string;
  private closedResolve!: () => void;
  readonly closed = new Promise<void>((resolve) => (this.closedResolve = resolve));

  constructor(
    socket: Socket,
    private readonly services: Pop3Services,
    private readonly settings: SettingsSnapshot,
    private readonly secureContext: SecureContext,
    log: Logger,
  ) {
    this.socket = socket;
    this.remoteAddress = normalizeIp(socket.remoteAddress ?? 'unknown');
    this.tls = socket instanceof TLSSocket ? describeTls(socket) : null;
    this.log = log.child({ sid: this.id, svc: 'pop3', ip: this.remoteAddress });
    this.apopTimestamp = `<${process.pid}.${randomBytes(8).toString('hex')}.${Date.now()}@${services.hostname}>`;
  }

  start(): void {
    this.log.info({ event: 'pop3.connect', tls: this.tls?.version ?? null }, 'connection');
    this.attach(this.socket);
    this.resetIdle();
    // rfc1939 7: the timestamp that APOP digests are made with; only shown when APOP is offered.
    const apop = this.settings.get('pop3.apop') ? ` ${this.apopTimestamp}` : '';
    this.send(`+OK ${this.services.hostname} Fulmar POP3 ready${apop}\r\n`);
  }

  private get plaintextAllowed(): boolean {
    return this.tls !== null || this.settings.get('auth.allow_plaintext');
  }

  private attach(socket: Socket): void {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.log.debug({ event: 'pop3.socket_error', err: err.message }, 'socket error'));
    socket.on('close', () => this.finish());
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    this.resetIdle();
    this.inbox.push(chunk);
    this.socket.pause();
    if (!this.pumping) void this.pump();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.inbox.length > 0 && !this.closing) {
        this.lines.push(this.inbox.shift()!);
        await this.drainLines();
      }
    } catch (err) {
      this.log.error({ event: 'pop3.internal_error', err }, 'internal error');
      this.close('-ERR [SYS/TEMP] Internal error, closing connection\r\n', 'internal-error');
    } finally {
      this.pumping = false;
      if (!this.closing) this.socket.resume();
    }
  }

  private async drainLines(): Promise<void> {
    for (;;) {
      if (this.closing) return;
      const next = this.lines.next();
      if (next === null) return;
      if (next.tooLong) {
        this.error('Line too long');
        continue;
      }
      let line: string;
      try {
        line = utf8.decode(next.line);
      } catch {
        this.error('Command is not valid UTF-8');
        continue;
      }
      if (line.endsWith('\r')) line = line.slice(0, -1); // a CR before a bare LF
      const continuation = this.saslContinuation;
      if (continuation) {
        this.saslContinuation = null;
        await continuation(line);
        continue;
      }
      await this.dispatch(line);
    }
  }

  private async dispatch(line: string): Promise<void> {
    const parsed = parsePop3Command(line);
    if (!parsed.ok) {
      this.error(parsed.error);
      return;
    }
    const c = parsed.command;
    switch (c.verb) {
      case 'CAPA':
        return this.multiline('+OK Capability list follows', this.capabilities());
      case 'QUIT':
        return this.quit();
      case 'NOOP':
        return this.inTransaction() ? this.send('+OK\r\n') : undefined;
    }
    if (this.state === 'authorization') return this.authorizationCommand(c);
    if (this.state === 'transaction') return this.transactionCommand(c);
  }

  private capabilities(): string[] {
    const caps = ['TOP', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING', 'EXPIRE NEVER'];
    const delay = this.settings.get('pop3.login_delay');
    if (delay > 0) caps.push(`LOGIN-DELAY ${Math.round(delay / 1000)}`);
    if (this.state === 'authorization') {
      if (this.plaintextAllowed) caps.push('USER', 'SASL PLAIN LOGIN');
      if (this.tls === null) caps.push('STLS');
      caps.push('UTF8');
    }
    caps.push('IMPLEMENTATION Fulmar');
    return caps;
  }

  // ---- AUTHORIZATION

  private async authorizationCommand(c: Pop3Command): Promise<void> {
    switch (c.verb) {
      case 'STLS':
        return this.startTls();
      case 'UTF8':
        this.utf8Enabled = true;
        return this.send('+OK UTF8 enabled\r\n');
      case 'USER':
        if (!this.plaintextAllowed) return this.error('[AUTH] Plaintext authentication is disabled on connections without TLS; use STLS or port 995');
        this.userName = c.name;
        return this.send('+OK\r\n');
      case 'PASS': {
        if (this.userName === null) return this.error('USER first');
        const user = this.userName;
        this.userName = null;
        return this.login(user, c.password);
      }
      case 'AUTH':
        return this.auth(c.mechanism, c.initialResponse);
      case 'APOP':
        return this.apop(c.name, c.digest);
      default:
        return this.error('Not allowed before login (use USER/PASS or AUTH)');
    }
  }

  private async auth(mechanism: string | null, initial: string | null): Promise<void> {
    if (mechanism === null) return this.multiline('+OK Mechanisms follow', this.plaintextAllowed ? ['PLAIN', 'LOGIN'] : []);
    if (!this.plaintextAllowed) return this.error('[AUTH] Authentication is disabled on connections without TLS; use STLS or port 995');
    if (mechanism === 'PLAIN') {
      const withResponse = async (response: string): Promise<void> => {
        if (response === '*') return this.error('Authentication cancelled');
        const decoded = decodePlain(response);
        if (!decoded.ok) return this.error(decoded.error);
        if (decoded.authzid !== '' && decoded.authzid.toLowerCase() !== decoded.authcid.toLowerCase()) {
          return this.error('[AUTH] Authorization identity must be empty or the login');
        }
        return this.login(decoded.authcid, decoded.password);
      };
      if (initial !== null) return withResponse(initial === '=' ? '' : initial);
      this.saslContinuation = withResponse;
      return this.send('+ \r\n');
    }
    if (mechanism === 'LOGIN') {
      const exchange = new LoginExchange();
      const step = async (result: LoginStep): Promise<void> => {
        if (result.kind === 'failed') return this.error(result.error);
        if (result.kind === 'done') return this.login(result.username, result.password);
        this.saslContinuation = async (line) => step(exchange.respond(line));
        this.send(`+ ${result.challenge}\r\n`);
      };
      return step(exchange.start(initial));
    }
    return this.error(`Unsupported mechanism ${mechanism}; use PLAIN or LOGIN`);
  }

  private async login(name: string, password: string): Promise<void> {
    return this.checkedLogin(name, () =>
      this.services.directory.authenticate(name, password, { cacheTtlMs: this.settings.get('auth.cache_ttl') }),
    );
  }

  /** APOP (rfc1939 7): no password on the wire, so it is allowed without TLS. */
  private async apop(name: string, digest: string): Promise<void> {
    if (!this.settings.get('pop3.apop')) return this.error('[AUTH] APOP is not enabled here; use USER/PASS or AUTH over TLS');
    return this.checkedLogin(name, () => this.services.directory.authenticateApop(name, this.apopTimestamp, digest));
  }

  /** Throttles by IP, checks the credentials, then takes the maildrop. */
  private async checkedLogin(name: string, check: () => Promise<Account | null>): Promise<void> {
    const { failures } = this.services;
    if (failures.blocked(this.remoteAddress, this.settings.get('auth.max_failures_per_ip'))) {
      this.log.warn({ event: 'pop3.login_throttled', login: name }, 'too many failed logins from this address');
      return this.error('[SYS/TEMP] Too many failed logins from your address; try again later');
    }
    const account = await check();
    if (!account) {
      failures.record(this.remoteAddress);
      this.log.info({ event: 'pop3.auth_failed', login: name }, 'authentication failed');
      await sleep(this.settings.get('auth.failure_delay'));
      return this.error('[AUTH] Authentication failed');
    }
    const release = await this.services.locks.acquire(account.id);
    if (!release) {
      this.log.info({ event: 'pop3.in_use', login: account.address }, 'maildrop locked');
      return this.error('[IN-USE] Mailbox is locked by another POP3 session; try again later');
    }
    try {
      const inbox = await this.services.mail.getMailbox(account.id, 'INBOX');
      if (!inbox) throw new Error(`account ${account.address} has no INBOX`);
      const messages = await this.services.mail.listMessageSizes(inbox.id);
      this.maildrop = { mailboxId: inbox.id, uidValidity: inbox.uidValidity, messages, deleted: new Set(), release };
    } catch (err) {
      release();
      throw err;
    }
    if (this.closing) {
      // The connection ended during the awaits above, so close()/finish() already ran: let go here.
      this.releaseMaildrop();
      return;
    }
    this.account = account;
    this.state = 'transaction';
    this.log.info({ event: 'pop3.login', login: account.address, messages: this.maildrop.messages.length }, 'logged in');
    this.send(`+OK Logged in, ${this.maildrop.messages.length} messages\r\n`);
  }

  private async startTls(): Promise<void> {
    if (this.tls !== null) return this.error('TLS already active');
    // rfc2595 4 / rfc3207 4.2 in spirit: nothing the client pipelined after STLS is executed.
    const pipelined = this.lines.takeRemaining().length + this.inbox.reduce((n, b) => n + b.length, 0);
    this.inbox.length = 0;
    if (pipelined > 0) this.log.warn({ event: 'pop3.stls_pipelined', bytes: pipelined }, 'discarded commands pipelined after STLS');
    this.send('+OK Begin TLS negotiation\r\n');
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    try {
      const secure = await upgradeServerSocket(plain, this.secureContext);
      this.socket = secure;
      this.tls = describeTls(secure);
      this.attach(secure);
      this.userName = null;
      this.log.info({ event: 'pop3.stls', tls: this.tls.version }, 'TLS started');
    } catch (err) {
      this.log.info({ event: 'pop3.stls_failed', err: (err as Error).message }, 'TLS handshake failed');
      plain.destroy();
      this.finish();
    }
  }

  // ---- TRANSACTION

  private inTransaction(): boolean {
    if (this.state === 'transaction') return true;
    this.error('Not logged in');
    return false;
  }

  /** The message numbered `msg` (1-based), unless out of range or deleted: then an -ERR was sent. */
  private message(msg: number): { uid: number; size: number } | null {
    const drop = this.maildrop!;
    const record = drop.messages[msg - 1];
    if (msg < 1 || !record) {
      this.error(`No such message (there are ${drop.messages.length})`);
      return null;
    }
    if (drop.deleted.has(msg)) {
      this.error('Message is deleted');
      return null;
    }
    return record;
  }

  /** Stable for the message's life and shared with IMAP: UID and UIDVALIDITY (as Dovecot's %08Xu%08Xv). */
  private uidl(record: { uid: number }): string {
    const hex = (n: number): string => n.toString(16).toUpperCase().padStart(8, '0');
    return `${hex(record.uid)}${hex(this.maildrop!.uidValidity)}`;
  }

  private async transactionCommand(c: Pop3Command): Promise<void> {
    const drop = this.maildrop!;
    switch (c.verb) {
      case 'STAT': {
        let count = 0;
        let size = 0;
        drop.messages.forEach((m, i) => {
          if (drop.deleted.has(i + 1)) return;
          count++;
          size += m.size;
        });
        return this.send(`+OK ${count} ${size}\r\n`);
      }
      case 'LIST':
      case 'UIDL': {
        const value = (m: { uid: number; size: number }): string => (c.verb === 'LIST' ? String(m.size) : this.uidl(m));
        if (c.msg !== null) {
          const m = this.message(c.msg);
          return m ? this.send(`+OK ${c.msg} ${value(m)}\r\n`) : undefined;
        }
        const lines: string[] = [];
        drop.messages.forEach((m, i) => {
          if (!drop.deleted.has(i + 1)) lines.push(`${i + 1} ${value(m)}`);
        });
        return this.multiline(c.verb === 'LIST' ? `+OK ${lines.length} messages` : '+OK', lines);
      }
      case 'RETR': {
        const m = await this.record(c.msg);
        if (!m) return;
        return this.streamMessage(m, `+OK ${m.size} octets\r\n`, new DotStuffer());
      }
      case 'TOP': {
        const m = await this.record(c.msg);
        if (!m) return;
        return this.streamMessage(m, '+OK\r\n', new DotStuffer({ bodyLines: c.lines }));
      }
      case 'DELE': {
        const m = this.message(c.msg);
        if (!m) return;
        drop.deleted.add(c.msg);
        return this.send(`+OK Message ${c.msg} marked for deletion\r\n`);
      }
      case 'RSET':
        drop.deleted.clear();
        return this.send(`+OK ${drop.messages.length} messages\r\n`);
      default:
        return this.error(`${c.verb} is not allowed after login`);
    }
  }

  /** The stored message behind number `msg`; null (with an -ERR sent) when gone or out of range. */
  private async record(msg: number): Promise<MessageRecord | null> {
    const m = this.message(msg);
    if (!m) return null;
    const record = await this.services.mail.getMessage(this.maildrop!.mailboxId, m.uid);
    // Another protocol (IMAP) may have expunged it since login.
    if (!record) this.error('[SYS/PERM] Message was removed by another session');
    return record;
  }

  private async streamMessage(record: MessageRecord, status: string, stuffer: DotStuffer): Promise<void> {
    if (record.size <= READ_WHOLE_LIMIT) return this.sendWhole(record, status, stuffer);
    // Corked: the status line, the body and the terminator leave in one writev, one system call
    // per message instead of three. Backpressure uncorks first (a corked socket never drains).
    const socket = this.socket;
    socket.cork();
    this.sending = true;
    let corked = true;
    const uncork = (): void => {
      if (corked) {
        corked = false;
        socket.uncork();
      }
    };
    try {
      const stream = this.services.mail.openMessage(record);
      let started = false;
      try {
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          if (!started) {
            this.send(status);
            started = true;
          }
          const out = stuffer.push(chunk);
          if (out.length > 0 && !this.socket.write(out)) {
            uncork();
            await this.drained();
            // The client is reading: a long RETR to a slow client is not idleness.
            this.resetIdle();
          }
          if (stuffer.done || this.closing) break;
        }
      } catch (err) {
        if (started) {
          // Half a message was sent: the only honest thing left is to end the connection.
          this.log.error({ event: 'pop3.retr_failed', uid: record.uid, err }, 'could not read message');
          this.socket.destroy();
          return;
        }
        this.log.error({ event: 'pop3.retr_failed', uid: record.uid, err }, 'could not read message');
        return this.send('-ERR [SYS/TEMP] Cannot read the message now; try again later\r\n');
      } finally {
        stream.destroy();
      }
      if (!started) this.send(status);
      this.send(stuffer.done ? '.\r\n' : stuffer.end());
    } finally {
      uncork();
      this.sending = false;
    }
  }

  /** A small message: one read, one write of status, body and terminator. */
  private async sendWhole(record: MessageRecord, status: string, stuffer: DotStuffer): Promise<void> {
    let bytes: Buffer;
    try {
      bytes = await this.services.mail.readMessage(record);
    } catch (err) {
      this.log.error({ event: 'pop3.retr_failed', uid: record.uid, err }, 'could not read message');
      return this.send('-ERR [SYS/TEMP] Cannot read the message now; try again later\r\n');
    }
    const body = stuffer.push(bytes);
    const end = stuffer.done ? TERMINATOR : stuffer.end();
    this.send(Buffer.concat([Buffer.from(status), body, end]));
  }

  private drained(): Promise<void> {
    // A write to a socket that is already destroyed returns false, and its 'close' may be past.
    if (this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.once('drain', done);
      this.socket.once('close', done);
    });
  }

  // ---- UPDATE

  private async quit(): Promise<void> {
    if (this.state !== 'transaction' || !this.maildrop) {
      return this.close('+OK Bye\r\n', 'quit');
    }
    this.state = 'update';
    const drop = this.maildrop;
    const uids = [...drop.deleted].map((n) => drop.messages[n - 1]!.uid);
    try {
      // rfc1939 6: deletions take effect only now, and QUIT answers after they are durable.
      const removed = uids.length > 0 ? await this.services.mail.expungeMessages(drop.mailboxId, uids) : [];
      this.log.info({ event: 'pop3.logout', login: this.account?.address, deleted: removed.length }, 'logged out');
      this.close(`+OK Bye, ${removed.length} messages deleted\r\n`, 'quit');
    } catch (err) {
      this.log.error({ event: 'pop3.update_failed', err }, 'could not delete messages');
      this.close('-ERR [SYS/TEMP] Could not delete the marked messages; none were deleted\r\n', 'update-failed');
    }
  }

  // ---- plumbing

  private send(text: string | Buffer): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(text);
  }

  private multiline(status: string, lines: string[]): void {
    const body = lines.map((l) => (l.startsWith('.') ? `.${l}` : l)).join('\r\n');
    this.send(`${status}\r\n${body}${lines.length > 0 ? '\r\n' : ''}.\r\n`);
  }

  private error(text: string): void {
    this.errors++;
    this.send(`-ERR ${text}\r\n`);
    if (this.errors >= this.settings.get('pop3.max_errors')) this.close('-ERR Too many errors, closing connection\r\n', 'too-many-errors');
  }

  /**
   * The autologout timer. The session is idle when the client sent nothing and took none of our
   * output for the whole period: a RETR still flowing to a slow reader is not idleness.
   */
  private resetIdle(): void {
    this.lastActivity = Date.now();
    if (this.idleTimer) return;
    const check = (): void => {
      // While a message is being sent, output the kernel took since the last check (writes
      // completed, not merely queued) is the client reading: activity.
      const flushed = this.socket.bytesWritten - this.socket.writableLength;
      if ((this.sending || this.socket.writableLength > 0) && flushed !== this.lastFlushed) {
        this.lastFlushed = flushed;
        this.lastActivity = Date.now();
      }
      const timeout = this.settings.get('pop3.idle_timeout');
      const left = this.lastActivity + timeout - Date.now();
      if (left > 0) {
        this.idleTimer = setTimeout(check, left);
        this.idleTimer.unref();
        return;
      }
      this.close('-ERR Autologout; idle for too long\r\n', 'idle-timeout');
    };
    this.idleTimer = setTimeout(check, this.settings.get('pop3.idle_timeout'));
    this.idleTimer.unref();
  }

  private close(text: string, why: string): void {
    if (this.closing) return;
    this.closing = true;
    this.log.info({ event: 'pop3.close', why }, 'closing');
    const socket = this.socket;
    if (!socket.destroyed && socket.writable) {
      socket.end(text);
      setTimeout(() => socket.destroy(), 5000).unref();
    } else {
      socket.destroy();
    }
    this.inbox.length = 0;
    this.releaseMaildrop();
  }

  /** For a server shutdown: the session ends without UPDATE, so nothing is deleted. */
  shutdown(): void {
    this.close('-ERR [SYS/TEMP] Server shutting down; no messages were deleted\r\n', 'shutdown');
  }

  destroy(): void {
    this.socket.destroy();
    this.finish();
  }

  private releaseMaildrop(): void {
    const drop = this.maildrop;
    this.maildrop = null;
    drop?.release();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.closing = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.releaseMaildrop();
    this.log.info({ event: 'pop3.disconnect' }, 'disconnected');
    this.closedResolve();
  }
}
