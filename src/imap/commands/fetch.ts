/**
 * FETCH and UID FETCH (rfc9051 6.4.5), with CHANGEDSINCE and VANISHED (rfc7162 3.1.4, 3.2.6)
 * and BINARY (rfc3516).
 *
 * Messages are read from the store in chunks and answered one by one, so FETCH 1:* of a large
 * mailbox streams with bounded memory. Fetching a body part without .PEEK sets \Seen first, in
 * one store transaction for the whole set, and the response then carries the new FLAGS.
 */
import type { Command, FetchAttribute } from '../ast.js';
import { formatFlagsResponse, needsOnlyFlags, setsSeen, UnknownTransferEncoding, writeFetchResponse, type FetchContext } from '../fetch.js';
import type { ImapSession } from '../session.js';
import { resolveSequenceSet, resolveUidSet } from '../sequence.js';
import { formatNumberSet } from '../wire.js';
import type { Completion } from './table.js';

type Cmd<N extends Command['name']> = Extract<Command, { name: N }>;

const FLAGS_CHUNK = 2000;
const MESSAGE_CHUNK = 200;

function expandMacro(command: Cmd<'FETCH'>): FetchAttribute[] {
  if (!command.macro || command.attributes.length > 0) return command.attributes;
  const fast: FetchAttribute[] = [{ kind: 'FLAGS' }, { kind: 'INTERNALDATE' }, { kind: 'RFC822.SIZE' }];
  if (command.macro === 'FAST') return fast;
  if (command.macro === 'ALL') return [...fast, { kind: 'ENVELOPE' }];
  return [...fast, { kind: 'ENVELOPE' }, { kind: 'BODY' }];
}

export async function fetch(session: ImapSession, _tag: string, command: Cmd<'FETCH'>): Promise<Completion> {
  const box = session.selected!;
  const { mail, blobs } = session.services;
  let uids: number[];
  if (command.uid) {
    uids = resolveUidSet(box, command.set, session.savedSearch);
  } else {
    const resolved = resolveSequenceSet(box, command.set, session.savedSearch);
    if (!resolved.ok) return { status: 'BAD', text: resolved.error };
    uids = resolved.uids;
  }
  let attributes = expandMacro(command);
  let { changedSince } = command.modifiers;
  if (command.modifiers.vanished) {
    if (!command.uid || changedSince === undefined) return { status: 'BAD', text: 'VANISHED needs UID FETCH with CHANGEDSINCE' };
    if (!session.enabled.has('QRESYNC')) return { status: 'BAD', text: 'VANISHED needs ENABLE QRESYNC first' };
  }
  if (changedSince !== undefined || attributes.some((a) => a.kind === 'MODSEQ')) session.condstoreActive = true;
  const ctx: FetchContext = {
    mail,
    blobs,
    out: session.out,
    utf8: session.utf8,
    modSeq: session.condstoreActive && (changedSince !== undefined || attributes.some((a) => a.kind === 'MODSEQ')),
    uid: command.uid,
  };

  if (command.modifiers.vanished && changedSince !== undefined && command.set.kind === 'set') {
    // rfc7162 3.2.6: expunged UIDs of the requested set, since the client's MODSEQ.
    const set = command.set;
    const vanished = (await mail.listVanished(box.mailboxId, changedSince)).filter((uid) =>
      set.ranges.some((r) => {
        const a = r.from === '*' ? box.maxUid : r.from;
        const b = r.to === '*' ? box.maxUid : r.to;
        return uid >= Math.min(a, b) && uid <= Math.max(a, b);
      }),
    );
    if (vanished.length > 0) session.out.text(`* VANISHED (EARLIER) ${formatNumberSet(vanished)}\r\n`);
  }
  if (uids.length === 0) return { status: 'OK', text: 'FETCH completed' };

  // \Seen is set before answering, for the messages that lack it (rfc9051 6.4.5).
  const seenChanged = new Set<number>();
  if (!box.readOnly && setsSeen(attributes)) {
    const result = await mail.storeFlags(box.mailboxId, { uids, mode: 'add', flags: ['\\Seen'] });
    box.forgetOwnFlagChanges(result.updated);
    for (const m of result.updated) seenChanged.add(m.uid);
    if (seenChanged.size > 0 && !attributes.some((a) => a.kind === 'FLAGS')) attributes = [...attributes, { kind: 'FLAGS' }];
    if (seenChanged.size > 0 && session.condstoreActive) {
      // rfc7162 3.2.4: a flag change under CONDSTORE is reported with UID and MODSEQ.
      ctx.uid = true;
      ctx.modSeq = true;
    }
  }

  try {
    if (needsOnlyFlags(attributes)) {
      const flagTexts = new Map<string, string>();
      for (let i = 0; i < uids.length; i += FLAGS_CHUNK) {
        const rows = await mail.listFlags(box.mailboxId, uids.slice(i, i + FLAGS_CHUNK), changedSince);
        // One chunk is formatted without awaits; the socket is waited for between chunks.
        for (const m of rows) {
          const seq = box.seqOf(m.uid);
          if (seq > 0) session.out.text(formatFlagsResponse(seq, m, attributes, ctx, flagTexts));
        }
        await session.out.settle();
      }
    } else {
      for (let i = 0; i < uids.length; i += MESSAGE_CHUNK) {
        const rows = await mail.listMessagesByUid(box.mailboxId, uids.slice(i, i + MESSAGE_CHUNK));
        for (const m of rows) {
          if (changedSince !== undefined && m.modSeq <= changedSince) continue;
          const seq = box.seqOf(m.uid);
          if (seq > 0) await writeFetchResponse(ctx, seq, m, attributes);
        }
      }
    }
  } catch (err) {
    if (err instanceof UnknownTransferEncoding) {
      // The response line was cut short: end it so the client can parse what follows.
      session.out.text(')\r\n');
      return { status: 'NO', code: 'UNKNOWN-CTE', text: `Cannot decode the ${err.message} transfer encoding` };
    }
    throw err;
  }
  return { status: 'OK', text: 'FETCH completed' };
}
