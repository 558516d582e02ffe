/**
 * APPEND with MULTIAPPEND (rfc3502), binary literals (rfc3516) and APPENDUID (rfc4315).
 *
 * The message bytes were streamed into a staged blob while the literal arrived (session.ts);
 * here they are committed through the same durable delivery commit as SMTP mail, so the tagged
 * OK is sent only once the message is on disk.
 *
 * Invariants: the quota (rfc9208) and the mailbox's existence are checked for every message
 * before any is committed; a message that fails them leaves nothing behind. MULTIAPPEND's
 * messages share one group commit when they arrive together, but are not one transaction: a
 * failure in the commit itself could leave earlier ones stored (reported in the NO).
 */
import { MessageMetaBuilder } from '../../pipeline/message-meta.js';
import type { BlobMeta, StagedBlob } from '../../store/types.js';
import type { AppendMessage, Command } from '../ast.js';
import type { ImapSession } from '../session.js';
import { formatNumberSet } from '../wire.js';
import type { Completion } from './table.js';

type Cmd<N extends Command['name']> = Extract<Command, { name: N }>;

interface Staged {
  blob: StagedBlob;
  meta: BlobMeta;
  flags: string[];
  internalDate: Date;
}

export async function append(session: ImapSession, _tag: string, command: Cmd<'APPEND'>): Promise<Completion> {
  const { mail, blobs, directory } = session.services;
  const accountId = session.account!.id;
  const staged: Staged[] = [];
  try {
    for (const message of command.messages) staged.push(await stage(session, message));
    const box = await mail.getMailbox(accountId, command.mailbox.name);
    if (!box) return { status: 'NO', code: 'TRYCREATE', text: 'No such mailbox' };
    if (staged.some((s) => s.blob.size === 0)) return { status: 'NO', code: 'CANNOT', text: 'Cannot append an empty message' };
    const total = staged.reduce((n, s) => n + s.blob.size, 0);
    if (staged.some((s) => s.blob.size > session.appendLimit)) {
      return { status: 'NO', code: 'TOOBIG', text: `Message too large (the limit is ${session.appendLimit} bytes)` };
    }
    const account = await directory.getUserById(accountId);
    if (account && account.quotaBytes !== null && account.usedBytes + total > account.quotaBytes) {
      return { status: 'NO', code: 'OVERQUOTA', text: 'Quota exceeded: delete messages or ask the administrator for more room' };
    }
    const outcomes = await Promise.all(
      staged.map((s) =>
        mail.commitDelivery({
          blob: s.blob,
          meta: s.meta,
          internalDate: s.internalDate,
          local: [{ accountId, mailbox: box.name, prefix: Buffer.alloc(0), flags: s.flags, exactMailbox: true }],
          outbound: null,
        }),
      ),
    );
    staged.length = 0; // committed: the blobs belong to the store now
    const uids = outcomes.map((o) => o.delivered[0]!.uid);
    return { status: 'OK', code: `APPENDUID ${box.uidValidity} ${formatNumberSet(uids)}`, text: 'APPEND completed' };
  } finally {
    for (const s of staged) await blobs.discard(s.blob).catch(() => {});
  }
}

async function stage(session: ImapSession, message: AppendMessage): Promise<Staged> {
  const flags = message.flags.filter((f) => f.toUpperCase() !== '\\RECENT');
  const internalDate = message.internalDate ?? new Date();
  if (Buffer.isBuffer(message.data)) {
    const writer = await session.services.blobs.createWriter();
    const meta = new MessageMetaBuilder();
    try {
      await writer.write(message.data);
      meta.write(message.data);
      return { blob: await writer.finish(), meta: meta.finish(), flags, internalDate };
    } catch (e) {
      await writer.abort();
      throw e;
    }
  }
  const streamed = session.takeStreamed(message.data.streamed);
  if (!streamed) throw new Error(`APPEND literal ${message.data.streamed} was not staged`);
  return { blob: streamed.blob, meta: streamed.meta.finish(), flags, internalDate };
}
