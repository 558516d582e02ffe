/**
 * Mailbox addresses: the strict RFC 5321 form used in the SMTP envelope, and the lenient
 * RFC 5322 address lists found in header fields.
 *
 * Purpose: one place that says what a valid envelope mailbox is, how an address is normalised
 * for lookups (domain lower-cased, IDNA left as it is), and how a From/To/Cc field value splits
 * into `{ name, address }` entries.
 *
 * Security: all input is untrusted (envelope paths from SMTP clients, header fields from any
 * sender). Parsing is linear in the input; nothing recurses except comments, whose depth is
 * bounded (MAX_COMMENT_DEPTH). Lengths: local part 64, domain 255 octets (rfc5321 4.5.3.1.1-2).
 *
 * Standards: rfc5321 4.1.2 (Mailbox, Local-part, Domain, address-literal), rfc6531 3.3 (UTF-8
 * local parts and U-labels with SMTPUTF8), rfc5322 3.4 (mailbox, group, address-list),
 * rfc5322 4.4 (obsolete forms: obs-route, CFWS inside addr-spec), rfc6532 3.2 (UTF-8 in headers).
 */
import { isIPv4, isIPv6 } from 'node:net';

export const MAX_LOCAL_PART_OCTETS = 64; // rfc5321 4.5.3.1.1
export const MAX_DOMAIN_OCTETS = 255; // rfc5321 4.5.3.1.2
const MAX_LABEL_OCTETS = 63; // rfc1035 2.3.4
const MAX_COMMENT_DEPTH = 32;

/** A parsed envelope mailbox. */
export interface Mailbox {
  /** The local part's value: quotes removed and quoted-pairs resolved. Case is kept (rfc5321 2.4). */
  localPart: string;
  /** The domain lower-cased (A-labels and U-labels as given), or an address literal, e.g. `[192.0.2.1]`. */
  domain: string;
  /** `localPart@domain`, the local part re-quoted only when it is not a dot-string. */
  address: string;
}

export type MailboxError =
  | { ok: false; reason: 'syntax'; message: string }
  | { ok: false; reason: 'local-part-too-long'; message: string }
  | { ok: false; reason: 'domain-too-long'; message: string }
  /** Non-ASCII characters where SMTPUTF8 was not given (rfc6531 3.5). */
  | { ok: false; reason: 'non-ascii'; message: string };

export type MailboxResult = { ok: true; mailbox: Mailbox } | MailboxError;

export interface MailboxOptions {
  /** SMTPUTF8 applies: UTF-8 is allowed in the local part and the domain (rfc6531 3.3). */
  utf8: boolean;
}

/** An address literal: `[192.0.2.1]`, `[IPv6:2001:db8::1]` or `[tag:content]` (rfc5321 4.1.3). */
export interface AddressLiteral {
  family: 'ipv4' | 'ipv6' | 'general';
  /** The address inside the brackets, without the `IPv6:` tag; for `general`, the whole content. */
  value: string;
  /** As written, with the brackets. */
  literal: string;
}

// --- character classes ------------------------------------------------------------------

// rfc5322 3.2.3 atext
const ATEXT_ASCII = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]$/;

function isAtextCode(code: number, utf8: boolean): boolean {
  if (code >= 0x80) return utf8 && code !== 0xfffd; // rfc6531 3.3 atext =/ UTF8-non-ascii
  return ATEXT_ASCII.test(String.fromCharCode(code));
}

function isLetDig(code: number): boolean {
  return (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a);
}

function hasNonAscii(s: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /[^\x00-\x7f]/.test(s);
}

function octets(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** rfc5322 3.2.3 dot-atom-text (as rfc5321 Dot-string): atoms separated by single dots. */
export function isDotString(s: string, utf8 = false): boolean {
  if (s.length === 0) return false;
  let prevDot = true;
  for (let i = 0; i < s.length; i++) {
    const code = s.charCodeAt(i);
    if (code === 0x2e) {
      if (prevDot) return false;
      prevDot = true;
      continue;
    }
    if (code >= 0xd800 && code <= 0xdfff) {
      // A surrogate pair is one non-ASCII code point; a lone surrogate is invalid.
      const cp = s.codePointAt(i)!;
      if (cp < 0x10000) return false;
      if (!utf8) return false;
      i++;
      prevDot = false;
      continue;
    }
    if (!isAtextCode(code, utf8)) return false;
    prevDot = false;
  }
  return !prevDot;
}

/**
 * rfc5321 4.1.2 Domain (sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str]); with
 * utf8, a label may also be a U-label (rfc6531 3.3), checked loosely: any non-ASCII letters.
 */
export function isDomainName(s: string, utf8 = false): boolean {
  if (s.length === 0 || octets(s) > MAX_DOMAIN_OCTETS) return false;
  for (const label of s.split('.')) {
    if (label.length === 0 || octets(label) > MAX_LABEL_OCTETS) return false;
    const first = label.charCodeAt(0);
    const last = label.charCodeAt(label.length - 1);
    for (let i = 0; i < label.length; i++) {
      const code = label.charCodeAt(i);
      if (isLetDig(code)) continue;
      if (code === 0x2d && i !== 0 && i !== label.length - 1) continue;
      if (code >= 0x80 && utf8 && code !== 0xfffd && !isUnicodeSpaceOrControl(code)) continue;
      return false;
    }
    if (first === 0x2d || last === 0x2d) return false;
  }
  return true;
}

function isUnicodeSpaceOrControl(code: number): boolean {
  return (code >= 0x80 && code <= 0x9f) || code === 0xa0 || code === 0x2028 || code === 0x2029 || code === 0xfeff;
}

/** Parses `[...]` as an rfc5321 4.1.3 address literal; null when it is not one. */
export function parseAddressLiteral(s: string): AddressLiteral | null {
  if (s.length < 3 || s[0] !== '[' || s[s.length - 1] !== ']') return null;
  const inner = s.slice(1, -1);
  if (/^\d{1,3}(?:\.\d{1,3}){3}$/.test(inner)) {
    // rfc5321 4.1.3 IPv4-address-literal: Snum 0-255
    return isIPv4(inner.replace(/\b0+(\d)/g, '$1')) ? { family: 'ipv4', value: inner, literal: s } : null;
  }
  if (/^ipv6:/i.test(inner)) {
    const addr = inner.slice(5);
    return isIPv6(addr) && !addr.includes('%') ? { family: 'ipv6', value: addr, literal: s } : null;
  }
  // General-address-literal = Standardized-tag ":" 1*dcontent
  const m = /^([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?):([\x21-\x5a\x5e-\x7e]+)$/.exec(inner);
  if (m && !/^ipv6$/i.test(m[1]!)) return { family: 'general', value: inner, literal: s };
  return null;
}

// --- RFC 5321 mailbox -------------------------------------------------------------------

/**
 * Parses an rfc5321 4.1.2 Mailbox (`Local-part "@" ( Domain / address-literal )`), the part of
 * a path between the angle brackets once any source route is gone.
 */
export function parseMailbox(text: string, options: MailboxOptions): MailboxResult {
  if (!options.utf8 && hasNonAscii(text)) {
    return { ok: false, reason: 'non-ascii', message: 'Non-ASCII address without SMTPUTF8' };
  }
  let localPart: string;
  let rest: number; // index of the "@"
  if (text.startsWith('"')) {
    const q = readQuotedString5321(text, 0, options.utf8);
    if (q === null) return syntax('Invalid quoted local part');
    localPart = q.value;
    rest = q.end;
  } else {
    rest = text.lastIndexOf('@');
    if (rest <= 0) return syntax(rest === 0 ? 'Empty local part' : 'Missing @domain');
    localPart = text.slice(0, rest);
    if (!isDotString(localPart, options.utf8)) return syntax('Invalid local part');
  }
  if (text[rest] !== '@') return syntax('Missing @domain');
  const rawLocal = text.slice(0, rest);
  if (octets(rawLocal) > MAX_LOCAL_PART_OCTETS) {
    return { ok: false, reason: 'local-part-too-long', message: 'Local part longer than 64 octets' };
  }
  const domainText = text.slice(rest + 1);
  if (octets(domainText) > MAX_DOMAIN_OCTETS) {
    return { ok: false, reason: 'domain-too-long', message: 'Domain longer than 255 octets' };
  }
  let domain: string;
  if (domainText.startsWith('[')) {
    const lit = parseAddressLiteral(domainText);
    if (lit === null) return syntax('Invalid address literal');
    domain = lit.family === 'ipv6' ? `[IPv6:${lit.value.toLowerCase()}]` : domainText;
  } else {
    if (!isDomainName(domainText, options.utf8)) return syntax('Invalid domain');
    domain = domainText.toLowerCase();
  }
  return { ok: true, mailbox: { localPart, domain, address: `${quoteLocalPart(localPart)}@${domain}` } };
}

function syntax(message: string): MailboxError {
  return { ok: false, reason: 'syntax', message };
}

/**
 * rfc5321 4.1.2 Quoted-string = DQUOTE *QcontentSMTP DQUOTE, with qtextSMTP = %d32-33 / %d35-91 /
 * %d93-126 and quoted-pairSMTP = "\" %d32-126 (rfc6531 adds UTF-8 to qtextSMTP).
 */
function readQuotedString5321(s: string, start: number, utf8: boolean): { value: string; end: number } | null {
  let value = '';
  let i = start + 1;
  while (i < s.length) {
    const code = s.charCodeAt(i);
    if (code === 0x22) return { value, end: i + 1 };
    if (code === 0x5c) {
      const next = s.charCodeAt(i + 1);
      if (!(next >= 32 && next <= 126)) return null;
      value += s[i + 1];
      i += 2;
      continue;
    }
    if ((code >= 32 && code <= 126) || (utf8 && code >= 0x80 && code !== 0xfffd)) {
      value += s[i];
      i++;
      continue;
    }
    return null;
  }
  return null;
}

/** The local part as it must be written: bare when a dot-string, else quoted (rfc5321 4.1.2). */
export function quoteLocalPart(localPart: string): string {
  if (isDotString(localPart, true)) return localPart;
  return `"${localPart.replace(/(["\\])/g, '\\$1')}"`;
}

/** Splits at the last "@" outside quotes; domain is '' when there is none. */
export function splitAddress(address: string): { localPart: string; domain: string } {
  const at = lastAtOutsideQuotes(address);
  if (at === -1) return { localPart: address, domain: '' };
  return { localPart: address.slice(0, at), domain: address.slice(at + 1) };
}

function lastAtOutsideQuotes(s: string): number {
  let inQuote = false;
  let at = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (inQuote && c === '\\') i++;
    else if (c === '"') inQuote = !inQuote;
    else if (c === '@' && !inQuote) at = i;
  }
  return at;
}

/**
 * The form addresses are compared and stored in: the domain lower-cased (IDNA left as it is:
 * an A-label stays an A-label and a U-label a U-label), the local part untouched except that
 * needless quotes are dropped (`"john"@x` is `john@x`, rfc5321 4.1.2).
 */
export function normalizeAddress(address: string): string {
  const { localPart, domain } = splitAddress(address.trim());
  let local = localPart;
  if (local.length >= 2 && local.startsWith('"') && local.endsWith('"')) {
    const q = readQuotedString5321(local, 0, true);
    if (q !== null && q.end === local.length) local = quoteLocalPart(q.value);
  }
  if (domain === '' && !address.includes('@')) return local;
  return `${local}@${domain.toLowerCase()}`;
}

/** True when `address` is a valid rfc5321 mailbox (UTF-8 allowed when `utf8`). */
export function isValidMailbox(address: string, utf8 = true): boolean {
  return parseMailbox(address, { utf8 }).ok;
}

// --- RFC 5322 address lists (header fields), lenient ------------------------------------

export interface HeaderAddress {
  /** The display name: quoted strings unquoted, encoded words left encoded; '' when none. */
  name: string;
  /** The addr-spec as written, without comments and folding whitespace; may be invalid. */
  address: string;
  /** The group this mailbox was listed in (rfc5322 3.4), when any. */
  group?: string;
}

type Token =
  | { type: 'atom'; text: string }
  | { type: 'quoted'; text: string; raw: string }
  | { type: 'comment'; text: string }
  | { type: 'literal'; text: string }
  | { type: 'special'; text: string }
  | { type: 'space' };

function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = input.length;
  while (i < n) {
    const c = input[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      while (i < n && /[ \t\r\n]/.test(input[i]!)) i++;
      tokens.push({ type: 'space' });
    } else if (c === '"') {
      let text = '';
      let j = i + 1;
      for (; j < n && input[j] !== '"'; j++) {
        if (input[j] === '\\' && j + 1 < n) j++;
        else if (input[j] === '\r' || input[j] === '\n') continue; // folding inside quotes
        text += input[j];
      }
      tokens.push({ type: 'quoted', text, raw: input.slice(i, Math.min(j + 1, n)) });
      i = j + 1;
    } else if (c === '(') {
      // rfc5322 3.2.2 comments nest; unbalanced ones run to the end.
      let depth = 0;
      let text = '';
      let j = i;
      for (; j < n; j++) {
        const d = input[j]!;
        if (d === '\\' && j + 1 < n) {
          j++;
          text += input[j];
          continue;
        }
        if (d === '(') {
          depth++;
          if (depth > 1 && depth <= MAX_COMMENT_DEPTH) text += d;
          continue;
        }
        if (d === ')') {
          depth--;
          if (depth === 0) break;
          if (depth < MAX_COMMENT_DEPTH) text += d;
          continue;
        }
        text += d;
      }
      tokens.push({ type: 'comment', text: text.replace(/[\r\n]+/g, '').trim() });
      i = j + 1;
    } else if (c === '[') {
      const j = input.indexOf(']', i);
      const end = j === -1 ? n : j + 1;
      tokens.push({ type: 'literal', text: input.slice(i, end) });
      i = end;
    } else if ('<>,:;@.'.includes(c)) {
      tokens.push({ type: 'special', text: c });
      i++;
    } else {
      let j = i;
      while (j < n && !/[ \t\r\n"()[\]<>,:;@.]/.test(input[j]!)) j++;
      if (j === i) j++; // a stray ")" or "]"
      tokens.push({ type: 'atom', text: input.slice(i, j) });
      i = j;
    }
  }
  return tokens;
}

/**
 * Splits an address-list header value (From, To, Cc, Reply-To...) into mailboxes, leniently:
 * several addresses per field, groups (`team: a@x, b@y;`), comments, quoted local parts, obsolete
 * routes, bare addresses, and a name taken from a comment when there is no display name
 * (`a@x (Ann)`). Empty groups (`undisclosed-recipients:;`) yield nothing.
 */
export function parseAddressList(value: string): HeaderAddress[] {
  const tokens = tokenize(value);
  const out: HeaderAddress[] = [];
  let current: Token[] = [];
  let group: string | undefined;
  let inAngle = false;

  const flush = (): void => {
    const entry = mailboxFromTokens(current);
    if (entry !== null) out.push(group === undefined ? entry : { ...entry, group });
    current = [];
  };

  for (const t of tokens) {
    if (t.type === 'special') {
      if (t.text === '<') inAngle = true;
      else if (t.text === '>') inAngle = false;
      else if (!inAngle && t.text === ',') {
        flush();
        continue;
      } else if (!inAngle && t.text === ':' && group === undefined && !current.some(isAtOrAngle)) {
        group = phraseText(current);
        current = [];
        continue;
      } else if (!inAngle && t.text === ';') {
        flush();
        group = undefined;
        continue;
      }
    }
    current.push(t);
  }
  flush();
  return out;
}

function isAtOrAngle(t: Token): boolean {
  return t.type === 'special' && (t.text === '@' || t.text === '<');
}

/** The display-name text of a phrase: words joined by single spaces, quoted strings unquoted. */
function phraseText(tokens: Token[]): string {
  let text = '';
  let space = false;
  for (const t of tokens) {
    if (t.type === 'space' || t.type === 'comment') {
      space = text.length > 0;
      continue;
    }
    if (space) text += ' ';
    space = false;
    text += t.text;
  }
  return text.trim();
}

/** The addr-spec text of tokens: everything but comments and whitespace, quotes kept. */
function addrSpecText(tokens: Token[]): string {
  let text = '';
  for (const t of tokens) {
    if (t.type === 'space' || t.type === 'comment') continue;
    text += t.type === 'quoted' ? t.raw : t.text;
  }
  return text;
}

function commentText(tokens: Token[]): string {
  return tokens
    .filter((t): t is Extract<Token, { type: 'comment' }> => t.type === 'comment')
    .map((t) => t.text)
    .filter((s) => s.length > 0)
    .join(' ');
}

function mailboxFromTokens(tokens: Token[]): HeaderAddress | null {
  if (tokens.every((t) => t.type === 'space' || t.type === 'comment')) return null;
  const open = tokens.findIndex((t) => t.type === 'special' && t.text === '<');
  if (open !== -1) {
    let close = tokens.findIndex((t, i) => i > open && t.type === 'special' && t.text === '>');
    if (close === -1) close = tokens.length;
    let inner = tokens.slice(open + 1, close);
    // rfc5322 4.4 obs-route: "<@a,@b:user@c>" drops the route.
    const colon = inner.findIndex((t) => t.type === 'special' && t.text === ':');
    if (colon !== -1) inner = inner.slice(colon + 1);
    const address = addrSpecText(inner);
    let name = phraseText(tokens.slice(0, open));
    if (name === '') name = commentText(tokens);
    if (address === '' && name === '') return null;
    return { name, address };
  }
  // No angle brackets: an addr-spec, or (leniently) "Name user@host".
  const words = splitWords(tokens);
  const withAt = words.findIndex((w) => w.some((t) => t.type === 'special' && t.text === '@'));
  if (words.length > 1 && withAt !== -1) {
    const address = addrSpecText(words[withAt]!);
    const nameTokens = words.filter((_, i) => i !== withAt).flatMap((w) => [...w, { type: 'space' } as Token]);
    let name = phraseText(nameTokens);
    if (name === '') name = commentText(tokens);
    return { name, address };
  }
  return { name: commentText(tokens), address: addrSpecText(tokens) };
}

/**
 * Groups tokens into whitespace-separated words, where a word with "@" or "." keeps its
 * neighbours across whitespace (`john . doe @ example . com`, rfc5322 4.4 obs-local-part).
 */
function splitWords(tokens: Token[]): Token[][] {
  const words: Token[][] = [];
  let word: Token[] = [];
  let pendingSpace = false;
  for (const t of tokens) {
    if (t.type === 'space' || t.type === 'comment') {
      if (word.length > 0) pendingSpace = true;
      continue;
    }
    const joins = t.type === 'special' && (t.text === '@' || t.text === '.');
    const prev = word[word.length - 1];
    const prevJoins = prev !== undefined && prev.type === 'special' && (prev.text === '@' || prev.text === '.');
    if (pendingSpace && !joins && !prevJoins) {
      words.push(word);
      word = [];
    }
    pendingSpace = false;
    word.push(t);
  }
  if (word.length > 0) words.push(word);
  return words;
}

// --- RFC 5322 addr-spec, strict ---------------------------------------------------------

/**
 * True when `address` is an rfc5322 3.4.1 addr-spec without CFWS (dot-atom or quoted-string,
 * "@", dot-atom or domain-literal), with rfc6532 UTF-8 allowed. Used to tell well-formed
 * header addresses from what the lenient list parser let through.
 */
export function isValidAddrSpec(address: string): boolean {
  const { localPart, domain } = splitAddress(address);
  if (domain === '' || localPart === '') return false;
  if (localPart.startsWith('"')) {
    const q = readQuotedString5321(localPart, 0, true);
    if (q === null || q.end !== localPart.length) return false;
  } else if (!isDotString(localPart, true)) return false;
  if (domain.startsWith('[')) return /^\[[\x21-\x5a\x5e-\x7e\u0080-\uffff]*\]$/.test(domain);
  return isDotString(domain, true);
}
