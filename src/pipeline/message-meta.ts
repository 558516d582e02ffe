/**
 * The parsed-once facts about a message that the store caches with its blob (BlobMeta): its
 * envelope and MIME structure with byte offsets, so IMAP FETCH ENVELOPE, BODYSTRUCTURE and
 * BODY[section] and header SEARCH never re-parse a message.
 *
 * Built while the bytes stream past (SMTP DATA, IMAP APPEND), or later from the stored bytes
 * for messages stored without it.
 *
 * Invariants: offsets are relative to the blob (without the per-delivery prefix); memory is
 * bounded by the MIME parser's limits, whatever the message size.
 */
import type { Readable } from 'node:stream';
import type { Envelope } from '../message/envelope.js';
import { MimeStructureParser, type MimePart } from '../message/mime.js';
import type { BlobMeta, BlobStore, MailStore, MessageRecord } from '../store/types.js';

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
  return { envelope: JSON.stringify(root.envelope ?? null), structure: JSON.stringify({ ...root, envelope: null }) };
}

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
