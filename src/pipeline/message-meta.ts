/**
 * The parsed-once facts about a message that the store caches with its blob (BlobMeta): its
 * envelope and MIME structure with byte offsets, so IMAP FETCH ENVELOPE, BODYSTRUCTURE and
 * BODY[section] and header SEARCH never re-parse a message; and the decoded, lower-cased text
 * that SEARCH SUBJECT / FROM / TO / CC / BCC match on (BlobMeta.search), so the store answers
 * those keys without loading any message.
 *
 * Built while the bytes stream past (SMTP DATA, IMAP APPEND), or later from the stored bytes
 * for messages stored without it.
 *
 * Invariants: offsets are relative to the blob (without the per-delivery prefix); memory is
 * bounded by the MIME parser's limits, whatever the message size.
 */
import libmime from 'libmime';
import type { Readable } from 'node:stream';
import type { Envelope, EnvelopeAddress } from '../message/envelope.js';
import { MimeStructureParser, type MimePart } from '../message/mime.js';
import type { BlobMeta, BlobStore, MailStore, MessageRecord, MetaIndexer, SearchFields } from '../store/types.js';

export class MessageMetaBuilder {
  private readonly parser = new MimeStructureParser();

  write(chunk: Buffer): void {
    this.parser.write(chunk);
  }

  finish(): BlobMeta {
    return toBlobMeta(this.parser.end());
  }
}

export function toBlobMeta(root: MimePart): BlobMeta {
  // The root's envelope is stored once, in `envelope`; parseBlobMeta puts it back.
  const envelope = root.envelope ?? null;
  return {
    envelope: JSON.stringify(envelope),
    structure: JSON.stringify({ ...root, envelope: null }),
    search: JSON.stringify(searchFields(envelope ?? EMPTY_ENVELOPE)),
  };
}

/**
 * The text SEARCH SUBJECT / FROM / TO / CC / BCC match on (rfc9051 6.4.4: case-insensitive
 * substring of the decoded field): encoded words decoded, lower-cased; addresses as
 * `display name <mailbox@host>` joined with ", "; null when the message has no such field.
 */
export function searchFields(env: Envelope): SearchFields {
  return {
    subject: env.subject == null ? null : decodeWords(env.subject).toLowerCase(),
    from: addressText(env.from),
    to: addressText(env.to),
    cc: addressText(env.cc),
    bcc: addressText(env.bcc),
  };
}

function addressText(list: EnvelopeAddress[] | null | undefined): string | null {
  if (list == null) return null;
  return list
    .map((a) => [a.name ? decodeWords(a.name) : '', a.mailbox && a.host ? `<${a.mailbox}@${a.host}>` : (a.mailbox ?? '')].join(' '))
    .join(', ')
    .toLowerCase();
}

/** Encoded words (rfc2047) decoded; the text as written when they are malformed. */
export function decodeWords(value: string): string {
  try {
    return libmime.decodeWords(value);
  } catch {
    return value;
  }
}

/**
 * What the store needs to index messages stored without search text (before the index existed,
 * or committed without meta): it does not parse messages itself. Given to the store at open.
 */
export const metaIndexer: MetaIndexer = {
  search: (meta) => JSON.stringify(searchFields(parseEnvelope(meta))),
  async build(bytes) {
    const builder = new MessageMetaBuilder();
    for await (const chunk of bytes) builder.write(chunk);
    return builder.finish();
  },
};

export interface ParsedMeta {
  envelope: Envelope;
  structure: MimePart;
}

/** The envelope alone (cheaper than the whole structure). */
export function parseEnvelope(meta: BlobMeta): Envelope {
  return (JSON.parse(meta.envelope) as Envelope | null) ?? EMPTY_ENVELOPE;
}

export function parseBlobMeta(meta: BlobMeta): ParsedMeta {
  const structure = JSON.parse(meta.structure) as MimePart;
  structure.envelope ??= JSON.parse(meta.envelope) as Envelope | null;
  return { structure, envelope: structure.envelope ?? EMPTY_ENVELOPE };
}

const EMPTY_ENVELOPE: Envelope = {
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

/** The cached meta of a message's blob, computing and caching it when absent. */
export async function ensureBlobMeta(
  mail: MailStore,
  blobs: BlobStore,
  message: Pick<MessageRecord, 'blobHash'> & { meta?: BlobMeta | null },
): Promise<BlobMeta> {
  if (message.meta) return message.meta;
  const cached = await mail.getBlobMeta(message.blobHash);
  if (cached) return cached;
  const builder = new MessageMetaBuilder();
  for await (const chunk of blobs.open(message.blobHash) as Readable & AsyncIterable<Buffer>) builder.write(chunk);
  const meta = builder.finish();
  await mail.setBlobMeta(message.blobHash, meta);
  return meta;
}
