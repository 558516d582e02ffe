/**
 * Commands about the connection itself: CAPABILITY, NOOP, LOGOUT, ID, STARTTLS, LOGIN,
 * AUTHENTICATE, ENABLE, COMPRESS.
 *
 * Security: LOGIN and AUTHENTICATE are refused without TLS unless auth.allow_plaintext
 * (LOGINDISABLED, rfc9051 6.2.3); failed logins are delayed and counted per IP address, shared
 * with SMTP AUTH and POP3.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { decodePlain, LoginExchange, type LoginStep } from '../../directory/sasl.js';
import type { Account } from '../../store/types.js';
import type { Command } from '../ast.js';
import type { ImapSession } from '../session.js';
import { quoted } from '../wire.js';
import type { Completion } from './table.js';

type Cmd<N extends Command['name']> = Extract<Command, { name: N }>;

const OK = (text: string, code?: string): Completion => (code ? { status: 'OK', code, text } : { status: 'OK', text });

export async function capability(session: ImapSession): Promise<Completion> {
  session.out.text(`* CAPABILITY ${session.capabilities().join(' ')}\r\n`);
  return OK('CAPABILITY completed');
}

export async function noop(): Promise<Completion> {
  return OK('NOOP completed');
}

export async function logout(session: ImapSession, tag: string): Promise<Completion> {
  session.logout(tag);
  return { status: 'deferred' };
}

/** rfc2971: we log what the client says it is and tell it who we are. */
export async function id(session: ImapSession, _tag: string, command: Cmd<'ID'>): Promise<Completion> {
  if (command.params) {
    const client = Object.fromEntries(command.params.slice(0, 30).map(([k, v]) => [k.slice(0, 64), v?.slice(0, 256) ?? null]));
    session.log.info({ event: 'imap.client_id', client }, 'client identified itself');
  }
  session.out.text(`* ID (${quoted('name')} ${quoted('Fulmar')} ${quoted('vendor')} ${quoted('Fulmar')})\r\n`);
  return OK('ID completed');
}

export async function starttls(session: ImapSession, tag: string): Promise<Completion> {
  if (session.tls) return { status: 'BAD', text: 'TLS is already active' };
  await session.startTls(tag);
  return { status: 'deferred' };
}

export async function login(session: ImapSession, tag: string, command: Cmd<'LOGIN'>): Promise<Completion> {
  if (!session.plaintextAllowed) {
    return { status: 'NO', code: 'PRIVACYREQUIRED', text: 'LOGIN is disabled on connections without TLS; use STARTTLS or port 993' };
  }
  return checkedLogin(session, tag, command.username, command.password);
}

export async function authenticate(session: ImapSession, tag: string, command: Cmd<'AUTHENTICATE'>): Promise<Completion> {
  if (!session.plaintextAllowed) {
    return { status: 'NO', code: 'PRIVACYREQUIRED', text: 'Authentication is disabled on connections without TLS; use STARTTLS or port 993' };
  }
  const mechanism = command.mechanism.toUpperCase();
  const finish = async (completion: Completion): Promise<void> => {
    if (completion.status !== 'deferred') await session.finishCommand(tag, completion, true);
  };
  if (mechanism === 'PLAIN') {
    const withResponse = async (response: string): Promise<Completion> => {
      if (response === '*') return { status: 'BAD', text: 'Authentication cancelled' };
      const decoded = decodePlain(response);
      if (!decoded.ok) return { status: 'BAD', text: decoded.error };
      if (decoded.authzid !== '' && decoded.authzid.toLowerCase() !== decoded.authcid.toLowerCase()) {
        return { status: 'NO', code: 'AUTHORIZATIONFAILED', text: 'Authorization identity must be empty or the login' };
      }
      return checkedLogin(session, tag, decoded.authcid, decoded.password);
    };
    // rfc4959: an initial response of "=" is an empty one.
    if (command.initialResponse !== null) return withResponse(command.initialResponse === '=' ? '' : command.initialResponse);
    await session.continueWith(tag, '', async (line) => finish(await withResponse(line)));
    return { status: 'deferred' };
  }
  if (mechanism === 'LOGIN') {
    const exchange = new LoginExchange();
    const step = async (result: LoginStep): Promise<Completion> => {
      if (result.kind === 'failed') return { status: 'BAD', text: result.error };
      if (result.kind === 'done') return checkedLogin(session, tag, result.username, result.password);
      await session.continueWith(tag, result.challenge, async (line) => finish(await step(exchange.respond(line))));
      return { status: 'deferred' };
    };
    return step(exchange.start(command.initialResponse));
  }
  return { status: 'NO', code: 'CANNOT', text: `Unsupported mechanism ${mechanism}; use PLAIN or LOGIN` };
}

async function checkedLogin(session: ImapSession, tag: string, name: string, password: string): Promise<Completion> {
  const { failures, directory } = session.services;
  if (failures.blocked(session.remoteAddress, session.settings.get('auth.max_failures_per_ip'))) {
    session.log.warn({ event: 'imap.login_throttled', login: name }, 'too many failed logins from this address');
    return { status: 'NO', code: 'UNAVAILABLE', text: 'Too many failed logins from your address; try again later' };
  }
  let account: Account | null;
  account = await directory.authenticate(name, password, { cacheTtlMs: session.settings.get('auth.cache_ttl') });
  if (!account) {
    failures.record(session.remoteAddress);
    session.log.info({ event: 'imap.auth_failed', login: name }, 'authentication failed');
    await sleep(session.settings.get('auth.failure_delay'));
    return { status: 'NO', code: 'AUTHENTICATIONFAILED', text: 'Authentication failed' };
  }
  session.loggedIn(account);
  void tag;
  // rfc9051 7.1: the capabilities change at login, so tell them in the tagged OK.
  return OK('Logged in', `CAPABILITY ${session.capabilities().join(' ')}`);
}

const ENABLEABLE = new Set(['CONDSTORE', 'QRESYNC', 'UTF8=ACCEPT', 'IMAP4REV2']);

/** rfc5161: only what we know is enabled, and `* ENABLED` lists what this command enabled. */
export async function enable(session: ImapSession, _tag: string, command: Cmd<'ENABLE'>): Promise<Completion> {
  const newly: string[] = [];
  for (const raw of command.capabilities) {
    const cap = raw.toUpperCase();
    if (!ENABLEABLE.has(cap) || session.enabled.has(cap)) continue;
    session.enabled.add(cap);
    newly.push(raw);
    if (cap === 'QRESYNC' && !session.enabled.has('CONDSTORE')) session.enabled.add('CONDSTORE'); // rfc7162 3.2.3
    if (cap === 'CONDSTORE' || cap === 'QRESYNC') session.condstoreActive = true;
  }
  session.out.text(`* ENABLED${newly.map((c) => ` ${c}`).join('')}\r\n`);
  return OK('ENABLE completed');
}

export async function compress(session: ImapSession, tag: string, command: Cmd<'COMPRESS'>): Promise<Completion> {
  if (command.mechanism.toUpperCase() !== 'DEFLATE') return { status: 'BAD', text: `Unknown compression mechanism ${command.mechanism}` };
  if (session.out.compressed) return { status: 'NO', code: 'COMPRESSIONACTIVE', text: 'Compression is already active' };
  await session.startCompression(tag);
  return { status: 'deferred' };
}
