/**
 * One IMAP connection (rfc9051, rfc3501): reads commands through the framer, streams APPEND
 * literals into the blob store, runs each command through the command table, and sends the
 * untagged updates other sessions caused at the moments the RFC allows.
 *
 * Invariants
 * - Commands run one at a time, in order; input is paused while one runs, so a client that
 *   pipelines cannot make us buffer more than the framer's limits.
 * - Every command gets exactly one tagged response (or, for IDLE, one after DONE); a parse error
 *   is `tag BAD`, and nothing else happens.
 * - Unsolicited updates (EXISTS, EXPUNGE/VANISHED, FETCH FLAGS) are sent before a tagged
 *   response and while IDLE, never in the middle of another response; expunges wait while a
 *   FETCH, STORE or SEARCH by sequence number runs (rfc9051 7.5.1).
 * - An APPEND literal never sits in memory: it streams to a staged blob as it arrives.
 *
 * Security: all input is untrusted. Lines, in-memory literals and whole commands are bounded by
 * the framer; literals before login are small; bad commands in a row close the connection
 * (imap.max_errors); failed logins are delayed and counted per IP, as for POP3 and SMTP.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import { createInflateRaw, type InflateRaw } from 'node:zlib';
import type { Logger } from '../log/logger.js';
import { normalizeIp } from '../net/ip.js';
import { describeTls, upgradeServerSocket } from '../net/tls.js';
import type { SettingsSnapshot } from '../store/runtime-settings.js';
import type { Account, BlobWriter, MailEvent, StagedBlob } from '../store/types.js';
import { isFulmarError } from '../util/errors.js';
import type { Command } from './ast.js';
import { COMMANDS, type Completion } from './commands/table.js';
import { CommandFramer, type FramerEvent, type LiteralAnnouncement, type Segment } from './framer.js';
import { MessageMetaBuilder } from '../pipeline/message-meta.js';
import { ImapOutput } from './output.js';
import { parseCommand } from './parser.js';
import { responseCodeFor } from './errors.js';
import { SelectedMailbox } from './selected.js';
import type { ImapServices } from './services.js';

export type ImapState = 'not-authenticated' | 'authenticated' | 'selected' | 'logout';

const MAX_LINE = 64 * 1024;
const MAX_COMMAND = 1024 * 1024;
const MAX_LITERAL_IN_MEMORY = 256 * 1024;
/** Before login, literals are for user names and passwords only. */
const MAX_LITERAL_PRE_AUTH = 8 * 1024;

/** A literal streamed into the blob store (APPEND message data). */
export interface StreamedLiteral {
  blob: StagedBlob;
  meta: MessageMetaBuilder;
}

interface LiteralSink {
  id: number;
  writer: BlobWriter;
  meta: MessageMetaBuilder;
}

export class ImapSession {
  readonly id = randomBytes(6).toString('base64url');
  state: ImapState = 'not-authenticated';
  account: Account | null = null;
  selected: SelectedMailbox | null = null;
  /** ENABLEd extensions (rfc5161), upper-cased: CONDSTORE, QRESYNC, UTF8=ACCEPT, IMAP4REV2. */
  readonly enabled = new Set<string>();
  /** CONDSTORE is in use: enabled, or a CONDSTORE-only command was used (rfc7162 3.1). */
  condstoreActive = false;
  /** The saved search result (SEARCHRES, rfc5182), as UIDs. */
  savedSearch: number[] | null = null;
  tls: { version: string; cipher: string } | null;
  readonly out: ImapOutput;
  readonly log: Logger;
  readonly remoteAddress: string;
  private socket: Socket;
  private framer = newFramer();
  private readonly inbox: Buffer[] = [];
  private pumping = false;
  private closing = false;
  private finished = false;
  private errorsInRow = 0;
  private unsubscribe: (() => void) | null = null;
  /** A command waiting for the client's next line (IDLE's DONE, a SASL response). */
  private lineHandler: { tag: string; handle: (line: string) => Promise<void> } | null = null;
  private idling = false;
  private sink: LiteralSink | null = null;
  private readonly streamed = new Map<number, StreamedLiteral>();
  /** The command tag whose literal was refused: its NO goes out when the framer skipped it. */
  private refusedLiteral: { tag: string | null; text: string; sync: boolean } | null = null;
  private inflate: InflateRaw | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private lastActivity = Date.now();
  private closedResolve!: () => void;
  readonly closed = new Promise<void>((resolve) => (this.closedResolve = resolve));

  constructor(
    socket: Socket,
    readonly services: ImapServices,
    readonly settings: SettingsSnapshot,
    private readonly secureContext: SecureContext,
    log: Logger,
  ) {
    this.socket = socket;
    this.out = new ImapOutput(socket);
    this.remoteAddress = normalizeIp(socket.remoteAddress ?? 'unknown');
    this.tls = socket instanceof TLSSocket ? describeTls(socket) : null;
    this.log = log.child({ sid: this.id, svc: 'imap', ip: this.remoteAddress });
  }

  start(): void {
    this.log.info({ event: 'imap.connect', tls: this.tls?.version ?? null }, 'connection');
    this.attach(this.socket);
    this.resetIdle();
    this.out.text(`* OK [CAPABILITY ${this.capabilities().join(' ')}] ${this.services.hostname} Fulmar IMAP ready\r\n`);
    void this.out.flush();
  }

  // ---- facts commands read

  get plaintextAllowed(): boolean {
    return this.tls !== null || this.settings.get('auth.allow_plaintext');
  }

  /** UTF-8 mailbox names and quoted strings (UTF8=ACCEPT or IMAP4rev2 enabled). */
  get utf8(): boolean {
    return this.enabled.has('UTF8=ACCEPT') || this.enabled.has('IMAP4REV2');
  }

  get rev2(): boolean {
    return this.enabled.has('IMAP4REV2');
  }

  /** Largest APPEND (APPENDLIMIT, rfc7889). */
  get appendLimit(): number {
    const own = this.settings.get('imap.max_append_size');
    return own > 0 ? own : this.settings.get('smtp.max_message_size') || 2 ** 31;
  }

  capabilities(): string[] {
    const caps = ['IMAP4rev1', 'IMAP4rev2', 'LITERAL+', 'SASL-IR', 'ID', 'ENABLE', 'IDLE'];
    if (this.state === 'not-authenticated') {
      if (this.tls === null) caps.push('STARTTLS');
      if (this.plaintextAllowed) caps.push('AUTH=PLAIN', 'AUTH=LOGIN');
      else caps.push('LOGINDISABLED');
      return caps;
    }
    caps.push(
      'NAMESPACE',
      'UNSELECT',
      'UIDPLUS',
      'MOVE',
      'CONDSTORE',
      'QRESYNC',
      'ESEARCH',
      'SEARCHRES',
      'SPECIAL-USE',
      'CREATE-SPECIAL-USE',
      'LIST-EXTENDED',
      'LIST-STATUS',
      'CHILDREN',
      'STATUS=SIZE',
      'QUOTA',
      'QUOTA=RES-STORAGE',
      'BINARY',
      'UNSELECT',
      'UTF8=ACCEPT',
      'MULTIAPPEND',
      `APPENDLIMIT=${this.appendLimit}`,
    );
    if (!this.out.compressed) caps.push('COMPRESS=DEFLATE');
    return [...new Set(caps)];
  }

  // ---- input

  private attach(socket: Socket): void {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.log.debug({ event: 'imap.socket_error', err: err.message }, 'socket error'));
    socket.on('close', () => this.finish());
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    this.resetIdle();
    this.inbox.push(chunk);
    this.pauseInput();
    if (!this.pumping) void this.pump();
  }

  private pauseInput(): void {
    this.socket.pause();
    this.inflate?.pause();
  }

  private resumeInput(): void {
    this.socket.resume();
    this.inflate?.resume();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.inbox.length > 0 && !this.closing) {
        this.framer.push(this.inbox.shift()!);
        await this.drainFramer();
      }
    } catch (err) {
      this.log.error({ event: 'imap.internal_error', err }, 'internal error');
      this.close('* BYE Internal error, closing connection\r\n', 'internal-error');
    } finally {
      this.pumping = false;
      if (!this.closing) this.resumeInput();
    }
  }

  private async drainFramer(): Promise<void> {
    for (;;) {
      if (this.closing) return;
      const event = this.framer.next();
      if (event === null) return;
      await this.onFramerEvent(event);
    }
  }

  private async onFramerEvent(event: FramerEvent): Promise<void> {
    switch (event.type) {
      case 'literal':
        return this.onLiteral(event.literal);
      case 'literal-chunk':
        if (this.sink?.id === event.id) {
          this.sink.meta.write(event.chunk);
          await this.sink.writer.write(event.chunk);
        }
        return;
      case 'literal-end': {
        const sink = this.sink;
        this.sink = null;
        if (sink?.id === event.id) this.streamed.set(event.id, { blob: await sink.writer.finish(), meta: sink.meta });
        return;
      }
      case 'error': {
        if (event.reason === 'literal-rejected') {
          const refused = this.refusedLiteral;
          this.refusedLiteral = null;
          if (refused) return this.finishCommand(refused.tag ?? '*', { status: 'NO', code: 'TOOBIG', text: refused.text }, true);
          return; // skipped after a continuation line announced one (see onLiteral)
        }
        await this.discardStreamed();
        if (this.lineHandler) return this.failContinuation(event.message);
        if (event.reason === 'bad-literal') {
          // A malformed literal announcement: where the next command starts is unknowable.
          this.out.text(`${event.tag ?? '*'} BAD ${event.message}\r\n`);
          return this.close('* BYE Invalid literal; closing the connection\r\n', 'bad-literal');
        }
        return this.bad(event.tag, event.message);
      }
      case 'command':
        return this.onCommand(event.segments);
    }
  }

  private async onLiteral(literal: LiteralAnnouncement): Promise<void> {
    if (this.lineHandler) {
      // A SASL response or IDLE's DONE is one plain line; a literal there is a client error.
      this.framer.rejectLiteral();
      return this.failContinuation('A literal is not allowed here');
    }
    const refuse = async (text: string): Promise<void> => {
      this.framer.rejectLiteral();
      await this.discardStreamed();
      if (literal.sync) {
        // The client sends nothing more of this command; it waits for this answer.
        return this.finishCommand(literal.tag ?? '*', { status: 'NO', code: 'TOOBIG', text }, true);
      }
      // rfc7888 4: a non-synchronising literal is on its way; answer once it was skipped.
      this.refusedLiteral = { tag: literal.tag, text, sync: false };
      const next = this.framer.next();
      if (next) await this.onFramerEvent(next);
    };
    const isAppend = literal.command === 'APPEND' && this.state !== 'not-authenticated';
    if (isAppend) {
      if (literal.size > this.appendLimit) return refuse(`Message too large (the limit is ${this.appendLimit} bytes)`);
      this.framer.acceptLiteral('stream');
      const writer = await this.services.blobs.createWriter();
      this.sink = { id: literal.id, writer, meta: new MessageMetaBuilder() };
    } else {
      const limit = this.state === 'not-authenticated' ? MAX_LITERAL_PRE_AUTH : MAX_LITERAL_IN_MEMORY;
      if (literal.size > limit) return refuse(`Literal too large (the limit is ${limit} bytes here)`);
      this.framer.acceptLiteral('buffer');
    }
    if (literal.sync) {
      this.out.text('+ Ready for literal data\r\n');
      await this.out.flush();
    }
  }

  /** The staged blob of a streamed literal, taken over by the caller (APPEND). */
  takeStreamed(id: number): StreamedLiteral | null {
    const s = this.streamed.get(id) ?? null;
    this.streamed.delete(id);
    return s;
  }

  private async discardStreamed(): Promise<void> {
    if (this.sink) {
      await this.sink.writer.abort();
      this.sink = null;
    }
    for (const s of this.streamed.values()) await this.services.blobs.discard(s.blob).catch(() => {});
    this.streamed.clear();
  }

  private async onCommand(segments: Segment[]): Promise<void> {
    const lineHandler = this.lineHandler;
    if (lineHandler) {
      this.lineHandler = null;
      const line = segments.length === 1 && segments[0]!.kind === 'text' ? segments[0]!.bytes.toString('latin1') : null;
      await this.discardStreamed();
      return lineHandler.handle(line ?? '');
    }
    const parsed = parseCommand(segments, { utf8: this.utf8 });
    if (!parsed.ok) {
      await this.discardStreamed();
      return this.bad(parsed.tag, parsed.error);
    }
    await this.run(parsed.tag, parsed.command);
    await this.discardStreamed();
  }

  private async run(tag: string, command: Command): Promise<void> {
    const entry = COMMANDS[command.name];
    if (!entry.states.includes(this.state)) {
      return this.bad(tag, stateError(command.name, this.state));
    }
    this.errorsInRow = 0;
    let completion: Completion;
    try {
      completion = await entry.handler(this, tag, command as never);
    } catch (err) {
      completion = this.failure(command.name, err);
    }
    if (completion.status === 'deferred') return; // IDLE, STARTTLS, COMPRESS, LOGOUT answer themselves
    const uidCommand = 'uid' in command && command.uid === true;
    const allowExpunge = !entry.holdsExpunges || uidCommand;
    return this.finishCommand(tag, completion, allowExpunge);
  }

  /** Maps a thrown error to a tagged NO; our own bugs are logged with their stack. */
  failure(command: string, err: unknown): Completion {
    if (isFulmarError(err)) {
      if (!err.userError) this.log.warn({ event: 'imap.command_failed', command, err }, err.message);
      return { status: 'NO', code: responseCodeFor(err.kind), text: err.message };
    }
    this.log.error({ event: 'imap.internal_error', command, err }, 'command failed');
    return { status: 'NO', code: 'SERVERBUG', text: 'Internal error; the administrator can find it in the log' };
  }

  /** Sends what other sessions changed, then the tagged response. */
  async finishCommand(tag: string, completion: Exclude<Completion, { status: 'deferred' }>, allowExpunge: boolean): Promise<void> {
    this.sendUpdates(allowExpunge);
    const code = completion.code ? `[${completion.code}] ` : '';
    this.out.text(`${tag} ${completion.status} ${code}${completion.text}\r\n`);
    await this.out.flush();
    if (this.selected?.gone && this.state === 'selected') {
      // Another session deleted the mailbox: nothing is left to show.
      this.close('* BYE The selected mailbox was deleted; please reconnect\r\n', 'mailbox-gone');
    }
  }

  sendUpdates(allowExpunge: boolean): void {
    const box = this.selected;
    if (!box || !box.hasPending) return;
    for (const line of box.takeUpdates(allowExpunge, { condstore: this.condstoreActive, qresync: this.enabled.has('QRESYNC') })) {
      this.out.text(line);
    }
  }

  private bad(tag: string | null, message: string): Promise<void> {
    this.errorsInRow++;
    this.out.text(`${tag ?? '*'} BAD ${message}\r\n`);
    if (this.errorsInRow >= this.settings.get('imap.max_errors')) {
      this.close('* BYE Too many invalid commands\r\n', 'too-many-errors');
      return Promise.resolve();
    }
    return this.out.flush();
  }

  // ---- login, selection, IDLE, TLS, compression: state changes the commands ask for

  loggedIn(account: Account): void {
    this.account = account;
    this.state = 'authenticated';
    this.unsubscribe = this.services.events.subscribe(account.id, (event) => this.onMailEvent(event));
    this.log.info({ event: 'imap.login', login: account.address }, 'logged in');
  }

  select(box: SelectedMailbox): void {
    this.selected = box;
    this.state = 'selected';
    this.savedSearch = null;
  }

  unselect(): void {
    this.selected = null;
    this.savedSearch = null;
    if (this.state === 'selected') this.state = 'authenticated';
  }

  private onMailEvent(event: MailEvent): void {
    const box = this.selected;
    if (!box) return;
    box.onEvent(event);
    if (!this.idling) return;
    if (box.gone) {
      this.close('* BYE The selected mailbox was deleted; please reconnect\r\n', 'mailbox-gone');
      return;
    }
    if (box.hasPending) {
      this.sendUpdates(true);
      void this.out.flush();
    }
  }

  /**
   * Sends a continuation request; the client's next line goes to `handler`, not the parser. If
   * that line is malformed (too long, a bare CR, a literal), the command `tag` ends with BAD and
   * the next line is a command again (rfc9051 6.2.2).
   */
  async continueWith(tag: string, prompt: string, handler: (line: string) => Promise<void>): Promise<void> {
    this.lineHandler = { tag, handle: handler };
    this.out.text(`+ ${prompt}\r\n`);
    await this.out.flush();
  }

  private failContinuation(message: string): Promise<void> {
    const { tag } = this.lineHandler!;
    this.lineHandler = null;
    this.idling = false;
    this.errorsInRow++;
    return this.finishCommand(tag, { status: 'BAD', text: message }, true);
  }

  /** rfc2177: updates flow at once until the client sends DONE. */
  async beginIdle(tag: string): Promise<void> {
    this.idling = true;
    await this.continueWith(tag, 'idling', async (line) => {
      this.idling = false;
      if (line.toUpperCase() !== 'DONE') return this.finishCommand(tag, { status: 'BAD', text: 'Expected DONE to end IDLE' }, true);
      return this.finishCommand(tag, { status: 'OK', text: 'IDLE terminated' }, true);
    });
    this.sendUpdates(true);
    await this.out.flush();
  }

  async startTls(tag: string): Promise<void> {
    // rfc9051 6.2.1: nothing the client pipelined after STARTTLS is executed.
    const pipelined = this.framer.pendingBytes + this.inbox.reduce((n, b) => n + b.length, 0);
    this.inbox.length = 0;
    this.framer = newFramer();
    if (pipelined > 0) this.log.warn({ event: 'imap.starttls_pipelined', bytes: pipelined }, 'discarded commands pipelined after STARTTLS');
    this.out.text(`${tag} OK Begin TLS negotiation now\r\n`);
    await this.out.flush();
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    try {
      const secure = await upgradeServerSocket(plain, this.secureContext);
      this.socket = secure;
      this.out.replaceSocket(secure);
      this.tls = describeTls(secure);
      this.attach(secure);
      this.log.info({ event: 'imap.starttls', tls: this.tls.version }, 'TLS started');
    } catch (err) {
      this.log.info({ event: 'imap.starttls_failed', err: (err as Error).message }, 'TLS handshake failed');
      plain.destroy();
      this.finish();
    }
  }

  /** COMPRESS=DEFLATE (rfc4978): the OK goes out uncompressed, everything after compressed. */
  async startCompression(tag: string): Promise<void> {
    this.out.text(`${tag} OK DEFLATE active\r\n`);
    await this.out.flush();
    this.out.startCompression();
    const inflate = createInflateRaw();
    inflate.on('data', (chunk: Buffer) => this.onData(chunk));
    inflate.on('error', () => this.close('* BYE Invalid compressed data\r\n', 'bad-deflate'));
    const socket = this.socket;
    socket.removeAllListeners('data');
    socket.on('data', (chunk: Buffer) => {
      this.resetIdle();
      inflate.write(chunk);
    });
    this.inflate = inflate;
    // Bytes already read past the COMPRESS command were compressed.
    const rest = this.framer.takeRemaining?.() ?? Buffer.alloc(0);
    if (rest.length > 0) inflate.write(rest);
  }

  logout(tag: string): void {
    this.state = 'logout';
    this.out.text(`* BYE Logging out\r\n${tag} OK LOGOUT completed\r\n`);
    this.close('', 'logout');
  }

  // ---- lifetime

  private resetIdle(): void {
    this.lastActivity = Date.now();
    if (this.idleTimer) return;
    const timeout = (): number =>
      this.state === 'not-authenticated' ? this.settings.get('imap.login_timeout') : this.settings.get('imap.idle_timeout');
    const check = (): void => {
      // Output the client is still taking (a long FETCH) counts as activity.
      if (this.socket.writableLength > 0) this.lastActivity = Date.now();
      const left = this.lastActivity + timeout() - Date.now();
      if (left > 0) {
        this.idleTimer = setTimeout(check, left);
        this.idleTimer.unref();
        return;
      }
      this.close('* BYE Autologout; idle for too long\r\n', 'idle-timeout');
    };
    this.idleTimer = setTimeout(check, timeout());
    this.idleTimer.unref();
  }

  close(text: string, why: string): void {
    if (this.closing) return;
    this.closing = true;
    this.log.info({ event: 'imap.close', why }, 'closing');
    if (this.out.alive) {
      this.out.end(text);
      const socket = this.socket;
      setTimeout(() => socket.destroy(), 5000).unref();
    } else {
      this.socket.destroy();
    }
    this.inbox.length = 0;
  }

  shutdown(): void {
    this.close('* BYE Server shutting down\r\n', 'shutdown');
  }

  destroy(): void {
    this.socket.destroy();
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.closing = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.inflate?.destroy();
    void this.discardStreamed().catch(() => {});
    this.log.info({ event: 'imap.disconnect' }, 'disconnected');
    this.closedResolve();
  }
}

function newFramer(): CommandFramer {
  return new CommandFramer({
    maxLineLength: MAX_LINE,
    maxCommandBytes: MAX_COMMAND,
    maxLiteralInMemory: MAX_LITERAL_IN_MEMORY,
  });
}

function stateError(command: string, state: ImapState): string {
  if (state === 'not-authenticated') return `${command} needs you to log in first`;
  if (state === 'authenticated') return `${command} needs a selected mailbox (SELECT or EXAMINE first)`;
  return `${command} is not allowed now`;
}
