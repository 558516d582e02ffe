/**
 * The SMTP command parser: one command line in, a typed command or a typed error out.
 *
 * Purpose: syntax only. Whether a command is allowed in the session's state, whether an
 * extension was advertised, and every policy decision belong to the session.
 *
 * Invariants
 * - Pure and total: `parseCommand` never throws; every failure is a `CommandError` carrying the
 *   reply to send (code, enhanced status code, text).
 * - Verbs and ESMTP keywords are case-insensitive (rfc5321 2.4). The only laxity accepted is a
 *   space after "MAIL FROM:" / "RCPT TO:", which many clients send.
 *
 * Security: the line is untrusted client input, already bounded by the line reader (512 octets,
 * rfc5321 4.5.3.1.4) and decoded as UTF-8 by the caller; control characters and U+FFFD (invalid
 * UTF-8) are rejected. Paths are limited to 256 octets, local parts to 64, domains to 255
 * (rfc5321 4.5.3.1). UTF-8 in paths is accepted only under SMTPUTF8 (rfc6531 3.3).
 *
 * Standards: rfc5321 4.1.1 (commands), 4.1.2 (syntax), 4.1.1.3 and appendix C (source routes),
 * rfc1870 (SIZE), rfc6152 (8BITMIME), rfc3030 (BDAT, BINARYMIME), rfc6531 (SMTPUTF8),
 * rfc4954 (AUTH), rfc3461 (DSN: RET, ENVID, NOTIFY, ORCPT, xtext), rfc3207 (STARTTLS),
 * rfc3463 (enhanced status codes).
 */
import { type AddressLiteral, type Mailbox, isDomainName, parseAddressLiteral, parseMailbox } from '../../message/address.js';

export interface SmtpReply {
  code: number;
  /** Enhanced status code, rfc3463, e.g. `5.5.4`. */
  enhanced: string;
  text: string;
}

export type SmtpVerb =
  | 'EHLO'
  | 'HELO'
  | 'MAIL'
  | 'RCPT'
  | 'DATA'
  | 'BDAT'
  | 'RSET'
  | 'NOOP'
  | 'QUIT'
  | 'VRFY'
  | 'EXPN'
  | 'HELP'
  | 'STARTTLS'
  | 'AUTH';

/** An envelope address as parsed from a path. */
export interface EnvelopeAddress extends Mailbox {
  /** The path as received, between the angle brackets (source route included). */
  raw: string;
  /** Contains non-ASCII characters (only possible under SMTPUTF8). */
  utf8: boolean;
}

/** The argument of EHLO/HELO. */
export type HeloHost =
  | { kind: 'domain'; domain: string; raw: string }
  | { kind: 'address-literal'; literal: AddressLiteral; raw: string }
  /**
   * Not a Domain nor an address literal (e.g. `my_pc`, `EHLO a b`). Real clients send these;
   * the session decides whether to accept them (Postfix does, unless told otherwise).
   */
  | { kind: 'nonconforming'; raw: string };

export type BodyType = '7BIT' | '8BITMIME' | 'BINARYMIME';

export interface MailParams {
  /** rfc1870 SIZE=n, the declared message size; capped at Number.MAX_SAFE_INTEGER. */
  size?: number;
  /** rfc6152 / rfc3030 BODY= */
  body?: BodyType;
  /** rfc6531 SMTPUTF8 */
  smtputf8: boolean;
  /** rfc4954 5 AUTH=: the xtext-decoded mailbox, or null for `AUTH=<>`; absent when not given. */
  auth?: string | null;
  /** rfc3461 4.3 RET= */
  ret?: 'FULL' | 'HDRS';
  /** rfc3461 4.4 ENVID=, xtext-decoded */
  envid?: string;
}

export interface DsnNotify {
  never: boolean;
  success: boolean;
  failure: boolean;
  delay: boolean;
}

export interface RcptParams {
  /** rfc3461 4.1 NOTIFY= */
  notify?: DsnNotify;
  /** rfc3461 4.2 ORCPT=addr-type;xtext, decoded (and for `utf-8`, rfc6533 unitext decoded). */
  orcpt?: { addrType: string; address: string };
}

export type SmtpCommand =
  | { verb: 'EHLO' | 'HELO'; host: HeloHost }
  /** `from` is null for the null reverse-path `<>`. */
  | { verb: 'MAIL'; from: EnvelopeAddress | null; params: MailParams }
  /** `to.domain` is '' for `<Postmaster>` without a domain (rfc5321 4.1.1.3). */
  | { verb: 'RCPT'; to: EnvelopeAddress; params: RcptParams }
  | { verb: 'DATA' }
  | { verb: 'BDAT'; size: number; last: boolean }
  | { verb: 'RSET' }
  | { verb: 'NOOP'; text: string }
  | { verb: 'QUIT' }
  | { verb: 'VRFY'; text: string }
  | { verb: 'EXPN'; text: string }
  | { verb: 'HELP'; topic: string }
  | { verb: 'STARTTLS' }
  /** `initialResponse` is the base64 text as sent, '=' for an empty one, null when absent. */
  | { verb: 'AUTH'; mechanism: string; initialResponse: string | null };

export interface CommandError {
  ok: false;
  /** The verb when it was recognised, so the session can apply its per-verb rules. */
  verb: SmtpVerb | null;
  reply: SmtpReply;
}

export type ParseResult = { ok: true; command: SmtpCommand } | CommandError;

export interface ParseOptions {
  /**
   * The current transaction was started with SMTPUTF8: UTF-8 is valid in RCPT TO paths. For
   * MAIL FROM, the SMTPUTF8 parameter on the same line is what counts (rfc6531 3.4).
   */
  smtputf8?: boolean;
}

const MAX_PATH_OCTETS = 256; // rfc5321 4.5.3.1.3, with the angle brackets
const MAX_ENVID_CHARS = 100; // rfc3461 4.4
const MAX_ORCPT_CHARS = 500; // rfc3461 4.2
const MAX_BDAT_DIGITS = 15; // stays below 2^53

const VERBS: ReadonlySet<string> = new Set<SmtpVerb>([
  'EHLO', 'HELO', 'MAIL', 'RCPT', 'DATA', 'BDAT', 'RSET', 'NOOP', 'QUIT', 'VRFY', 'EXPN', 'HELP', 'STARTTLS', 'AUTH',
]);

function fail(verb: SmtpVerb | null, code: number, enhanced: string, text: string): CommandError {
  return { ok: false, verb, reply: { code, enhanced, text } };
}

function syntaxError(verb: SmtpVerb, text: string): CommandError {
  return fail(verb, 501, '5.5.4', text); // rfc3463 X.5.4: invalid command arguments
}

function ok(command: SmtpCommand): ParseResult {
  return { ok: true, command };
}

/** Parses one command line, given without its CR LF. */
export function parseCommand(line: string, options: ParseOptions = {}): ParseResult {
  const space = line.indexOf(' ');
  const word = (space === -1 ? line : line.slice(0, space)).toUpperCase();
  const verb = VERBS.has(word) ? (word as SmtpVerb) : null;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f\ufffd]/.test(line)) {
    return fail(verb, 501, '5.5.2', 'Syntax error: invalid character in command'); // rfc3463 X.5.2
  }
  if (verb === null) {
    return fail(null, 500, '5.5.2', line.length === 0 ? 'Syntax error: empty command' : 'Unrecognized command');
  }
  const hasArg = space !== -1;
  const arg = hasArg ? line.slice(space + 1) : '';
  switch (verb) {
    case 'EHLO':
    case 'HELO':
      return parseHelo(verb, arg);
    case 'MAIL':
      return parseMail(arg);
    case 'RCPT':
      return parseRcpt(arg, options.smtputf8 ?? false);
    case 'BDAT':
      return parseBdat(arg);
    case 'AUTH':
      return parseAuth(arg);
    case 'DATA':
    case 'RSET':
    case 'QUIT':
    case 'STARTTLS':
      // rfc5321 4.1.1.4-4.1.1.10, rfc3207 4: no parameters
      if (hasArg) return syntaxError(verb, 'Syntax error: no parameters allowed');
      return ok({ verb });
    case 'NOOP':
      return ok({ verb, text: arg }); // rfc5321 4.1.1.9: the string is ignored
    case 'HELP':
      return ok({ verb, topic: arg });
    case 'VRFY':
    case 'EXPN':
      // rfc5321 4.1.1.6-7: "VRFY" SP String
      if (arg.trim() === '') return syntaxError(verb, `Syntax error: ${verb} needs an argument`);
      return ok({ verb, text: arg });
  }
}

// --- EHLO / HELO ------------------------------------------------------------------------

function parseHelo(verb: 'EHLO' | 'HELO', arg: string): ParseResult {
  // rfc5321 4.1.1.1: "EHLO" SP ( Domain / address-literal ), "HELO" SP Domain
  const raw = arg.trim();
  if (raw === '') return syntaxError(verb, `Syntax error: ${verb} needs a domain or address literal`);
  if (raw.startsWith('[')) {
    const literal = parseAddressLiteral(raw);
    if (literal !== null) return ok({ verb, host: { kind: 'address-literal', literal, raw } });
  } else if (isDomainName(raw, true)) {
    return ok({ verb, host: { kind: 'domain', domain: raw.toLowerCase(), raw } });
  }
  return ok({ verb, host: { kind: 'nonconforming', raw } });
}

// --- MAIL / RCPT ------------------------------------------------------------------------

type PathResult = { ok: true; path: EnvelopeAddress | null; rest: string } | { ok: false; error: CommandError };

/**
 * Reads `FROM:` / `TO:` and the path after it. rfc5321 4.1.1.2 has no space after the colon;
 * one is accepted (as Postfix and most servers do), nothing else.
 */
function takePath(
  verb: 'MAIL' | 'RCPT',
  arg: string,
  keyword: 'FROM:' | 'TO:',
  utf8: boolean,
  role: 'sender' | 'recipient',
): PathResult {
  const enhanced = role === 'sender' ? '5.1.7' : '5.1.3'; // rfc3463 X.1.7 sender, X.1.3 recipient
  if (arg.slice(0, keyword.length).toUpperCase() !== keyword) {
    return { ok: false, error: syntaxError(verb, `Syntax error: expected ${verb} ${keyword}<address>`) };
  }
  let i = keyword.length;
  if (arg[i] === ' ') i++;
  if (arg[i] !== '<') {
    return { ok: false, error: fail(verb, 501, enhanced, 'Syntax error: the address must be in angle brackets') };
  }
  const close = findPathEnd(arg, i + 1);
  if (close === -1) return { ok: false, error: fail(verb, 501, enhanced, 'Syntax error: missing ">"') };
  const inner = arg.slice(i + 1, close);
  let rest = arg.slice(close + 1);
  if (rest !== '') {
    // rfc5321 4.1.1.2: [SP Mail-parameters], so one space and at least one parameter.
    if (!rest.startsWith(' ')) return { ok: false, error: syntaxError(verb, 'Syntax error: unexpected text after the address') };
    if (rest === ' ') return { ok: false, error: syntaxError(verb, 'Syntax error: trailing space after the address') };
    rest = rest.slice(1);
  }
  if (Buffer.byteLength(inner, 'utf8') + 2 > MAX_PATH_OCTETS) {
    return { ok: false, error: fail(verb, 501, enhanced, 'Path too long') }; // rfc5321 4.5.3.1.10
  }
  if (inner === '') {
    if (role === 'recipient') return { ok: false, error: fail(verb, 501, enhanced, 'Syntax error: empty recipient address') };
    return { ok: true, path: null, rest }; // rfc5321 4.1.2 Reverse-path = Path / "<>"
  }
  // rfc5321 4.1.2 A-d-l, 4.1.1.3 and appendix C: a source route is accepted and ignored.
  let mailboxText = inner;
  if (inner.startsWith('@')) {
    const colon = inner.indexOf(':');
    if (colon === -1 || !isSourceRoute(inner.slice(0, colon), utf8)) {
      return { ok: false, error: fail(verb, 501, enhanced, 'Syntax error: invalid source route') };
    }
    mailboxText = inner.slice(colon + 1);
  }
  // rfc5321 4.1.1.3: "RCPT TO:<Postmaster>" without a domain must be accepted.
  if (role === 'recipient' && mailboxText.toLowerCase() === 'postmaster') {
    return {
      ok: true,
      path: { localPart: mailboxText, domain: '', address: mailboxText, raw: inner, utf8: false },
      rest,
    };
  }
  const parsed = parseMailbox(mailboxText, { utf8 });
  if (!parsed.ok) {
    const who = role === 'sender' ? 'sender' : 'recipient';
    switch (parsed.reason) {
      case 'syntax':
        return { ok: false, error: fail(verb, 501, enhanced, `Bad ${who} address syntax: ${parsed.message}`) };
      case 'local-part-too-long':
      case 'domain-too-long':
        return { ok: false, error: fail(verb, 553, enhanced, `Bad ${who} address: ${parsed.message}`) };
      case 'non-ascii':
        // rfc6531 3.7.4.1
        return { ok: false, error: fail(verb, 553, '5.6.7', `Non-ASCII addresses not permitted for that ${who}`) };
    }
  }
  // eslint-disable-next-line no-control-regex
  const isUtf8 = /[^\x00-\x7f]/.test(inner);
  return { ok: true, path: { ...parsed.mailbox, raw: inner, utf8: isUtf8 }, rest };
}

/** The index of the ">" closing a path, skipping quoted strings; -1 when missing. */
function findPathEnd(s: string, from: number): number {
  let inQuote = false;
  for (let i = from; i < s.length; i++) {
    const c = s[i];
    if (inQuote) {
      if (c === '\\') i++;
      else if (c === '"') inQuote = false;
    } else if (c === '"') inQuote = true;
    else if (c === '>') return i;
    else if (c === '<') return -1;
  }
  return -1;
}

/** rfc5321 4.1.2 A-d-l = At-domain *( "," At-domain ), At-domain = "@" Domain */
function isSourceRoute(s: string, utf8: boolean): boolean {
  return s.split(',').every((d) => d.startsWith('@') && (isDomainName(d.slice(1), utf8) || parseAddressLiteral(d.slice(1)) !== null));
}

interface Param {
  keyword: string;
  value: string | null;
}

/** rfc5321 4.1.2 Mail-parameters = esmtp-param *(SP esmtp-param) */
function splitParams(verb: 'MAIL' | 'RCPT', text: string): Param[] | CommandError {
  if (text === '') return [];
  const params: Param[] = [];
  const seen = new Set<string>();
  for (const part of text.split(' ')) {
    const eq = part.indexOf('=');
    const keyword = (eq === -1 ? part : part.slice(0, eq)).toUpperCase();
    const value = eq === -1 ? null : part.slice(eq + 1);
    // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
    if (!/^[A-Z0-9][A-Z0-9-]*$/.test(keyword)) return syntaxError(verb, 'Syntax error: invalid parameter');
    // esmtp-value = 1*(%d33-60 / %d62-126), rfc6531 3.3 adds UTF-8
    if (value !== null && !/^[\x21-\x3c\x3e-\x7e\u0080-\uffff]+$/.test(value)) {
      return syntaxError(verb, `Syntax error: invalid value for ${keyword}`);
    }
    if (seen.has(keyword)) return syntaxError(verb, `Syntax error: ${keyword} given twice`);
    seen.add(keyword);
    params.push({ keyword, value });
  }
  return params;
}

function unknownParam(verb: 'MAIL' | 'RCPT', keyword: string): CommandError {
  return fail(verb, 555, '5.5.4', `Unsupported parameter ${keyword}`); // rfc5321 4.1.1.11
}

function parseMail(arg: string): ParseResult {
  // rfc5321 4.1.1.2: "MAIL FROM:" Reverse-path [SP Mail-parameters]
  // SMTPUTF8 on this line allows UTF-8 in the reverse-path (rfc6531 3.4): parse the path
  // allowing UTF-8, then check it against the parameters.
  const path = takePath('MAIL', arg, 'FROM:', true, 'sender');
  if (!path.ok) return path.error;
  const params = splitParams('MAIL', path.rest);
  if (!Array.isArray(params)) return params;
  const declaresUtf8 = params.some((p) => p.keyword === 'SMTPUTF8');
  if (path.path !== null && path.path.utf8 && !declaresUtf8) {
    return fail('MAIL', 553, '5.6.7', 'Non-ASCII addresses not permitted for that sender'); // rfc6531 3.7.4.1
  }
  const out: MailParams = { smtputf8: false };
  for (const { keyword, value } of params) {
    switch (keyword) {
      case 'SIZE': {
        // rfc1870 6: size-value = 1*20DIGIT
        if (value === null || !/^\d{1,20}$/.test(value)) return syntaxError('MAIL', 'Syntax error: SIZE needs a number');
        out.size = Math.min(Number(value), Number.MAX_SAFE_INTEGER);
        break;
      }
      case 'BODY': {
        const v = value?.toUpperCase();
        if (v !== '7BIT' && v !== '8BITMIME' && v !== 'BINARYMIME') {
          return syntaxError('MAIL', 'Syntax error: BODY must be 7BIT, 8BITMIME or BINARYMIME');
        }
        out.body = v;
        break;
      }
      case 'SMTPUTF8':
        if (value !== null) return syntaxError('MAIL', 'Syntax error: SMTPUTF8 takes no value'); // rfc6531 3.4
        out.smtputf8 = true;
        break;
      case 'AUTH': {
        // rfc4954 5: "AUTH=" (mailbox / "<>"), mailbox as xtext
        if (value === null) return syntaxError('MAIL', 'Syntax error: AUTH needs a value');
        if (value === '<>') {
          out.auth = null;
          break;
        }
        const decoded = decodeXtext(value);
        if (decoded === null) return syntaxError('MAIL', 'Syntax error: invalid xtext in AUTH');
        out.auth = decoded;
        break;
      }
      case 'RET': {
        const v = value?.toUpperCase();
        if (v !== 'FULL' && v !== 'HDRS') return syntaxError('MAIL', 'Syntax error: RET must be FULL or HDRS');
        out.ret = v;
        break;
      }
      case 'ENVID': {
        if (value === null || value.length > MAX_ENVID_CHARS) return syntaxError('MAIL', 'Syntax error: invalid ENVID');
        const decoded = decodeXtext(value);
        if (decoded === null) return syntaxError('MAIL', 'Syntax error: invalid xtext in ENVID');
        out.envid = decoded;
        break;
      }
      default:
        return unknownParam('MAIL', keyword);
    }
  }
  return ok({ verb: 'MAIL', from: path.path, params: out });
}

function parseRcpt(arg: string, smtputf8: boolean): ParseResult {
  // rfc5321 4.1.1.3: "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" / Forward-path ) [SP Rcpt-parameters]
  const path = takePath('RCPT', arg, 'TO:', smtputf8, 'recipient');
  if (!path.ok) return path.error;
  if (path.path === null) return syntaxError('RCPT', 'Syntax error: empty recipient address');
  const params = splitParams('RCPT', path.rest);
  if (!Array.isArray(params)) return params;
  const out: RcptParams = {};
  for (const { keyword, value } of params) {
    switch (keyword) {
      case 'NOTIFY': {
        const notify = parseNotify(value);
        if (notify === null) {
          return syntaxError('RCPT', 'Syntax error: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY');
        }
        out.notify = notify;
        break;
      }
      case 'ORCPT': {
        const orcpt = value === null || value.length > MAX_ORCPT_CHARS ? null : parseOrcpt(value);
        if (orcpt === null) return syntaxError('RCPT', 'Syntax error: ORCPT must be addr-type;xtext');
        out.orcpt = orcpt;
        break;
      }
      default:
        return unknownParam('RCPT', keyword);
    }
  }
  return ok({ verb: 'RCPT', to: path.path, params: out });
}

/** rfc3461 4.1: notify-esmtp-value = "NEVER" / 1#notify-list-element */
function parseNotify(value: string | null): DsnNotify | null {
  if (value === null) return null;
  const items = value.toUpperCase().split(',');
  if (items.length === 1 && items[0] === 'NEVER') return { never: true, success: false, failure: false, delay: false };
  const n: DsnNotify = { never: false, success: false, failure: false, delay: false };
  for (const item of items) {
    if (item === 'SUCCESS' && !n.success) n.success = true;
    else if (item === 'FAILURE' && !n.failure) n.failure = true;
    else if (item === 'DELAY' && !n.delay) n.delay = true;
    else return null;
  }
  return n;
}

/** rfc3461 4.2: orcpt-parameter = "ORCPT=" addr-type ";" xtext; addr-type = atom */
function parseOrcpt(value: string): { addrType: string; address: string } | null {
  const semi = value.indexOf(';');
  if (semi <= 0) return null;
  const addrType = value.slice(0, semi);
  if (!/^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$/.test(addrType)) return null;
  const decoded = decodeXtext(value.slice(semi + 1));
  if (decoded === null || decoded === '') return null;
  if (addrType.toLowerCase() === 'utf-8') {
    // rfc6533 3: utf-8-addr-xtext may embed "\x{HEX}" for non-ASCII code points
    const unescaped = decodeUnitext(decoded);
    if (unescaped === null) return null;
    return { addrType, address: unescaped };
  }
  return { addrType, address: decoded };
}

function decodeUnitext(s: string): string | null {
  let bad = false;
  const out = s.replace(/\\x\{([0-9A-Fa-f]{1,6})\}/g, (_m, hex: string) => {
    const cp = parseInt(hex, 16);
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      bad = true;
      return '';
    }
    return String.fromCodePoint(cp);
  });
  return bad ? null : out;
}

/**
 * Decodes rfc3461 4 xtext: xchar (%d33-126 except "+" and "=") or "+" and two upper-case hex
 * digits. The decoded octets are read as UTF-8. Returns null when the text is not xtext.
 */
export function decodeXtext(text: string): string | null {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x2b) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return null;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (code >= 33 && code <= 126 && code !== 0x3d) {
      bytes.push(code);
    } else {
      return null;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Encodes text as rfc3461 4 xtext (for DSN fields and the AUTH= parameter we send). */
export function encodeXtext(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    if (byte >= 33 && byte <= 126 && byte !== 0x2b && byte !== 0x3d) out += String.fromCharCode(byte);
    else out += `+${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

// --- BDAT / AUTH ------------------------------------------------------------------------

function parseBdat(arg: string): ParseResult {
  // rfc3030 2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CR LF; end-marker = "LAST"
  const m = /^(\d+)(?: ([Ll][Aa][Ss][Tt]))?$/.exec(arg);
  if (m === null) return syntaxError('BDAT', 'Syntax error: expected BDAT <size> [LAST]');
  const digits = m[1]!.replace(/^0+(?=\d)/, '');
  if (digits.length > MAX_BDAT_DIGITS) return syntaxError('BDAT', 'Syntax error: chunk size too large');
  return ok({ verb: 'BDAT', size: Number(digits), last: m[2] !== undefined });
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function parseAuth(arg: string): ParseResult {
  // rfc4954 4: "AUTH" SP sasl-mech [SP initial-response]; rfc4422 3.1: 1*20 of [A-Z0-9-_]
  const parts = arg.split(' ');
  const mechanism = (parts[0] ?? '').toUpperCase();
  if (parts.length > 2 || !/^[A-Z0-9_-]{1,20}$/.test(mechanism)) {
    return syntaxError('AUTH', 'Syntax error: expected AUTH <mechanism> [initial-response]');
  }
  const initial = parts[1];
  if (initial === undefined) return ok({ verb: 'AUTH', mechanism, initialResponse: null });
  // rfc4954 4: initial-response = base64 / "="; undecodable base64 gets 501 5.5.2
  if (initial !== '=' && (initial === '' || !BASE64.test(initial))) {
    return fail('AUTH', 501, '5.5.2', 'Invalid base64 in initial response');
  }
  return ok({ verb: 'AUTH', mechanism, initialResponse: initial });
}
