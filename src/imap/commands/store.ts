/**
 * STORE and UID STORE (rfc9051 6.4.6), with CONDSTORE's UNCHANGEDSINCE and MODIFIED
 * (rfc7162 3.1.3).
 */
import type { Command } from '../ast.js';
import type { ImapSession } from '../session.js';
import { resolveSequenceSet, resolveUidSet } from '../sequence.js';
import { flagList, formatNumberSet } from '../wire.js';
import type { Completion } from './table.js';

type Cmd<N extends Command['name']> = Extract<Command, { name: N }>;

export async function store(session: ImapSession, _tag: string, command: Cmd<'STORE'>): Promise<Completion> {
  const box = session.selected!;
  if (box.readOnly) return { status: 'NO', code: 'READ-ONLY', text: 'The mailbox is read-only' };
  let uids: number[];
  if (command.uid) {
    uids = resolveUidSet(box, command.set, session.savedSearch);
  } else {
    const resolved = resolveSequenceSet(box, command.set, session.savedSearch);
    if (!resolved.ok) return { status: 'BAD', text: resolved.error };
    uids = resolved.uids;
  }
  if (command.unchangedSince !== null) session.condstoreActive = true;
  if (uids.length === 0) return { status: 'OK', text: 'STORE completed' };

  const { mail } = session.services;
  // \Recent is the server's to set (rfc3501 2.3.2); clients cannot store it.
  const flags = command.flags.filter((f) => f.toUpperCase() !== '\\RECENT');
  const result = await mail.storeFlags(box.mailboxId, {
    uids,
    mode: command.mode,
    flags,
    ...(command.unchangedSince !== null ? { unchangedSince: command.unchangedSince } : {}),
  });
  box.forgetOwnFlagChanges(result.updated);

  if (!command.silent) {
    const reported = new Map(result.updated.map((m) => [m.uid, m]));
    const modified = new Set(result.modified);
    const rest = uids.filter((uid) => !reported.has(uid) && !modified.has(uid));
    // Unchanged messages are answered too, with their flags as they are (as Dovecot does).
    for (const m of rest.length > 0 ? await mail.listFlags(box.mailboxId, rest) : []) reported.set(m.uid, m);
    for (const uid of uids) {
      const m = reported.get(uid);
      const seq = box.seqOf(uid);
      if (!m || seq === 0) continue;
      // rfc7162 3.2.4: with CONDSTORE in use, FETCH responses carry the UID too.
      const uidPart = command.uid || session.condstoreActive ? ` UID ${uid}` : '';
      const modseq = session.condstoreActive ? ` MODSEQ (${m.modSeq})` : '';
      session.out.text(`* ${seq} FETCH (FLAGS ${flagList(m.flags)}${uidPart}${modseq})\r\n`);
    }
  }
  if (command.silent && command.unchangedSince !== null) {
    // rfc7162 3.1.3: a conditional STORE answers with the new MODSEQ even when .SILENT.
    for (const m of result.updated) {
      const seq = box.seqOf(m.uid);
      if (seq > 0) session.out.text(`* ${seq} FETCH (UID ${m.uid} MODSEQ (${m.modSeq}))\r\n`);
    }
  }
  if (result.modified.length > 0) {
    const set = command.uid ? result.modified : result.modified.map((uid) => box.seqOf(uid)).filter((n) => n > 0);
    return { status: 'OK', code: `MODIFIED ${formatNumberSet(set)}`, text: 'Conditional STORE failed for some messages' };
  }
  return { status: 'OK', text: 'STORE completed' };
}
