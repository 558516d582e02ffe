/**
 * Evaluating SEARCH criteria (rfc9051 6.4.4) over the messages of the selected mailbox.
 *
 * Invariants
 * - Each message is loaded only as deeply as the criteria need: flags, UIDs and MODSEQ from the
 *   flags rows; sizes and dates from the message rows; sent dates from the cached envelope;
 *   HEADER from the header bytes; BODY and TEXT from the decoded text parts. Header searches
 *   never read message bodies.
 * - FROM/TO/CC/BCC/SUBJECT load nothing per message: each distinct key is answered once, before
 *   the scan, by the store (MailStore.searchHeaderField, over the decoded text computed at
 *   delivery by pipeline/message-meta.ts searchFields), and matched from that UID set.
 * - String matching is case-insensitive substring matching on decoded text (encoded words,
 *   transfer encodings and charsets decoded), as rfc9051 6.4.4 asks.
 */
import iconv from 'iconv-lite';
import type { Envelope } from '../message/envelope.js';
import { parseHeaderBlock } from '../message/header.js';
import { decodedParam, isMessagePart, isMultipart, type MimePart } from '../message/mime.js';
import { decodeTransferEncoding } from '../message/transfer-decode.js';
import { decodeWords, ensureBlobMeta, parseBlobMeta, parseEnvelope, type ParsedMeta } from '../pipeline/message-meta.js';
import type { BlobStore, MailStore, MessageFlags, MessageWithMeta, SearchField } from '../store/types.js';
import type { SearchKey } from './ast.js';
import type { SelectedMailbox } from './selected.js';
import { resolveSequenceSet, resolveUidSet } from './sequence.js';

type Depth = 0 | 1 | 2 | 3 | 4; // flags, row, envelope, header bytes, body

/** Header keys the store answers (searchHeaderField) instead of each message's envelope. */
const INDEXED_FIELDS: ReadonlyMap<string, SearchField> = new Map([
  ['SUBJECT', 'subject'],
  ['FROM', 'from'],
  ['TO', 'to'],
  ['CC', 'cc'],
  ['BCC', 'bcc'],
]);

const CHUNK = 500;
/** Messages larger than this are not searched by BODY and TEXT (their headers still are). */
const BODY_SEARCH_LIMIT = 8 * 1024 * 1024;
const WHOLE_READ_LIMIT = 1024 * 1024;

export interface SearchContext {
  mail: MailStore;
  blobs: BlobStore;
  box: SelectedMailbox;
  saved: number[] | null;
}

export interface SearchResult {
  uids: number[];
  /** Highest MODSEQ of the matches, when the criteria used MODSEQ (rfc7162 3.1.5). */
  highestModSeq: number | null;
}

function depthOf(key: SearchKey): Depth {
  switch (key.kind) {
    case 'all':
    case 'flag':
    case 'new':
    case 'old':
    case 'recent':
    case 'seq':
    case 'uid':
    case 'modseq':
      return 0;
    case 'size':
    case 'older':
    case 'younger':
      return 1;
    case 'date':
      return key.which === 'internal' ? 1 : 2;
    case 'header':
      return INDEXED_FIELDS.has(key.field) ? 0 : 3;
    case 'body':
    case 'text':
      return 4;
    case 'not':
      return depthOf(key.key);
    case 'or':
      return Math.max(depthOf(key.a), depthOf(key.b)) as Depth;
    case 'and':
      return key.keys.reduce<Depth>((d, k) => Math.max(d, depthOf(k)) as Depth, 0);
  }
}

function usesModSeq(key: SearchKey): boolean {
  if (key.kind === 'modseq') return true;
  if (key.kind === 'not') return usesModSeq(key.key);
  if (key.kind === 'or') return usesModSeq(key.a) || usesModSeq(key.b);
  if (key.kind === 'and') return key.keys.some(usesModSeq);
  return false;
}

/** The criteria read flags or MODSEQ (so the flags rows must be read). */
function usesFlags(key: SearchKey): boolean {
  if (key.kind === 'flag' || key.kind === 'modseq') return true;
  if (key.kind === 'not') return usesFlags(key.key);
  if (key.kind === 'or') return usesFlags(key.a) || usesFlags(key.b);
  if (key.kind === 'and') return key.keys.some(usesFlags);
  return false;
}

/** Every match is in the store's answer to some FROM/TO/CC/BCC/SUBJECT key. */
function needsIndexedMatch(key: SearchKey): boolean {
  if (key.kind === 'header') return INDEXED_FIELDS.has(key.field);
  if (key.kind === 'or') return needsIndexedMatch(key.a) && needsIndexedMatch(key.b);
  if (key.kind === 'and') return key.keys.some(needsIndexedMatch);
  return false;
}

/** What one message offers to the matcher; deeper facts are loaded on first use, once. */
interface Candidate {
  flags: MessageFlags;
  row: MessageWithMeta | null;
  /** Only the envelope: sent dates need no more. */
  envelope(): Promise<Envelope>;
  /** Header fields as [lower-cased name, lower-cased decoded value]. */
  headerFields(): Promise<Array<[string, string]>>;
  /** The decoded text parts, lower-cased. */
  bodyText(): Promise<string>;
  /** Results of substring tests already made on this message, by haystack and needle. */
  memo: Map<string, boolean>;
}

/**
 * More distinct text keys (BODY, TEXT, HEADER) than this in one SEARCH is refused: each costs a
 * scan of every message's text. Repeated keys are free (memoised per message).
 */
export const MAX_TEXT_KEYS = 100;

export function countTextKeys(key: SearchKey, seen = new Set<string>()): number {
  if (key.kind === 'not') countTextKeys(key.key, seen);
  else if (key.kind === 'or') {
    countTextKeys(key.a, seen);
    countTextKeys(key.b, seen);
  } else if (key.kind === 'and') for (const k of key.keys) countTextKeys(k, seen);
  else if (key.kind === 'body' || key.kind === 'text') seen.add(`${key.kind}\0${key.value.toLowerCase()}`);
  else if (key.kind === 'header') seen.add(`${key.field}\0${key.value.toLowerCase()}`);
  return seen.size;
}

/** The criteria with every string lower-cased once, so matching never re-lower-cases them. */
function lowerCased(key: SearchKey): SearchKey {
  switch (key.kind) {
    case 'header':
      return { ...key, value: key.value.toLowerCase() };
    case 'body':
    case 'text':
      return { ...key, value: key.value.toLowerCase() };
    case 'not':
      return { kind: 'not', key: lowerCased(key.key) };
    case 'or':
      return { kind: 'or', a: lowerCased(key.a), b: lowerCased(key.b) };
    case 'and':
      return { kind: 'and', keys: key.keys.map(lowerCased) };
    default:
      return key;
  }
}

export async function runSearch(ctx: SearchContext, original: SearchKey): Promise<SearchResult> {
  const { box, mail } = ctx;
  const criteria = lowerCased(original);
  const sets = new SetCache(ctx);
  await sets.loadHeaderMatches(criteria);
  const uids = box.uidArray();
  if (depthOf(criteria) === 0) return searchShallow(ctx, criteria, sets, uids);
  const matched: number[] = [];
  let highestModSeq = 0;
  const slicer = new TimeSlicer();
  for (let i = 0; i < uids.length; i += CHUNK) {
    const chunk = uids.slice(i, i + CHUNK);
    await slicer.pause();
    for (const row of await mail.listMessagesByUid(box.mailboxId, chunk)) {
      const c = candidate(ctx, row, row);
      if (await matches(c, criteria, sets)) {
        matched.push(row.uid);
        highestModSeq = Math.max(highestModSeq, row.modSeq);
      }
    }
  }
  return { uids: matched, highestModSeq: usesModSeq(criteria) ? highestModSeq : null };
}

/**
 * Criteria that need no message row (depth 0), matched synchronously: flags and MODSEQ from the
 * flags rows, read only when the criteria use them; header keys from the store's answers.
 * Messages another session expunged, still in this session's map until it is told, never match
 * (their flags rows are gone; without flags, the mailbox's UIDs are read to leave them out,
 * unless every match must be in a header answer, which has only messages that exist).
 */
async function searchShallow(ctx: SearchContext, criteria: SearchKey, sets: SetCache, uids: number[]): Promise<SearchResult> {
  const { box, mail } = ctx;
  const matched: number[] = [];
  const slicer = new TimeSlicer();
  if (usesFlags(criteria)) {
    let highestModSeq = 0;
    for (let i = 0; i < uids.length; i += CHUNK) {
      await slicer.pause();
      for (const f of await mail.listFlags(box.mailboxId, uids.slice(i, i + CHUNK))) {
        if (matchesShallow(f.uid, f, criteria, sets)) {
          matched.push(f.uid);
          highestModSeq = Math.max(highestModSeq, f.modSeq);
        }
      }
    }
    return { uids: matched, highestModSeq: usesModSeq(criteria) ? highestModSeq : null };
  }
  const existing = needsIndexedMatch(criteria) ? null : await mail.listUids(box.mailboxId);
  let next = 0; // both lists ascend: one walk
  for (let i = 0; i < uids.length; i++) {
    if (i % CHUNK === 0) await slicer.pause();
    const uid = uids[i]!;
    if (existing) {
      while (next < existing.length && existing[next]! < uid) next++;
      if (existing[next] !== uid) continue;
    }
    if (matchesShallow(uid, null, criteria, sets)) matched.push(uid);
  }
  return { uids: matched, highestModSeq: null };
}

/** Yields to the event loop when a search has run for a while: it must not stall every other session. */
class TimeSlicer {
  private start = performance.now();

  async pause(): Promise<void> {
    if (performance.now() - this.start <= 20) return;
    await new Promise((resolve) => setImmediate(resolve));
    this.start = performance.now();
  }
}

function candidate(ctx: SearchContext, flags: MessageFlags, row: MessageWithMeta | null): Candidate {
  let meta: Promise<ParsedMeta> | null = null;
  let envelope: Promise<Envelope> | null = null;
  let fields: Promise<Array<[string, string]>> | null = null;
  let body: Promise<string> | null = null;
  const getMeta = (): Promise<ParsedMeta> => {
    meta ??= ensureBlobMeta(ctx.mail, ctx.blobs, row!).then(parseBlobMeta);
    return meta;
  };
  return {
    flags,
    row,
    memo: new Map(),
    envelope() {
      envelope ??= ensureBlobMeta(ctx.mail, ctx.blobs, row!).then(parseEnvelope);
      return envelope;
    },
    headerFields() {
      fields ??= getMeta().then(async (m) => {
        const head = await readHead(ctx, row!, row!.prefix.length + m.structure.bodyStart);
        return parseHeaderBlock(head, { final: true }).fields.map((f): [string, string] => [f.name.toLowerCase(), decodeWords(f.value).toLowerCase()]);
      });
      return fields;
    },
    bodyText() {
      body ??= getMeta().then(async (m) => (await extractText(ctx, row!, m.structure)).toLowerCase());
      return body;
    },
  };
}

/** Bytes [0, end) of the message: the whole message when small, else only the range. */
async function readHead(ctx: SearchContext, row: MessageWithMeta, end: number): Promise<Buffer> {
  if (row.size <= WHOLE_READ_LIMIT) return (await ctx.mail.readMessage(row)).subarray(0, end);
  const parts: Buffer[] = [row.prefix];
  const blobEnd = Math.max(0, end - row.prefix.length);
  for await (const chunk of ctx.blobs.open(row.blobHash, { start: 0, end: blobEnd }) as AsyncIterable<Buffer>) parts.push(chunk);
  return Buffer.concat(parts).subarray(0, end);
}

/** The decoded text of the message's text parts, for BODY and TEXT. */
async function extractText(ctx: SearchContext, row: MessageWithMeta, root: MimePart): Promise<string> {
  if (row.size > BODY_SEARCH_LIMIT) return '';
  const bytes = await ctx.mail.readMessage(row);
  const shift = row.prefix.length;
  const texts: string[] = [];
  const visit = (part: MimePart, depth: number): void => {
    if (depth > 20) return;
    if (isMultipart(part) || isMessagePart(part)) {
      for (const child of part.parts) visit(child, depth + 1);
      return;
    }
    if (part.type !== 'text') return;
    const raw = bytes.subarray(shift + part.bodyStart, shift + part.end);
    const decoded = decodeTransferEncoding(raw, part.encoding) ?? raw;
    const charset = decodedParam(part.params, 'charset') ?? 'us-ascii';
    texts.push(decodeCharset(decoded, charset));
  };
  visit(root, 0);
  return texts.join('\n');
}

function decodeCharset(bytes: Buffer, charset: string): string {
  const name = charset.toLowerCase();
  if (name === 'utf-8' || name === 'us-ascii' || name === 'utf8') return bytes.toString('utf8');
  try {
    if (iconv.encodingExists(name)) return iconv.decode(bytes, name);
  } catch {
    // unknown: fall back below
  }
  return bytes.toString('latin1');
}

/** `needle` is lower-cased already (lowerCased); `haystack` is lower-cased here unless `lower`. */
function contains(haystack: string, needle: string, lower = false): boolean {
  if (needle === '') return true;
  return (lower ? haystack : haystack.toLowerCase()).includes(needle);
}

/** A substring test on a large text, made once per message and needle. */
function memoContains(c: Candidate, where: string, haystack: string, needle: string): boolean {
  const key = `${where}\0${needle}`;
  let found = c.memo.get(key);
  if (found === undefined) {
    found = contains(haystack, needle, true);
    c.memo.set(key, found);
  }
  return found;
}

/** Day of a date as YYYY-MM-DD, in the date's own zone for sent dates (rfc9051 6.4.4). */
function sentDay(dateHeader: string | null): string | null {
  if (!dateHeader) return null;
  const m = /(\d{1,2})\s+([A-Za-z]{3})\w*\s+(\d{2,4})/.exec(dateHeader);
  if (!m) return null;
  const month = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'].indexOf(m[2]!.toLowerCase());
  if (month < 0) return null;
  let year = Number(m[3]);
  if (year < 50) year += 2000;
  else if (year < 1000) year += 1900;
  return `${String(year).padStart(4, '0')}-${String(month + 1).padStart(2, '0')}-${m[1]!.padStart(2, '0')}`;
}

function compareDay(day: string | null, op: 'before' | 'on' | 'since', target: string): boolean {
  if (day === null) return false;
  if (op === 'before') return day < target;
  if (op === 'on') return day === target;
  return day >= target;
}

/** Sequence and UID sets of the criteria, and the matches of indexed header keys, resolved once per search. */
class SetCache {
  private readonly cache = new Map<SearchKey, Set<number>>();
  /** The store's answers by field and needle, and by key (the same key may appear twice). */
  private readonly headers = new Map<string, Set<number>>();
  private readonly headerKeys = new Map<SearchKey, Set<number>>();
  constructor(private readonly ctx: SearchContext) {}

  /** Asks the store once per distinct FROM/TO/CC/BCC/SUBJECT key (needles are lower-cased already). */
  async loadHeaderMatches(key: SearchKey): Promise<void> {
    if (key.kind === 'not') return this.loadHeaderMatches(key.key);
    if (key.kind === 'or') {
      await this.loadHeaderMatches(key.a);
      return this.loadHeaderMatches(key.b);
    }
    if (key.kind === 'and') {
      for (const k of key.keys) await this.loadHeaderMatches(k);
      return;
    }
    const field = key.kind === 'header' ? INDEXED_FIELDS.get(key.field) : undefined;
    if (key.kind !== 'header' || field === undefined) return;
    const id = `${field}\0${key.value}`;
    let set = this.headers.get(id);
    if (!set) {
      set = new Set(await this.ctx.mail.searchHeaderField(this.ctx.box.mailboxId, field, key.value));
      this.headers.set(id, set);
    }
    this.headerKeys.set(key, set);
  }

  headerMatches(key: SearchKey): Set<number> {
    const set = this.headerKeys.get(key);
    if (!set) throw new Error('a header key was not loaded before the scan'); // a bug: loadHeaderMatches walks every key
    return set;
  }

  uids(key: Extract<SearchKey, { kind: 'seq' | 'uid' }>): Set<number> {
    let set = this.cache.get(key);
    if (!set) {
      const { box, saved } = this.ctx;
      if (key.kind === 'uid') set = new Set(resolveUidSet(box, key.set, saved));
      else {
        const r = resolveSequenceSet(box, key.set, saved);
        set = new Set(r.ok ? r.uids : []);
      }
      this.cache.set(key, set);
    }
    return set;
  }
}

/** A key of depth 0 (depthOf); `flags` may be null when the criteria use no flags (usesFlags). */
function matchesShallow(uid: number, flags: MessageFlags | null, key: SearchKey, sets: SetCache): boolean {
  switch (key.kind) {
    case 'all':
      return true;
    case 'flag': {
      const want = key.flag.toLowerCase();
      return flags!.flags.some((f) => f.toLowerCase() === want) === key.set;
    }
    case 'new':
    case 'recent':
      return false; // \Recent is never set here
    case 'old':
      return true;
    case 'seq':
    case 'uid':
      return sets.uids(key).has(uid);
    case 'modseq':
      return flags!.modSeq >= key.modSeq;
    case 'header':
      return sets.headerMatches(key).has(uid);
    case 'not':
      return !matchesShallow(uid, flags, key.key, sets);
    case 'or':
      return matchesShallow(uid, flags, key.a, sets) || matchesShallow(uid, flags, key.b, sets);
    case 'and':
      for (const k of key.keys) if (!matchesShallow(uid, flags, k, sets)) return false;
      return true;
    default:
      throw new Error(`search key ${key.kind} needs more than flags`); // a bug: depthOf says 0
  }
}

async function matches(c: Candidate, key: SearchKey, sets: SetCache): Promise<boolean> {
  switch (key.kind) {
    case 'all':
    case 'flag':
    case 'new':
    case 'recent':
    case 'old':
    case 'seq':
    case 'uid':
    case 'modseq':
      return matchesShallow(c.flags.uid, c.flags, key, sets);
    case 'size':
      return key.op === 'larger' ? c.row!.size > key.size : c.row!.size < key.size;
    case 'older':
      return c.row!.internalDate.getTime() <= Date.now() - key.seconds * 1000;
    case 'younger':
      return c.row!.internalDate.getTime() >= Date.now() - key.seconds * 1000;
    case 'date': {
      if (key.which === 'internal') return compareDay(c.row!.internalDate.toISOString().slice(0, 10), key.op, key.date);
      return compareDay(sentDay((await c.envelope()).date), key.op, key.date);
    }
    case 'header': {
      if (INDEXED_FIELDS.has(key.field)) return sets.headerMatches(key).has(c.flags.uid);
      const name = key.field.toLowerCase();
      return (await c.headerFields()).some(([n, v]) => n === name && contains(v, key.value, true));
    }
    case 'body':
      return memoContains(c, 'body', await c.bodyText(), key.value);
    case 'text': {
      if ((await c.headerFields()).some(([n, v]) => contains(n, key.value, true) || contains(v, key.value, true))) return true;
      return memoContains(c, 'body', await c.bodyText(), key.value);
    }
    case 'not':
      return !(await matches(c, key.key, sets));
    case 'or':
      return (await matches(c, key.a, sets)) || matches(c, key.b, sets);
    case 'and':
      for (const k of key.keys) if (!(await matches(c, k, sets))) return false;
      return true;
  }
}
