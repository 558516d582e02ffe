/** COPY, MOVE and their UID forms (rfc9051 6.4.7-6.4.8, rfc6851), answering COPYUID (rfc4315). */
import type { Command } from '../ast.js';
import type { ImapSession } from '../session.js';
import { resolveSequenceSet, resolveUidSet } from '../sequence.js';
import { formatSequenceSet } from '../wire.js';
import type { Completion } from './table.js';

type Cmd<N extends Command['name']> = Extract<Command, { name: N }>;

export async function copyOrMove(session: ImapSession, _tag: string, command: Cmd<'COPY' | 'MOVE'>): Promise<Completion> {
  const box = session.selected!;
  const move = command.name === 'MOVE';
  if (move && box.readOnly) return { status: 'NO', code: 'READ-ONLY', text: 'The mailbox is read-only' };
  let uids: number[];
  if (command.uid) {
    uids = resolveUidSet(box, command.set, session.savedSearch);
  } else {
    const resolved = resolveSequenceSet(box, command.set, session.savedSearch);
    if (!resolved.ok) return { status: 'BAD', text: resolved.error };
    uids = resolved.uids;
  }
  const { mail } = session.services;
  const target = await mail.getMailbox(session.account!.id, command.mailbox.name);
  if (!target) return { status: 'NO', code: 'TRYCREATE', text: 'No such mailbox' };
  if (uids.length === 0) return { status: 'OK', text: `${command.name} completed (no messages)` };
  const result = move ? await mail.moveMessages(box.mailboxId, uids, target.id) : await mail.copyMessages(box.mailboxId, uids, target.id);
  const code = `COPYUID ${result.uidValidity} ${formatSequenceSet(result.mapping.map(([from]) => from))} ${formatSequenceSet(result.mapping.map(([, to]) => to))}`;
  if (move) {
    // rfc6851 4.3: COPYUID goes in an untagged OK before the expunges.
    session.out.text(`* OK [${code}] Moved\r\n`);
    return { status: 'OK', text: 'MOVE completed' };
  }
  return { status: 'OK', code, text: 'COPY completed' };
}
