/**
 * One SMTP connection: the input pump, the receiver (command lines, DATA, BDAT chunk, SASL
 * continuation) and the protocol state (connected → greeted → mail → rcpt), with the command
 * table's rules applied in one place (dispatch).
 *
 * Invariants
 * - Input is processed strictly in order; while a command is being handled the socket is
 *   paused, so a client that floods us costs at most one socket read of memory beyond the
 *   bounded line reader.
 * - A reply that promises delivery (250 after DATA/BDAT LAST) is written only after
 *   MessageTransaction.commit resolved, i.e. after the message is durable.
 * - Bytes a client pipelined after STARTTLS are discarded, never executed.
 *
 * Security: everything read from the socket is untrusted. Command lines are bounded
 * (maxCommandLine), DATA is streamed (nothing held but the current chunk), errors are counted
 * and end the session at smtp.max_errors, and idle and total timeouts close stalled sessions.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Logger } from '../../log/logger.js';
import { normalizeIp } from '../../net/ip.js';
import { LineReader } from '../../net/line-reader.js';
import { describeTls, upgradeServerSocket } from '../../net/tls.js';
import type { MessageTransaction } from '../../pipeline/ingest.js';
import type { SpoolWriter } from '../../pipeline/spool.js';
import type { BdatReader } from './data-reader.js';
import type { SettingsSnapshot } from '../../store/runtime-settings.js';
import type { Account } from '../../store/types.js';
import { COMMANDS, type CommandContext } from './commands/table.js';
import { parseCommand, type SmtpCommand } from './parser.js';
import { formatReply, REPLIES, type Reply } from './replies.js';
import type { SmtpServices } from './services.js';

/** Which listener accepted the connection: they differ in what they require. */
export type SmtpPortKind = 'mx' | 'submission' | 'smtps';

/** The protocol state; a command valid only in some states says so in the command table. */
export type SmtpState = 'connected' | 'greeted' | 'mail' | 'rcpt';

/** What the next input bytes are. */
export type Receiver =
  | { kind: 'command' }
  | { kind: 'stream'; consume: (chunk: Buffer) => Promise<Buffer | null> }
  | { kind: 'sasl'; onLine: (line: string) => Promise<void> }
  | { kind: 'closed' };

/** A SMTP command line is 512 octets (rfc5321 4.5.3.1.4); AUTH lines may carry 12288 (rfc4954 4). */
const MAX_COMMAND_LINE = 12_288;

const utf8 = new TextDecoder('utf-8', { fatal: true });

export class SmtpSession {
  readonly id = randomBytes(6).toString('base64url');
  state: SmtpState = 'connected';
  receiver: Receiver = { kind: 'command' };
  socket: Socket;
  tls: { version: string; cipher: string } | null;
  heloName: string | null = null;
  esmtp = false;
  account: Account | null = null;
  transaction: MessageTransaction | null = null;
  /** The transaction uses SMTPUTF8 (rfc6531): UTF-8 allowed in RCPT paths. */
  smtputf8 = false;
  /** BDAT was used in this transaction: DATA is no longer allowed (rfc3030 2). */
  bdatStarted = false;
  /** RCPT commands in this transaction, accepted or not. */
  rcptAttempts = 0;
  /** The message being received in BDAT chunks. */
  bdat: { id: string; started: number; reader: BdatReader; spool: SpoolWriter } | null = null;
  errors = 0;
  messagesAccepted = 0;
  readonly log: Logger;
  readonly remoteAddress: string;
  readonly startedAt = Date.now();

  private readonly lines = new LineReader({ maxLineLength: MAX_COMMAND_LINE });
  private readonly inbox: Buffer[] = [];
  private pumping = false;
  private idleTimer: NodeJS.Timeout | null = null;
  private sessionTimer: NodeJS.Timeout | null = null;
  private closing = false;
  private shutdownRequested = false;
  private finished = false;
  private closedResolve!: () => void;
  readonly closed = new Promise<void>((resolve) => (this.closedResolve = resolve));

  constructor(
    socket: Socket,
    readonly port: SmtpPortKind,
    readonly services: SmtpServices,
    readonly settings: SettingsSnapshot,
    private readonly secureContext: SecureContext,
    log: Logger,
  ) {
    this.socket = socket;
    this.remoteAddress = normalizeIp(socket.remoteAddress ?? 'unknown');
    this.tls = socket instanceof TLSSocket ? describeTls(socket) : null;
    this.log = log.child({ sid: this.id, port: this.port, ip: this.remoteAddress });
  }

  /** True when the session may offer and accept password authentication. */
  get authAllowed(): boolean {
    return this.tls !== null || this.settings.get('auth.allow_plaintext');
  }

  get hostname(): string {
    return this.services.hostname;
  }

  start(): void {
    this.log.info({ event: 'smtp.connect', tls: this.tls?.version ?? null }, 'connection');
    this.attach(this.socket);
    this.sessionTimer = setTimeout(() => this.closeWith(REPLIES.timeout, 'session-timeout'), this.settings.get('smtp.session_timeout'));
    this.sessionTimer.unref();
    this.resetIdle();
    this.reply({ code: 220, text: `${this.hostname} ESMTP Fulmar` });
  }

  private attach(socket: Socket): void {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.log.debug({ event: 'smtp.socket_error', err: err.message }, 'socket error'));
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
    this.socket.cork();
    try {
      while (this.inbox.length > 0 && !this.closing) {
        const chunk = this.inbox.shift()!;
        await this.consume(chunk);
      }
    } catch (err) {
      this.log.error({ event: 'smtp.internal_error', err }, 'internal error');
      this.closeWith(REPLIES.tempFailure, 'internal-error');
    } finally {
      this.pumping = false;
      this.socket.uncork();
      if (this.shutdownRequested && this.receiver.kind !== 'stream') this.closeWith(REPLIES.shuttingDown, 'shutdown');
      if (!this.closing) this.socket.resume();
    }
  }

  /** Feeds one chunk to the active receiver; a receiver may hand back bytes it did not take. */
  private async consume(chunk: Buffer): Promise<void> {
    let rest: Buffer | null = chunk;
    while (rest !== null && rest.length > 0 && !this.closing) {
      const r = this.receiver;
      if (r.kind === 'stream') {
        rest = await r.consume(rest);
        continue;
      }
      this.lines.push(rest);
      rest = null;
      await this.drainLines();
      // A receiver that switched to streaming takes the bytes that followed its command.
      if (this.receiver.kind === 'stream' && this.lines.bufferedBytes > 0) rest = this.lines.takeRemaining();
    }
  }

  private async drainLines(): Promise<void> {
    for (;;) {
      if (this.closing || this.receiver.kind === 'stream' || this.receiver.kind === 'closed') return;
      const next = this.lines.next();
      if (next === null) return;
      if (next.tooLong) {
        this.error(REPLIES.lineTooLong);
        continue;
      }
      if (!next.crlf) {
        this.error(REPLIES.bareLf);
        continue;
      }
      let line: string;
      try {
        line = utf8.decode(next.line);
      } catch {
        this.error(REPLIES.badUtf8);
        continue;
      }
      const receiver: Receiver = this.receiver;
      if (receiver.kind === 'sasl') await receiver.onLine(line);
      else await this.dispatch(line);
    }
  }

  /** Parses and runs one command line, applying the command table's rules. */
  private async dispatch(line: string): Promise<void> {
    const parsed = parseCommand(line, { smtputf8: this.smtputf8 });
    if (!parsed.ok) {
      this.log.info({ event: 'smtp.bad_command', verb: parsed.verb, code: parsed.reply.code }, parsed.reply.text);
      this.error(parsed.reply);
      return;
    }
    const command: SmtpCommand = parsed.command;
    const entry = COMMANDS[command.verb];
    if (!entry.states.includes(this.state)) {
      this.error(REPLIES.badSequence(entry.wrongStateText));
      return;
    }
    const context: CommandContext = this.context();
    await entry.handler(context, command as never);
  }

  private context(): CommandContext {
    return {
      session: this,
      reply: (r) => this.reply(r),
      error: (r) => this.error(r),
      close: (r, why) => this.closeWith(r, why),
      startTls: () => this.startTls(),
      resetTransaction: () => this.resetTransaction(),
    };
  }

  reply(reply: Reply): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    this.socket.write(formatReply(reply));
  }

  /** A client mistake: reply, count it, and end the session at the limit. */
  error(reply: Reply): void {
    this.errors++;
    if (this.errors >= this.settings.get('smtp.max_errors')) {
      this.reply(reply);
      this.closeWith(REPLIES.tooManyErrors, 'too-many-errors');
      return;
    }
    this.reply(reply);
  }

  async resetTransaction(): Promise<void> {
    const tx = this.transaction;
    this.transaction = null;
    this.smtputf8 = false;
    this.bdatStarted = false;
    this.bdat = null;
    this.rcptAttempts = 0;
    if (this.state === 'mail' || this.state === 'rcpt') this.state = 'greeted';
    if (tx) await tx.abort();
  }

  private async startTls(): Promise<void> {
    // rfc3207 4.2: the client must not pipeline past STARTTLS; what it sent anyway is dropped.
    const pipelined = this.lines.takeRemaining().length + this.inbox.reduce((n, b) => n + b.length, 0);
    this.inbox.length = 0;
    if (pipelined > 0) this.log.warn({ event: 'smtp.starttls_pipelined', bytes: pipelined }, 'discarded commands pipelined after STARTTLS');
    this.reply({ code: 220, enhanced: '2.0.0', text: 'Ready to start TLS' });
    this.socket.uncork();
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    this.receiver = { kind: 'closed' };
    try {
      const secure = await upgradeServerSocket(plain, this.secureContext);
      this.socket = secure;
      this.tls = describeTls(secure);
      this.attach(secure);
      // rfc3207 4.2: forget everything learned before TLS, the EHLO name included.
      await this.resetTransaction();
      this.state = 'connected';
      this.heloName = null;
      this.esmtp = false;
      this.receiver = { kind: 'command' };
      this.socket.cork();
      this.log.info({ event: 'smtp.starttls', tls: this.tls.version, cipher: this.tls.cipher }, 'TLS started');
    } catch (err) {
      this.log.info({ event: 'smtp.starttls_failed', err: (err as Error).message }, 'TLS handshake failed');
      plain.destroy();
      this.finish();
    }
  }

  private resetIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.closeWith(REPLIES.timeout, 'idle-timeout'), this.settings.get('smtp.idle_timeout'));
    this.idleTimer.unref();
  }

  /** Sends a final reply and closes the connection. */
  closeWith(reply: Reply, why: string): void {
    if (this.closing) return;
    this.closing = true;
    this.receiver = { kind: 'closed' };
    this.log.info({ event: 'smtp.close', why }, 'closing');
    const socket = this.socket;
    if (!socket.destroyed && socket.writable) {
      socket.uncork();
      socket.end(formatReply(reply));
      // A client that does not read must not keep the socket open.
      setTimeout(() => socket.destroy(), 5000).unref();
    } else {
      socket.destroy();
    }
    this.inbox.length = 0;
    void this.resetTransaction();
  }

  /** Asks the session to end for a shutdown: at once when idle, after the current message otherwise. */
  shutdown(): void {
    this.shutdownRequested = true;
    // A message in progress is finished first; the pump closes the session after it.
    if (this.receiver.kind === 'stream' || this.pumping) return;
    this.closeWith(REPLIES.shuttingDown, 'shutdown');
  }

  destroy(): void {
    this.socket.destroy();
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.sessionTimer) clearTimeout(this.sessionTimer);
    if (!this.closing) {
      this.closing = true;
      this.receiver = { kind: 'closed' };
      void this.resetTransaction();
    }
    this.log.info({ event: 'smtp.disconnect', messages: this.messagesAccepted, ms: Date.now() - this.startedAt }, 'disconnected');
    this.closedResolve();
  }
}
