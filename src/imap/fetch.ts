/**
 * Building FETCH responses for one message at a time: every data item of rfc9051 6.4.5 and
 * 7.5.2, with BODY[section]<partial> served by byte offsets from the cached MIME structure and
 * large literals streamed from the store.
 *
 * Invariants
 * - A message's bytes are read at most once per FETCH response, and only when an item needs
 *   them; ENVELOPE and BODYSTRUCTURE come from the cached meta, never from the message.
 * - Literals larger than WHOLE_READ_LIMIT are streamed, never held whole.
 * - Offsets in the meta are relative to the blob; the per-delivery prefix (Return-Path,
 *   Delivered-To, X-Rcpt-To) belongs to the top-level header, so top-level ranges shift by it.
 */
import { Readable } from 'node:stream';
import { isMessagePart, isMultipart, type MimePart } from '../message/mime.js';
import { decodeTransferEncoding } from '../message/transfer-decode.js';
import { ensureBlobMeta, parseBlobMeta, type ParsedMeta } from '../pipeline/message-meta.js';
import type { BlobStore, MailStore, MessageWithMeta } from '../store/types.js';
import type { FetchAttribute, SectionSpec } from './ast.js';
import type { ImapOutput } from './output.js';
import { filterHeaderFields, findSection, formatBodyStructure, formatEnvelope } from './structure-format.js';
import { flagList, formatInternalDate } from './wire.js';

/** Messages up to this size are read whole once; larger ones are streamed by range. */
const WHOLE_READ_LIMIT = 1024 * 1024;

export interface FetchContext {
  mail: MailStore;
  blobs: BlobStore;
  out: ImapOutput;
  utf8: boolean;
  /** Include MODSEQ in every response (CONDSTORE active and asked for or CHANGEDSINCE). */
  modSeq: boolean;
  /** Include UID (UID FETCH, or asked for). */
  uid: boolean;
}

/** Thrown when a BINARY item meets a Content-Transfer-Encoding we cannot decode (rfc3516 4.3). */
export class UnknownTransferEncoding extends Error {}

/** FETCH items that need only the flags row. */
export function needsOnlyFlags(attributes: FetchAttribute[]): boolean {
  return attributes.every((a) => a.kind === 'FLAGS' || a.kind === 'UID' || a.kind === 'MODSEQ');
}

/** Items that set \Seen when the mailbox is read-write (rfc9051 6.4.5). */
export function setsSeen(attributes: FetchAttribute[]): boolean {
  return attributes.some(
    (a) => ((a.kind === 'BODY[]' || a.kind === 'BINARY') && !a.peek) || a.kind === 'RFC822' || a.kind === 'RFC822.TEXT',
  );
}

/** A message's bytes, read lazily and at most once. */
class MessageBytes {
  private whole: Buffer | null = null;

  constructor(
    private readonly ctx: FetchContext,
    readonly message: MessageWithMeta,
  ) {}

  get size(): number {
    return this.message.size;
  }

  async all(): Promise<Buffer> {
    this.whole ??= await this.ctx.mail.readMessage(this.message);
    return this.whole;
  }

  /** Bytes [start, end) of the message as the client sees it (prefix + blob). */
  async range(start: number, end: number): Promise<Buffer> {
    if (end <= start) return Buffer.alloc(0);
    if (this.message.size <= WHOLE_READ_LIMIT || this.whole) return (await this.all()).subarray(start, end);
    const parts: Buffer[] = [];
    for await (const chunk of this.stream(start, end) as AsyncIterable<Buffer>) parts.push(chunk);
    return Buffer.concat(parts);
  }

  stream(start: number, end: number): Readable {
    const { prefix, blobHash } = this.message;
    const blobs = this.ctx.blobs;
    async function* bytes(): AsyncGenerator<Buffer> {
      if (start < prefix.length) yield prefix.subarray(start, Math.min(end, prefix.length));
      if (end > prefix.length) {
        yield* blobs.open(blobHash, { start: Math.max(0, start - prefix.length), end: end - prefix.length }) as AsyncIterable<Buffer>;
      }
    }
    return Readable.from(bytes(), { objectMode: false });
  }
}

/** Writes `* seq FETCH (...)` for one message. */
export async function writeFetchResponse(
  ctx: FetchContext,
  seq: number,
  message: MessageWithMeta,
  attributes: FetchAttribute[],
): Promise<void> {
  const { out } = ctx;
  let meta: ParsedMeta | null = null;
  const getMeta = async (): Promise<ParsedMeta> => {
    meta ??= parseBlobMeta(await ensureBlobMeta(ctx.mail, ctx.blobs, message));
    return meta;
  };
  const bytes = new MessageBytes(ctx, message);
  out.text(`* ${seq} FETCH (`);
  let first = true;
  /** Items are written as they are made, so a literal in the middle keeps its place. */
  const items = {
    push(item: string): void {
      out.text(first ? item : ` ${item}`);
      first = false;
    },
  };
  /** A literal item: `NAME {n}` and the bytes, streamed when large. */
  const literal = async (name: string, start: number, end: number, decode?: (b: Buffer) => Buffer): Promise<void> => {
    if (decode) {
      const data = decode(await bytes.range(start, end));
      items.push(`${name} ${data.includes(0) ? '~' : ''}{${data.length}}\r\n`);
      await out.bytes(data);
      return;
    }
    const length = Math.max(0, end - start);
    items.push(`${name} {${length}}\r\n`);
    if (length === 0) return;
    if (message.size <= WHOLE_READ_LIMIT) await out.bytes(await bytes.range(start, end));
    else await out.stream(bytes.stream(start, end));
  };

  if (ctx.uid && !attributes.some((a) => a.kind === 'UID')) items.push(`UID ${message.uid}`);
  for (const a of attributes) {
    switch (a.kind) {
      case 'UID':
        items.push(`UID ${message.uid}`);
        break;
      case 'FLAGS':
        items.push(`FLAGS ${flagList(message.flags)}`);
        break;
      case 'MODSEQ':
        break; // added once at the end
      case 'INTERNALDATE':
        items.push(`INTERNALDATE ${formatInternalDate(message.internalDate)}`);
        break;
      case 'RFC822.SIZE':
        items.push(`RFC822.SIZE ${message.size}`);
        break;
      case 'ENVELOPE':
        items.push(`ENVELOPE ${formatEnvelope((await getMeta()).envelope, { utf8: ctx.utf8 })}`);
        break;
      case 'BODY':
        items.push(`BODY ${formatBodyStructure((await getMeta()).structure, false, { utf8: ctx.utf8 })}`);
        break;
      case 'BODYSTRUCTURE':
        items.push(`BODYSTRUCTURE ${formatBodyStructure((await getMeta()).structure, true, { utf8: ctx.utf8 })}`);
        break;
      case 'RFC822':
        await literal('RFC822', 0, message.size);
        break;
      case 'RFC822.HEADER': {
        const root = (await getMeta()).structure;
        await literal('RFC822.HEADER', 0, message.prefix.length + root.bodyStart);
        break;
      }
      case 'RFC822.TEXT': {
        const root = (await getMeta()).structure;
        await literal('RFC822.TEXT', message.prefix.length + root.bodyStart, message.size);
        break;
      }
      case 'BODY[]': {
        const name = `BODY[${sectionText(a.section)}]${a.partial ? `<${a.partial.offset}>` : ''}`;
        const range = await sectionRange(message, a.section, getMeta);
        if (!range) {
          items.push(`${name} NIL`);
          break;
        }
        if (a.section.text === 'HEADER.FIELDS' || a.section.text === 'HEADER.FIELDS.NOT') {
          const header = filterHeaderFields(await bytes.range(range.start, range.end), a.section.fields, a.section.text === 'HEADER.FIELDS.NOT');
          const data = a.partial ? header.subarray(a.partial.offset, a.partial.offset + a.partial.length) : header;
          items.push(`${name} {${data.length}}\r\n`);
          await out.bytes(data);
        } else {
          const [start, end] = applyPartial(range.start, range.end, a.partial);
          await literal(name, start, end);
        }
        break;
      }
      case 'BINARY':
      case 'BINARY.SIZE': {
        const part = a.part.length === 0 ? null : findSection((await getMeta()).structure, a.part);
        if (a.part.length > 0 && (!part || isMultipart(part))) {
          items.push(`${a.kind}[${a.part.join('.')}] NIL`);
          break;
        }
        const shift = message.prefix.length;
        const start = part ? part.bodyStart + shift : 0;
        const end = part ? part.end + shift : message.size;
        const encoding = part ? part.encoding : '7bit';
        const decode = (b: Buffer): Buffer => {
          const decoded = decodeTransferEncoding(b, encoding);
          if (decoded === null) throw new UnknownTransferEncoding(encoding);
          return decoded;
        };
        if (a.kind === 'BINARY.SIZE') {
          items.push(`BINARY.SIZE[${a.part.join('.')}] ${decode(await bytes.range(start, end)).length}`);
          break;
        }
        const name = `BINARY[${a.part.join('.')}]${a.partial ? `<${a.partial.offset}>` : ''}`;
        const partial = a.partial;
        await literal(name, start, end, (b) => {
          const d = decode(b);
          return partial ? d.subarray(partial.offset, partial.offset + partial.length) : d;
        });
        break;
      }
      case 'SAVEDATE':
      case 'EMAILID':
      case 'THREADID':
        items.push(`${a.kind} NIL`);
        break;
    }
  }
  if (ctx.modSeq) items.push(`MODSEQ (${message.modSeq})`);
  await out.textAsync(')\r\n');
}

/** The flags-only response: no message bytes or meta needed. */
export function formatFlagsResponse(
  seq: number,
  m: { uid: number; modSeq: number; flags: string[] },
  attributes: FetchAttribute[],
  ctx: Pick<FetchContext, 'uid' | 'modSeq'>,
  /** Formatted flag lists by their flags, reused across a FETCH (few distinct sets recur). */
  cache?: Map<string, string>,
): string {
  const items: string[] = [];
  if (ctx.uid && !attributes.some((a) => a.kind === 'UID')) items.push(`UID ${m.uid}`);
  for (const a of attributes) {
    if (a.kind === 'UID') items.push(`UID ${m.uid}`);
    else if (a.kind === 'FLAGS') {
      const key = m.flags.join('\0');
      let text = cache?.get(key);
      if (text === undefined) {
        text = `FLAGS ${flagList(m.flags)}`;
        cache?.set(key, text);
      }
      items.push(text);
    }
  }
  if (ctx.modSeq) items.push(`MODSEQ (${m.modSeq})`);
  return `* ${seq} FETCH (${items.join(' ')})\r\n`;
}

function sectionText(s: SectionSpec): string {
  const part = s.part.join('.');
  let text = '';
  if (s.text === 'HEADER.FIELDS' || s.text === 'HEADER.FIELDS.NOT') text = `${s.text} (${s.fields.join(' ')})`;
  else if (s.text) text = s.text;
  return part && text ? `${part}.${text}` : part || text;
}

function applyPartial(start: number, end: number, partial: { offset: number; length: number } | null): [number, number] {
  if (!partial) return [start, end];
  const from = Math.min(end, start + partial.offset);
  return [from, Math.min(end, from + partial.length)];
}

/**
 * Byte range of a section in the message as the client sees it, or null when the part does not
 * exist. rfc9051 6.4.5: part numbers address the parts of a multipart, part 1 of a single-part
 * message is its body, and HEADER/TEXT of a message/rfc822 part address the encapsulated message.
 */
async function sectionRange(
  message: MessageWithMeta,
  section: SectionSpec,
  getMeta: () => Promise<ParsedMeta>,
): Promise<{ start: number; end: number } | null> {
  const shift = message.prefix.length;
  if (section.part.length === 0) {
    if (section.text === null) return { start: 0, end: message.size };
    const root = (await getMeta()).structure;
    if (section.text === 'TEXT') return { start: shift + root.bodyStart, end: message.size };
    return { start: 0, end: shift + root.bodyStart }; // HEADER, HEADER.FIELDS (NOT)
  }
  const root = (await getMeta()).structure;
  const part = findSection(root, section.part);
  if (!part) return null;
  switch (section.text) {
    case null:
      return { start: shift + part.bodyStart, end: shift + part.end };
    case 'MIME':
      // The top level's header includes the delivery prefix, as BODY[HEADER] does.
      return { start: part === root ? 0 : shift + part.headerStart, end: shift + part.bodyStart };
    default: {
      // HEADER and TEXT of a part: only for message/rfc822 parts (the encapsulated message).
      const inner = encapsulated(part);
      if (!inner) return null;
      if (section.text === 'TEXT') return { start: shift + inner.bodyStart, end: shift + inner.end };
      return { start: shift + inner.headerStart, end: shift + inner.bodyStart };
    }
  }
}

function encapsulated(part: MimePart): MimePart | null {
  return isMessagePart(part) ? (part.parts[0] ?? null) : null;
}
