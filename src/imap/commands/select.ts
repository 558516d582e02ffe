/**
 * Opening and closing the selected mailbox: SELECT, EXAMINE (with CONDSTORE and QRESYNC), CLOSE,
 * UNSELECT, CHECK, EXPUNGE, UID EXPUNGE.
 *
 * Standards: rfc9051 6.3.2-6.3.3, 6.4; rfc3501 6.3.1; rfc7162 3.1.2 (HIGHESTMODSEQ), 3.2.5
 * (SELECT QRESYNC), 3.2.11 ([CLOSED]); rfc4315 2.1 (UID EXPUNGE); rfc3691 (UNSELECT).
 */
import type { Command, QresyncParams } from '../ast.js';
import { SelectedMailbox } from '../selected.js';
import type { ImapSession } from '../session.js';
import { resolveUidSet, uidSetContains } from '../sequence.js';
import { flagList, mailboxName, formatNumberSet } from '../wire.js';
import type { Completion } from './table.js';

type Cmd<N extends Command['name']> = Extract<Command, { name: N }>;

const SYSTEM_FLAGS = '\\Answered \\Flagged \\Deleted \\Seen \\Draft';
const COMMON_KEYWORDS = '$Forwarded $MDNSent $Junk $NotJunk $Phishing';

export async function select(session: ImapSession, _tag: string, command: Cmd<'SELECT' | 'EXAMINE'>): Promise<Completion> {
  const { mail, events } = session.services;
  const readOnly = command.name === 'EXAMINE';
  const qresync = command.params.qresync;
  if (qresync && !session.enabled.has('QRESYNC')) return { status: 'BAD', text: 'QRESYNC parameter needs ENABLE QRESYNC first' };
  if (command.params.condstore) session.condstoreActive = true;

  if (session.selected) {
    session.unselect();
    // rfc7162 3.2.11, rfc9051 7.1: the previous mailbox is closed before the new one opens.
    session.out.text('* OK [CLOSED] Previous mailbox closed\r\n');
  }
  const accountId = session.account!.id;
  const box = await mail.getMailbox(accountId, command.mailbox.name);
  if (!box) return { status: 'NO', code: 'NONEXISTENT', text: 'No such mailbox' };
  // Events first, then the list: nothing that happens in between is missed (selected.ts).
  const early: Parameters<SelectedMailbox['onEvent']>[0][] = [];
  const stop = events.subscribe(accountId, (e) => early.push(e));
  let uids: number[];
  let counts;
  let current;
  try {
    uids = await mail.listUids(box.id);
    counts = await mail.mailboxCounts(box.id);
    current = (await mail.getMailboxById(box.id)) ?? box;
  } finally {
    stop();
  }
  const view = new SelectedMailbox({ mailboxId: box.id, name: box.name, uidValidity: box.uidValidity, readOnly, uids });
  for (const e of early) view.onEvent(e);
  session.select(view);

  const out = session.out;
  out.text(`* FLAGS (${SYSTEM_FLAGS} ${COMMON_KEYWORDS})\r\n`);
  out.text(
    readOnly
      ? '* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n'
      : `* OK [PERMANENTFLAGS (${SYSTEM_FLAGS} ${COMMON_KEYWORDS} \\*)] Flags permitted\r\n`,
  );
  out.text(`* ${uids.length} EXISTS\r\n`);
  if (!session.rev2) {
    out.text('* 0 RECENT\r\n');
    if (counts.firstUnseenUid !== null) {
      const seq = view.seqOf(counts.firstUnseenUid);
      if (seq > 0) out.text(`* OK [UNSEEN ${seq}] First unseen message\r\n`);
    }
  }
  out.text(`* OK [UIDVALIDITY ${current.uidValidity}] UIDs valid\r\n`);
  out.text(`* OK [UIDNEXT ${current.uidNext}] Predicted next UID\r\n`);
  out.text(`* OK [HIGHESTMODSEQ ${current.highestModSeq}] Highest\r\n`);
  if (session.rev2) {
    const special = current.specialUse ? ` ${current.specialUse}` : '';
    out.text(`* LIST (${special.trim()}) "/" ${mailboxName(current.name, { utf8: session.utf8 })}\r\n`);
  }
  if (qresync && qresync.uidValidity === current.uidValidity) await resync(session, view, qresync);
  return { status: 'OK', code: readOnly ? 'READ-ONLY' : 'READ-WRITE', text: `${command.name} completed` };
}

/** rfc7162 3.2.5.1: what changed since the client's MODSEQ, as VANISHED (EARLIER) and FETCH. */
async function resync(session: ImapSession, view: SelectedMailbox, q: QresyncParams): Promise<void> {
  const { mail } = session.services;
  let vanished = await mail.listVanished(view.mailboxId, q.modSeq);
  if (q.knownUids) vanished = vanished.filter((uid) => uidSetContains(q.knownUids!, uid, view.maxUid));
  if (vanished.length > 0) session.out.text(`* VANISHED (EARLIER) ${formatNumberSet(vanished)}\r\n`);
  const known = q.knownUids ? resolveUidSet(view, q.knownUids, null) : view.uidArray();
  for (const m of await mail.listFlags(view.mailboxId, known, q.modSeq)) {
    const seq = view.seqOf(m.uid);
    if (seq > 0) session.out.text(`* ${seq} FETCH (UID ${m.uid} FLAGS ${flagList(m.flags)} MODSEQ (${m.modSeq}))\r\n`);
  }
}

export async function close(session: ImapSession): Promise<Completion> {
  const box = session.selected!;
  session.unselect();
  // rfc9051 6.4.1: CLOSE expunges silently (no EXPUNGE responses), unless read-only.
  if (!box.readOnly) await expungeDeleted(session, box, null);
  return { status: 'OK', text: 'CLOSE completed' };
}

export async function unselect(session: ImapSession): Promise<Completion> {
  session.unselect();
  return { status: 'OK', text: 'UNSELECT completed' };
}

export async function check(): Promise<Completion> {
  return { status: 'OK', text: 'CHECK completed' };
}

export async function expunge(session: ImapSession): Promise<Completion> {
  const box = session.selected!;
  if (box.readOnly) return { status: 'NO', code: 'READ-ONLY', text: 'The mailbox is read-only' };
  await expungeDeleted(session, box, null);
  return { status: 'OK', text: 'EXPUNGE completed' };
}

export async function uidExpunge(session: ImapSession, _tag: string, command: Cmd<'UID EXPUNGE'>): Promise<Completion> {
  const box = session.selected!;
  if (box.readOnly) return { status: 'NO', code: 'READ-ONLY', text: 'The mailbox is read-only' };
  await expungeDeleted(session, box, resolveUidSet(box, command.set, session.savedSearch));
  return { status: 'OK', text: 'UID EXPUNGE completed' };
}

/**
 * Removes the messages flagged \Deleted among those the session knows (or among `only`). The
 * store publishes an expunge event per message, which the session reports with the tagged
 * response, in the same place as other sessions' expunges.
 */
async function expungeDeleted(session: ImapSession, box: SelectedMailbox, only: number[] | null): Promise<void> {
  const { mail } = session.services;
  const candidates = only ?? box.uidArray();
  if (candidates.length === 0) return;
  const flags = await mail.listFlags(box.mailboxId, candidates);
  const doomed = flags.filter((m) => m.flags.includes('\\Deleted')).map((m) => m.uid);
  if (doomed.length > 0) await mail.expungeMessages(box.mailboxId, doomed);
}
