/**
 * One SMTP client session with one server address: greeting, EHLO (or HELO), STARTTLS, AUTH,
 * one mail transaction (MAIL, RCPT..., DATA, the dot-stuffed body), QUIT.
 *
 * Purpose: what one connection can decide. Some recipients get a final answer here (a 2xx, 4xx
 * or 5xx from this server); for the others the session says why it stopped and how far the
 * caller (deliver.ts) should go looking elsewhere: the next address, the next MX host, or nowhere.
 *
 * Invariants
 * - Never throws for anything the network or the server does; `runSession` always resolves,
 *   and the connection is destroyed on every path (finally).
 * - Once the end-of-data dot is sent, the accepted recipients are decided here whatever happens
 *   next (a lost reply defers them, "message may be sent more than once"), so a message is never
 *   sent to a second host after the first may have taken it.
 * - The message stream is opened only when the server said 354, read chunk by chunk with the
 *   socket's backpressure, and destroyed on every path. A local read error aborts the connection
 *   without the final dot, so a truncated message is never delivered.
 * - Credentials are sent only over TLS, unless the smarthost's TLS mode is 'none'.
 *
 * Security: the server is untrusted; its replies are bounded (reply.ts) and every step has a
 * deadline (connection.ts). Addresses and DSN values are checked by deliver.ts before they get
 * here, and connection.send refuses CR and LF, so nothing can add a command.
 *
 * Standards: rfc5321 3.1-3.3, 4.1.1, 4.2.5, 4.3.2 (sequence and replies), 4.5.2 (transparency,
 * dot-stuffing), rfc3207 (STARTTLS; EHLO again after it), rfc2920 3.1 (PIPELINING: MAIL, RCPT
 * and DATA in one group, replies read in order; a single dot when DATA was accepted but no
 * recipient was), rfc1870 (SIZE), rfc6152 (8BITMIME), rfc6531 3.4 (SMTPUTF8), rfc3461 4
 * (RET, ENVID, NOTIFY, ORCPT), rfc4954 and rfc4616 (AUTH PLAIN), rfc3463 (status codes).
 */
import type { Readable } from 'node:stream';
import type { Logger } from '../../log/logger.js';
import { DotStuffer } from '../../pop3/dot-stuff.js';
import { encodeXtext } from '../server/parser.js';
import { SmtpClientConnection, SmtpClientError, type ClientTlsOptions } from './connection.js';
import { ehloAuthMechanisms, ehloSizeLimit, formatClientReply, parseEhlo, replyClass, type EhloInfo, type SmtpClientReply } from './reply.js';
import type { DeliveryRequest, OutboundRecipient, RecipientOutcome, Smarthost, TlsPolicy } from './deliver.js';

/** Why recipients are not decided yet, or why they were decided without a server's own reply. */
export interface Reason {
  /** One line starting with a reply code and a status code: `451 4.4.1 connect to ...`. */
  reply: string;
  /** A 5xx: recipients left with this reason at the end fail instead of waiting. */
  permanent: boolean;
  remoteMta: string | null;
}

export interface SessionResult {
  /** Recipients this session decided. */
  decided: RecipientOutcome[];
  /** Why the others are not decided, and where to go next: null when every recipient is decided. */
  next: null | {
    reason: Reason;
    /** address: try the next address; host: skip to the next MX host; stop: try nothing else. */
    scope: 'address' | 'host' | 'stop';
    /** An opportunistic TLS handshake failed: connect to the same address again without TLS. */
    retryWithoutTls?: boolean;
  };
  /** The server sent a greeting (counts against the session limit). */
  greeted: boolean;
}

export interface SessionTimeouts {
  connectMs: number;
  greetingMs: number;
  commandMs: number;
  dataInitMs: number;
  dataBlockMs: number;
  dataEndMs: number;
  quitMs: number;
}

export interface SessionParams {
  request: DeliveryRequest;
  /** The recipients still to be decided. */
  recipients: OutboundRecipient[];
  /** The server's name (MX host or smarthost) and the address to connect to. */
  host: string;
  address: string;
  port: number;
  hostname: string;
  tlsPolicy: TlsPolicy;
  smarthost: Smarthost | null;
  /** Connect without STARTTLS (the retry after a failed opportunistic handshake). */
  plainOnly: boolean;
  needsSmtpUtf8: boolean;
  timeouts: SessionTimeouts;
  tlsCa?: Array<string | Buffer>;
  localAddress?: string;
  log?: Logger;
}

/** A reason of our own: `code status text`. */
function local(code: number, status: string, text: string, remoteMta: string | null): Reason {
  return { reply: `${code} ${status} ${text}`, permanent: code >= 500, remoteMta };
}

/** Internal: a step ended the session with this result. */
class Stop {
  constructor(readonly result: NonNullable<SessionResult['next']>) {}
}

export async function runSession(p: SessionParams): Promise<SessionResult> {
  const session = new ClientSession(p);
  return session.run();
}

class ClientSession {
  private conn: SmtpClientConnection | null = null;
  private greeted = false;
  /** What the session is doing, for timeout and lost-connection messages (Postfix's wording). */
  private stage = 'connecting';
  private ehlo: EhloInfo | null = null;
  private readonly decided: RecipientOutcome[] = [];
  /** The end-of-data dot was written: after this, nothing may be retried elsewhere. */
  private dotSent = false;
  /** Recipients the server accepted (RCPT 2xx) in this transaction. */
  private accepted: OutboundRecipient[] = [];

  constructor(private readonly p: SessionParams) {}

  private get peer(): string {
    return this.conn?.peer ?? `${this.p.host}[${this.p.address}]:${this.p.port}`;
  }

  async run(): Promise<SessionResult> {
    try {
      await this.connect();
      await this.greeting();
      await this.hello();
      await this.secure();
      await this.authenticate();
      await this.transaction();
      return this.result(null);
    } catch (err) {
      if (err instanceof Stop) {
        // Stops come between commands, never inside DATA, so a QUIT is a well-formed goodbye.
        if (this.conn !== null && this.conn.failed === null) await this.quit();
        return this.result(err.result);
      }
      if (err instanceof SmtpClientError) return this.result(this.fromConnectionError(err));
      // A bug or a local failure (the message could not be read): try nothing else now.
      const message = err instanceof Error ? err.message : String(err);
      this.p.log?.warn({ event: 'smtp.client.local_error', peer: this.peer, err }, 'delivery attempt failed locally');
      return this.result({ reason: local(451, '4.3.0', `local error while ${this.stage}: ${message}`, null), scope: 'stop' });
    } finally {
      this.conn?.destroy();
    }
  }

  private result(next: SessionResult['next']): SessionResult {
    return { decided: this.decided, next, greeted: this.greeted };
  }

  /** Turns a connection failure into where to go next. */
  private fromConnectionError(err: SmtpClientError): NonNullable<SessionResult['next']> {
    const host = this.p.host;
    if (err.kind === 'connect') return { reason: local(451, '4.4.1', err.message, null), scope: 'address' };
    // Implicit TLS (a smarthost on 465): the handshake is part of connecting.
    if (err.kind === 'tls') return { reason: local(451, '4.7.5', `TLS handshake with ${this.peer} failed: ${err.message}`, host), scope: 'address' };
    const what =
      err.kind === 'timeout'
        ? `conversation with ${this.peer} timed out while ${this.stage}`
        : err.kind === 'protocol'
          ? `${this.peer} broke the protocol while ${this.stage}: ${err.message}`
          : `lost connection with ${this.peer} while ${this.stage}${err.code ? ` (${err.message})` : ''}`;
    const status = err.kind === 'protocol' ? '4.5.0' : '4.4.2';
    if (this.dotSent) {
      // rfc5321 6.1 and rfc1047: the server may have taken the message; retrying elsewhere now
      // would deliver it twice for certain, waiting keeps it to "maybe".
      const reason = local(451, status, `${what} -- message may be sent more than once`, host);
      for (const r of this.accepted) this.decide(r, 'deferred', reason.reply);
      return { reason, scope: 'stop' };
    }
    return { reason: local(451, status, what, host), scope: 'address' };
  }

  /** A server's 4xx or 5xx as a reason; anything else here is a broken server, a temporary trouble. */
  private remote(reply: SmtpClientReply): Reason {
    const cls = replyClass(reply);
    if (cls === 4 || cls === 5) return { reply: formatClientReply(reply), permanent: cls === 5, remoteMta: this.p.host };
    return local(451, '4.5.0', `unexpected reply from ${this.peer} while ${this.stage}: ${formatClientReply(reply)}`, this.p.host);
  }

  /**
   * Records a recipient's outcome. The reply text always agrees with the outcome (2xx delivered,
   * 4xx deferred, 5xx failed), so the queue can read the status code from it; a server's reply
   * of another class (a 3xx to RCPT, a 250 to DATA) is wrapped in one of ours.
   */
  private decide(r: OutboundRecipient, outcome: RecipientOutcome['outcome'], reply: SmtpClientReply | string): void {
    let text: string;
    if (typeof reply === 'string') {
      text = reply;
    } else {
      const want = outcome === 'delivered' ? 2 : outcome === 'failed' ? 5 : 4;
      text = formatClientReply(reply);
      if (replyClass(reply) !== want) {
        text = `${want === 5 ? '554 5.5.0' : '451 4.5.0'} unexpected reply from ${this.peer} while ${this.stage}: ${text}`;
      }
    }
    this.decided.push({
      recipientId: r.id,
      outcome,
      reply: text,
      remoteMta: this.p.host,
      dsnRelayed: outcome === 'delivered' && this.has('DSN'),
    });
  }

  private has(keyword: string): boolean {
    return this.ehlo?.keywords.has(keyword) ?? false;
  }

  private async connect(): Promise<void> {
    const { p } = this;
    const implicitTls = p.smarthost?.tls === 'implicit' ? this.tlsOptions() : null;
    this.stage = 'connecting';
    this.conn = await SmtpClientConnection.connect({
      host: p.host,
      address: p.address,
      port: p.port,
      connectMs: p.timeouts.connectMs,
      implicitTls,
      ...(p.localAddress ? { localAddress: p.localAddress } : {}),
      ...(p.log ? { log: p.log } : {}),
    });
  }

  private tlsOptions(): ClientTlsOptions {
    const { p } = this;
    return {
      servername: p.host,
      // rfc3207 4.1 and Postfix's "may" level: opportunistic TLS encrypts without checking the
      // certificate (an MX certificate is rarely valid for its name); 'required' checks both.
      verify: p.tlsPolicy === 'required',
      handshakeMs: p.timeouts.commandMs,
      ...(p.tlsCa ? { ca: p.tlsCa } : {}),
    };
  }

  private async greeting(): Promise<void> {
    this.stage = 'receiving the initial server greeting';
    const reply = await this.conn!.readReply(this.p.timeouts.greetingMs, this.stage);
    this.greeted = true;
    if (replyClass(reply) === 2) return;
    // A 4xx or 5xx greeting: try the next address (Postfix's smtp_skip_5xx_greeting). A 5xx
    // stays permanent: if this was the last server, the recipients fail.
    throw new Stop({ reason: this.remote(reply), scope: 'address' });
  }

  /** EHLO; HELO when EHLO is refused with 5xx (rfc5321 3.2: then no extensions). */
  private async hello(): Promise<void> {
    const conn = this.conn!;
    const { commandMs } = this.p.timeouts;
    this.stage = 'performing the EHLO handshake';
    const reply = await conn.command(`EHLO ${this.p.hostname}`, commandMs, this.stage);
    if (replyClass(reply) === 2) {
      this.ehlo = parseEhlo(reply);
      return;
    }
    if (replyClass(reply) !== 5) throw new Stop({ reason: this.remote(reply), scope: 'address' });
    this.stage = 'performing the HELO handshake';
    const helo = await conn.command(`HELO ${this.p.hostname}`, commandMs, this.stage);
    if (replyClass(helo) !== 2) throw new Stop({ reason: this.remote(helo), scope: 'address' });
    this.ehlo = null;
  }

  /** STARTTLS when offered (or required), then EHLO again (rfc3207 4.2). */
  private async secure(): Promise<void> {
    const { p } = this;
    const conn = this.conn!;
    if (conn.tls !== null) return; // implicit TLS
    const smarthostTls = p.smarthost?.tls ?? null;
    if (smarthostTls === 'none' || p.plainOnly) return;
    const required = p.tlsPolicy === 'required' || smarthostTls === 'starttls';
    if (!this.has('STARTTLS')) {
      if (!required) return;
      throw new Stop({ reason: local(451, '4.7.4', `TLS is required, but was not offered by host ${this.peer}`, p.host), scope: 'address' });
    }
    this.stage = 'performing the STARTTLS handshake';
    const reply = await conn.command('STARTTLS', p.timeouts.commandMs, this.stage);
    if (reply.code !== 220) {
      if (reply.code === 421) throw new Stop({ reason: this.remote(reply), scope: 'host' });
      // Opportunistic: carry on in plain text on this connection, as Postfix does.
      if (!required) return;
      throw new Stop({
        reason: local(451, '4.7.4', `STARTTLS failed at ${this.peer}: ${formatClientReply(reply)}`, p.host),
        scope: 'address',
      });
    }
    try {
      await conn.startTls(this.tlsOptions());
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      const reason = local(451, '4.7.5', `TLS handshake with ${this.peer} failed: ${detail}`, p.host);
      // Opportunistic TLS that fails is retried at once without it (Postfix does the same);
      // when TLS is required, the next address is tried instead.
      throw new Stop({ reason, scope: 'address', ...(required ? {} : { retryWithoutTls: true }) });
    }
    const tls = conn.tls!;
    p.log?.debug({ event: 'smtp.client.tls', peer: this.peer, version: tls.version, cipher: tls.cipher, verified: tls.authorized });
    this.stage = 'performing the EHLO handshake after STARTTLS';
    const again = await conn.command(`EHLO ${p.hostname}`, p.timeouts.commandMs, this.stage);
    if (replyClass(again) !== 2) throw new Stop({ reason: this.remote(again), scope: 'address' });
    this.ehlo = parseEhlo(again);
  }

  /** AUTH at a smarthost (rfc4954): PLAIN, or LOGIN when only LOGIN is offered. */
  private async authenticate(): Promise<void> {
    const { p } = this;
    const smarthost = p.smarthost;
    if (smarthost === null || smarthost.username === null || smarthost.username === '') return;
    const conn = this.conn!;
    const { commandMs } = p.timeouts;
    // An administrator has to fix any of these, so they defer and stop rather than bounce.
    const fail = (text: string): Stop => new Stop({ reason: local(451, '4.7.0', text, p.host), scope: 'stop' });
    if (conn.tls === null && smarthost.tls !== 'none') throw fail(`refusing to send credentials to ${this.peer} without TLS`);
    const mechanisms = this.ehlo ? ehloAuthMechanisms(this.ehlo) : [];
    const password = smarthost.password ?? '';
    const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
    this.stage = 'performing the AUTH handshake';
    let reply: SmtpClientReply;
    if (mechanisms.includes('PLAIN')) {
      // rfc4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd; sent as the initial response.
      reply = await conn.command(`AUTH PLAIN ${b64(`\0${smarthost.username}\0${password}`)}`, commandMs, this.stage);
    } else if (mechanisms.includes('LOGIN')) {
      reply = await conn.command('AUTH LOGIN', commandMs, this.stage);
      if (reply.code === 334) reply = await conn.command(b64(smarthost.username), commandMs, this.stage, true);
      if (reply.code === 334) reply = await conn.command(b64(password), commandMs, this.stage, true);
    } else {
      throw fail(`${this.peer} offers no SASL mechanism we can use (PLAIN, LOGIN)${mechanisms.length > 0 ? `: ${mechanisms.join(' ')}` : ''}`);
    }
    if (reply.code === 235) return;
    if (reply.code === 421) throw new Stop({ reason: this.remote(reply), scope: 'host' });
    throw fail(`SASL authentication failed; server ${this.peer} said: ${formatClientReply(reply)}`);
  }

  /** One transaction for every undecided recipient: MAIL, RCPT..., DATA, body, end of data. */
  private async transaction(): Promise<void> {
    const { p } = this;
    const { request } = p;
    const conn = this.conn!;
    this.checkPolicy();
    const mailLine = `MAIL FROM:<${request.mailFrom}>${this.mailParams()}`;
    const rcptLines = p.recipients.map((r) => `RCPT TO:<${r.address}>${this.rcptParams(r)}`);
    const pipelining = this.has('PIPELINING');
    const { commandMs, dataInitMs } = p.timeouts;

    // rfc2920 3.1: MAIL, the RCPTs and DATA go in one group; the replies come back in order.
    if (pipelining) conn.send([mailLine, ...rcptLines, 'DATA']);
    this.stage = 'sending MAIL FROM';
    const mail = pipelining ? await conn.readReply(commandMs, this.stage) : await conn.command(mailLine, commandMs, this.stage);
    if (mail.code === 421) throw new Stop({ reason: this.remote(mail), scope: 'host' });
    const mailOk = replyClass(mail) === 2;
    if (!mailOk && !pipelining) {
      if (replyClass(mail) !== 5) throw new Stop({ reason: this.remote(mail), scope: 'host' });
      for (const r of p.recipients) this.decide(r, 'failed', mail);
      await this.quit();
      return;
    }

    this.stage = 'sending RCPT TO';
    const refused: Array<{ r: OutboundRecipient; reply: SmtpClientReply }> = [];
    for (let i = 0; i < p.recipients.length; i++) {
      const r = p.recipients[i]!;
      const reply = pipelining ? await conn.readReply(commandMs, this.stage) : await conn.command(rcptLines[i]!, commandMs, this.stage);
      if (reply.code === 421) {
        if (mailOk) this.settleRefused(refused);
        throw new Stop({ reason: this.remote(reply), scope: 'host' });
      }
      if (mailOk && replyClass(reply) === 2) this.accepted.push(r);
      else refused.push({ r, reply });
    }

    let data: SmtpClientReply | null = null;
    if (pipelining) {
      this.stage = 'sending DATA command';
      data = await conn.readReply(dataInitMs, this.stage);
    }
    if (!mailOk) {
      // Pipelined and MAIL refused: every recipient shares MAIL's fate.
      if (replyClass(mail) !== 5) {
        if (data?.code === 354) await this.abortData();
        throw new Stop({ reason: this.remote(mail), scope: 'host' });
      }
      for (const r of p.recipients) this.decide(r, 'failed', mail);
      if (data?.code === 354) await this.abortData();
      await this.quit();
      return;
    }
    this.settleRefused(refused);
    if (this.accepted.length === 0) {
      // rfc2920 3.1: a server that accepted DATA anyway gets a lone dot.
      if (data?.code === 354) await this.abortData();
      await this.quit();
      return;
    }
    if (data === null) {
      this.stage = 'sending DATA command';
      data = await conn.command('DATA', dataInitMs, this.stage);
    }
    if (data.code === 421) throw new Stop({ reason: this.remote(data), scope: 'host' });
    if (data.code !== 354) {
      const cls = replyClass(data);
      // A 2xx or 3xx other than 354 is a broken server: wait and try again later.
      const outcome = cls === 5 ? 'failed' : 'deferred';
      for (const r of this.accepted) this.decide(r, outcome, data);
      await this.quit();
      return;
    }

    this.stage = 'sending message body';
    await this.sendBody();
    this.dotSent = true;
    this.stage = 'sending end of data';
    const end = await conn.readReply(p.timeouts.dataEndMs, this.stage);
    const cls = replyClass(end);
    const outcome = cls === 2 ? 'delivered' : cls === 5 ? 'failed' : 'deferred';
    for (const r of this.accepted) this.decide(r, outcome, end);
    await this.quit();
  }

  /** Refusals at RCPT are final for this attempt: 5xx fails, 4xx waits for the next attempt. */
  private settleRefused(refused: Array<{ r: OutboundRecipient; reply: SmtpClientReply }>): void {
    for (const { r, reply } of refused) {
      const cls = replyClass(reply);
      // A 3xx (or a 1xx-like oddity) to RCPT is nonsense: it waits, as a 4xx does.
      this.decide(r, cls === 5 ? 'failed' : 'deferred', reply);
    }
    refused.length = 0;
  }

  /** Checks what the message needs against what the server offers, before sending anything. */
  private checkPolicy(): void {
    const { p } = this;
    const { request } = p;
    const stop = (code: number, status: string, text: string): Stop =>
      new Stop({ reason: local(code, status, text, p.host), scope: 'stop' });
    const limit = this.ehlo ? ehloSizeLimit(this.ehlo) : null;
    // rfc1870 6: a message larger than the server's fixed limit is not offered to it.
    if (limit !== null && request.size > limit) {
      throw stop(552, '5.3.4', `message size ${request.size} exceeds size limit ${limit} of server ${this.peer}`);
    }
    // rfc6152 3 and rfc5321 2.4: 8-bit data only to a server that announced 8BITMIME. We do not
    // downgrade to 7-bit (rfc1652 conversion), so the message fails (rfc3463 5.6.3).
    if (request.needs8BitMime && !this.has('8BITMIME')) {
      throw stop(554, '5.6.3', `conversion required but not supported: the message has 8-bit content and ${this.peer} does not announce 8BITMIME`);
    }
    // rfc6531 3.2 and 3.4: UTF-8 addresses or headers need SMTPUTF8; rfc6531 3.5: 5.6.7.
    if (p.needsSmtpUtf8 && !this.has('SMTPUTF8')) {
      throw stop(553, '5.6.7', `SMTPUTF8 is required, but was not offered by host ${this.peer}`);
    }
  }

  private mailParams(): string {
    const { request } = this.p;
    let out = '';
    if (this.has('SIZE')) out += ` SIZE=${request.size}`; // rfc1870 6
    if (request.needs8BitMime) out += ' BODY=8BITMIME'; // rfc6152 2
    if (this.p.needsSmtpUtf8) out += ' SMTPUTF8'; // rfc6531 3.4
    if (this.has('DSN')) {
      // rfc3461 4.3 and 4.4, relayed as rfc3461 6.2.1 asks.
      if (request.ret !== null) out += ` RET=${request.ret}`;
      if (request.envId !== null && request.envId !== '') out += ` ENVID=${encodeXtext(request.envId)}`;
    }
    return out;
  }

  private rcptParams(r: OutboundRecipient): string {
    if (!this.has('DSN')) return '';
    let out = '';
    if (r.notify !== null && r.notify !== '') out += ` NOTIFY=${r.notify.toUpperCase()}`; // rfc3461 4.1
    if (r.orcpt !== null && r.orcpt !== '') out += ` ORCPT=${encodeOrcpt(r.orcpt)}`; // rfc3461 4.2
    return out;
  }

  /** Streams the message, dot-stuffed (rfc5321 4.5.2), then CRLF.CRLF. */
  private async sendBody(): Promise<void> {
    const conn = this.conn!;
    const { dataBlockMs } = this.p.timeouts;
    const stuffer = new DotStuffer();
    let stream: Readable | null = null;
    try {
      stream = this.p.request.open();
      for await (const chunk of stream as AsyncIterable<Buffer | string>) {
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
        // Writes are awaited one at a time: the stream is read no faster than the socket sends.
        await conn.writeData(stuffer.push(bytes), dataBlockMs);
      }
    } catch (err) {
      if (err instanceof SmtpClientError) throw err;
      // The message could not be read: the connection is dropped without the final dot
      // (the finally of run()), so the server discards what it got.
      throw new Error(`could not read the message: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      stream?.destroy();
    }
    // end() adds the CRLF a message without a final line end lacks, then ".\r\n".
    await conn.writeData(stuffer.end(), dataBlockMs);
  }

  /** rfc2920 3.1: DATA was accepted although no recipient was; send a lone dot and go. */
  private async abortData(): Promise<void> {
    const conn = this.conn!;
    this.stage = 'ending an empty DATA';
    await conn.writeData(Buffer.from('.\r\n'), this.p.timeouts.dataBlockMs);
    await conn.readReply(this.p.timeouts.dataEndMs, this.stage);
  }

  private async quit(): Promise<void> {
    this.stage = 'sending QUIT';
    await this.conn!.quit(this.p.timeouts.quitMs);
  }
}

/**
 * rfc3461 4.2: ORCPT=addr-type;xtext. We store `addr-type;address` decoded (as the SMTP server
 * records it). For `utf-8`, rfc6533 3 utf-8-addr-xtext: non-ASCII, "+", "=" and "\" as \x{HEX};
 * otherwise plain xtext.
 */
export function encodeOrcpt(stored: string): string {
  const semi = stored.indexOf(';');
  const addrType = semi > 0 ? stored.slice(0, semi) : 'rfc822';
  const address = semi > 0 ? stored.slice(semi + 1) : stored;
  if (addrType.toLowerCase() === 'utf-8') {
    let out = '';
    for (const ch of address) {
      const cp = ch.codePointAt(0)!;
      out += cp < 0x21 || cp > 0x7e || ch === '+' || ch === '=' || ch === '\\' ? `\\x{${cp.toString(16).toUpperCase()}}` : ch;
    }
    return `${addrType};${out}`;
  }
  return `${addrType};${encodeXtext(address)}`;
}
