/**
 * The IMAP ENVELOPE of a message: the ten header-derived fields of rfc3501 7.4.2, parsed once
 * at delivery and kept with the message's MIME structure (see mime.ts).
 *
 * Purpose: one place that turns a header block into the values IMAP sends as ENVELOPE, so
 * FETCH ENVELOPE, BODYSTRUCTURE (message/rfc822 parts) and SEARCH agree.
 *
 * Invariants
 * - Pure and total: nothing here throws on any input.
 * - Values stay as the sender wrote them: encoded words are NOT decoded (IMAP returns them
 *   raw; the client decodes), quoted strings are unquoted, folds are removed.
 * - The result is plain JSON (strings, nulls, arrays, plain objects): it is cached as JSON.
 *
 * Security: reads untrusted header text. Linear in the input; comments nest but are scanned
 * with a counter, not recursion. The caller bounds the size of the header block (mime.ts
 * passes at most HEADER_BLOCK_LIMIT bytes).
 *
 * Standards: rfc3501 7.4.2 and rfc9051 7.5.2 (ENVELOPE: "If the Sender or Reply-To lines are
 * absent in the [RFC-2822] header, or are present but empty, the server sets the corresponding
 * member of the envelope to be the same value as the from member"; group syntax as a start
 * entry with a NIL host and an end entry with NIL mailbox and host), rfc5322 3.4 (address-list,
 * group, angle-addr), rfc5322 4.4 (obs-route, obs-phrase, CFWS around dots), rfc6532 (UTF-8).
 * Behaviour matches Dovecot 2.3 where the RFCs are silent (names taken from a trailing
 * comment, MISSING_MAILBOX / MISSING_DOMAIN placeholders, repeated address fields merged,
 * the last of repeated string fields kept).
 */
import type { HeaderField } from './header.js';

/** One rfc3501 7.4.2 address structure. */
export interface EnvelopeAddress {
  /** The display name (phrase), unquoted, encoded words left as written; null when none. */
  name: string | null;
  /** The obsolete source route (`@a,@b`), or null. */
  adl: string | null;
  /** The local part (unquoted); for a group start, the group name; null at a group end. */
  mailbox: string | null;
  /** The domain; null for a group start and end (rfc3501 7.4.2). */
  host: string | null;
}

export interface Envelope {
  date: string | null;
  subject: string | null;
  from: EnvelopeAddress[] | null;
  sender: EnvelopeAddress[] | null;
  replyTo: EnvelopeAddress[] | null;
  to: EnvelopeAddress[] | null;
  cc: EnvelopeAddress[] | null;
  bcc: EnvelopeAddress[] | null;
  inReplyTo: string | null;
  messageId: string | null;
}

/** Placeholders Dovecot writes for an address without local part or domain. */
export const MISSING_MAILBOX = 'MISSING_MAILBOX';
export const MISSING_DOMAIN = 'MISSING_DOMAIN';

const MAX_COMMENT_DEPTH = 64;

// --- values -----------------------------------------------------------------------------

/**
 * Removes line breaks from an unstructured value: a CR or LF disappears, and a space takes its
 * place only when the next character is not whitespace (so a fold keeps its whitespace and
 * a stray line break still separates words). As Dovecot's imap_append_nstring_nolf.
 */
export function unfoldValue(value: string): string {
  if (!value.includes('\n') && !value.includes('\r')) return value;
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c !== '\r' && c !== '\n') {
      out += c;
      continue;
    }
    const next = value[i + 1];
    if (next !== undefined && next !== ' ' && next !== '\t' && next !== '\r' && next !== '\n') out += ' ';
  }
  return out;
}

/**
 * Builds the envelope from a header block's fields (header.ts parseHeaderBlock). Address
 * fields that appear more than once are merged; for the other fields the last one counts.
 */
export function buildEnvelope(fields: readonly HeaderField[]): Envelope {
  const env: Envelope = {
    date: null,
    subject: null,
    from: null,
    sender: null,
    replyTo: null,
    to: null,
    cc: null,
    bcc: null,
    inReplyTo: null,
    messageId: null,
  };
  const lists: Record<'from' | 'sender' | 'replyTo' | 'to' | 'cc' | 'bcc', EnvelopeAddress[]> = {
    from: [],
    sender: [],
    replyTo: [],
    to: [],
    cc: [],
    bcc: [],
  };
  for (const field of fields) {
    switch (field.name.toLowerCase()) {
      case 'date':
        env.date = unfoldValue(field.value);
        break;
      case 'subject':
        env.subject = unfoldValue(field.value);
        break;
      case 'in-reply-to':
        env.inReplyTo = unfoldValue(field.value);
        break;
      case 'message-id':
        env.messageId = unfoldValue(field.value);
        break;
      case 'from':
        lists.from.push(...parseEnvelopeAddresses(field.value));
        break;
      case 'sender':
        lists.sender.push(...parseEnvelopeAddresses(field.value));
        break;
      case 'reply-to':
        lists.replyTo.push(...parseEnvelopeAddresses(field.value));
        break;
      case 'to':
        lists.to.push(...parseEnvelopeAddresses(field.value));
        break;
      case 'cc':
        lists.cc.push(...parseEnvelopeAddresses(field.value));
        break;
      case 'bcc':
        lists.bcc.push(...parseEnvelopeAddresses(field.value));
        break;
      default:
        break;
    }
  }
  const orNull = (list: EnvelopeAddress[]): EnvelopeAddress[] | null => (list.length === 0 ? null : list);
  env.from = orNull(lists.from);
  // rfc3501 7.4.2: absent or empty Sender / Reply-To take the value of From.
  env.sender = orNull(lists.sender) ?? env.from;
  env.replyTo = orNull(lists.replyTo) ?? env.from;
  env.to = orNull(lists.to);
  env.cc = orNull(lists.cc);
  env.bcc = orNull(lists.bcc);
  return env;
}

// --- address lists ----------------------------------------------------------------------

type Token =
  | { t: 'atom'; text: string; spaceBefore: boolean }
  | { t: 'quoted'; text: string; spaceBefore: boolean }
  | { t: 'literal'; text: string; spaceBefore: boolean }
  | { t: 'special'; text: string; spaceBefore: boolean }
  | { t: 'comment'; text: string; spaceBefore: boolean };

const SPECIALS = '<>,:;@.';

/** rfc5322 3.2 lexical tokens; CFWS becomes the spaceBefore flag and comment tokens. */
function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  const n = input.length;
  let i = 0;
  let space = false;
  while (i < n) {
    const c = input[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      space = true;
      i++;
      continue;
    }
    if (c === '"') {
      let text = '';
      let j = i + 1;
      for (; j < n && input[j] !== '"'; j++) {
        const d = input[j]!;
        if (d === '\\' && j + 1 < n) {
          j++;
          text += input[j];
        } else if (d !== '\r' && d !== '\n') text += d; // rfc5322 3.2.4: folds inside quotes
      }
      tokens.push({ t: 'quoted', text, spaceBefore: space });
      i = j + 1;
    } else if (c === '(') {
      // rfc5322 3.2.2: comments nest; an unbalanced one runs to the end.
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
        if (d !== '\r' && d !== '\n') text += d;
      }
      tokens.push({ t: 'comment', text, spaceBefore: space });
      i = j + 1;
    } else if (c === '[') {
      const j = input.indexOf(']', i);
      const end = j === -1 ? n : j + 1;
      tokens.push({ t: 'literal', text: input.slice(i, end).replace(/[\r\n]/g, ''), spaceBefore: space });
      i = end;
    } else if (SPECIALS.includes(c)) {
      tokens.push({ t: 'special', text: c, spaceBefore: space });
      i++;
    } else {
      let j = i;
      while (j < n && !/[ \t\r\n"()[<>,:;@.]/.test(input[j]!)) j++;
      if (j === i) j++; // a stray "]" or ")"
      tokens.push({ t: 'atom', text: input.slice(i, j), spaceBefore: space });
      i = j;
    }
    space = false;
  }
  return tokens;
}

function isSpecial(tok: Token | undefined, text: string): boolean {
  return tok !== undefined && tok.t === 'special' && tok.text === text;
}

/** A phrase (display name or group name): words joined by single spaces, dots attached. */
function phraseText(tokens: readonly Token[]): string {
  let out = '';
  for (const tok of tokens) {
    if (tok.t === 'comment') continue;
    if (out !== '' && tok.spaceBefore) out += ' ';
    out += tok.text;
  }
  return out;
}

/** Text of a local part or domain: tokens concatenated, whitespace and comments dropped. */
function dotText(tokens: readonly Token[]): string {
  let out = '';
  for (const tok of tokens) if (tok.t !== 'comment') out += tok.text;
  return out;
}

function lastComment(tokens: readonly Token[]): string | null {
  for (let i = tokens.length - 1; i >= 0; i--) {
    const tok = tokens[i]!;
    if (tok.t === 'comment') return tok.text;
  }
  return null;
}

function nonEmpty(s: string | null): string | null {
  return s === null || s === '' ? null : s;
}

/**
 * Parses an address-list header value into rfc3501 7.4.2 address structures, leniently:
 * groups (start and end entries, an unclosed group closed at the end), angle addresses with
 * obsolete routes, bare addr-specs, a comment as the name when there is no display name (the
 * last comment, as Dovecot), placeholders for a missing local part or domain. Empty list
 * elements and stray semicolons are skipped.
 */
export function parseEnvelopeAddresses(value: string): EnvelopeAddress[] {
  const tokens = tokenize(value);
  const out: EnvelopeAddress[] = [];
  let inGroup = false;
  let i = 0;
  const n = tokens.length;
  while (i < n) {
    // One element: everything up to a top-level "," or ";" (a "," inside <> belongs to a route).
    const start = i;
    let angle = false;
    let groupColon = -1;
    for (; i < n; i++) {
      const tok = tokens[i]!;
      if (tok.t !== 'special') continue;
      if (tok.text === '<') angle = true;
      else if (tok.text === '>') angle = false;
      else if (!angle && (tok.text === ',' || tok.text === ';')) break;
      else if (!angle && tok.text === ':' && groupColon === -1 && !inGroup && !hasAtOrAngle(tokens, start, i)) {
        groupColon = i;
        break;
      }
    }
    if (groupColon !== -1) {
      // rfc5322 3.4 group = display-name ":" [group-list] ";"
      out.push({ name: null, adl: null, mailbox: phraseText(tokens.slice(start, groupColon)), host: null });
      inGroup = true;
      i = groupColon + 1;
      continue;
    }
    const element = tokens.slice(start, i);
    const addr = addressFromTokens(element);
    if (addr !== null) out.push(addr);
    if (i < n && isSpecial(tokens[i], ';') && inGroup) {
      out.push({ name: null, adl: null, mailbox: null, host: null });
      inGroup = false;
    }
    i++; // the "," or ";"
  }
  if (inGroup) out.push({ name: null, adl: null, mailbox: null, host: null });
  return out;
}

function hasAtOrAngle(tokens: readonly Token[], from: number, to: number): boolean {
  for (let k = from; k < to; k++) {
    const tok = tokens[k]!;
    if (tok.t === 'special' && (tok.text === '@' || tok.text === '<')) return true;
  }
  return false;
}

function addressFromTokens(tokens: readonly Token[]): EnvelopeAddress | null {
  if (tokens.every((tok) => tok.t === 'comment')) return null;
  const open = tokens.findIndex((tok) => isSpecial(tok, '<'));
  if (open !== -1) {
    let close = tokens.findIndex((tok, k) => k > open && isSpecial(tok, '>'));
    if (close === -1) close = tokens.length;
    let inner = tokens.slice(open + 1, close);
    let adl: string | null = null;
    // rfc5322 4.4 obs-route = obs-domain-list ":"
    if (isSpecial(inner.find((tok) => tok.t !== 'comment'), '@')) {
      const colon = inner.findIndex((tok) => isSpecial(tok, ':'));
      if (colon !== -1) {
        adl = nonEmpty(dotText(inner.slice(0, colon)));
        inner = inner.slice(colon + 1);
      }
    }
    const spec = splitAddrSpec(inner);
    const name = nonEmpty(phraseText(tokens.slice(0, open))) ?? nonEmpty(lastComment(tokens.slice(close)));
    return { name, adl, mailbox: spec.mailbox, host: spec.host };
  }
  const spec = splitAddrSpec(tokens);
  return { name: nonEmpty(lastComment(tokens)), adl: null, mailbox: spec.mailbox, host: spec.host };
}

/** rfc5322 3.4.1 addr-spec = local-part "@" domain, split at the last "@". */
function splitAddrSpec(tokens: readonly Token[]): { mailbox: string; host: string } {
  let at = -1;
  for (let k = tokens.length - 1; k >= 0; k--) {
    if (isSpecial(tokens[k], '@')) {
      at = k;
      break;
    }
  }
  const local = dotText(at === -1 ? tokens : tokens.slice(0, at));
  const domain = at === -1 ? '' : dotText(tokens.slice(at + 1));
  return { mailbox: local === '' ? MISSING_MAILBOX : local, host: domain === '' ? MISSING_DOMAIN : domain };
}
