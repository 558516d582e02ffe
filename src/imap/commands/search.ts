/**
 * SEARCH and UID SEARCH (rfc9051 6.4.4), with ESEARCH result options (rfc4731), SEARCHRES's
 * SAVE and `$` (rfc5182), and CONDSTORE's MODSEQ (rfc7162 3.1.5).
 *
 * IMAP4rev2 clients always get ESEARCH; IMAP4rev1 clients get `* SEARCH` unless they ask for
 * RETURN options.
 */
import type { Command } from '../ast.js';
import { countTextKeys, MAX_TEXT_KEYS, runSearch } from '../search.js';
import type { ImapSession } from '../session.js';
import { quoted, formatNumberSet } from '../wire.js';
import type { Completion } from './table.js';

type Cmd<N extends Command['name']> = Extract<Command, { name: N }>;

const CHARSETS = new Set(['UTF-8', 'US-ASCII']);

export async function search(session: ImapSession, tag: string, command: Cmd<'SEARCH'>): Promise<Completion> {
  const { program } = command;
  if (program.charset && !CHARSETS.has(program.charset.toUpperCase())) {
    return { status: 'NO', code: 'BADCHARSET (UTF-8 US-ASCII)', text: `Unsupported charset ${program.charset}` };
  }
  if (countTextKeys(program.criteria) > MAX_TEXT_KEYS) {
    return { status: 'NO', code: 'LIMIT', text: `Too many different text search keys (at most ${MAX_TEXT_KEYS})` };
  }
  const box = session.selected!;
  const result = await runSearch(
    { mail: session.services.mail, blobs: session.services.blobs, box, saved: session.savedSearch },
    program.criteria,
  );
  if (result.highestModSeq !== null) session.condstoreActive = true;
  const uids = result.uids;
  const numbers = command.uid ? uids : uids.map((uid) => box.seqOf(uid));
  const options = program.returnOptions;

  if (options === null && !session.rev2) {
    const modseq = result.highestModSeq !== null && uids.length > 0 ? ` (MODSEQ ${result.highestModSeq})` : '';
    session.out.text(`* SEARCH${numbers.map((n) => ` ${n}`).join('')}${modseq}\r\n`);
    return { status: 'OK', text: 'SEARCH completed' };
  }
  const wanted = new Set(options === null || options.length === 0 ? ['ALL'] : options);
  if (wanted.has('SAVE')) {
    // rfc5182 2.4: with only MIN and/or MAX, only those are saved.
    const onlyEnds = !wanted.has('ALL') && !wanted.has('COUNT') && (wanted.has('MIN') || wanted.has('MAX'));
    session.savedSearch = onlyEnds
      ? [...new Set([wanted.has('MIN') ? uids[0] : undefined, wanted.has('MAX') ? uids[uids.length - 1] : undefined])].filter((u): u is number => u !== undefined)
      : uids;
    if (wanted.size === 1) return { status: 'OK', text: 'SEARCH completed, result saved' };
  }
  const parts = [`* ESEARCH (TAG ${quoted(tag)})`];
  if (command.uid) parts.push('UID');
  if (numbers.length > 0) {
    if (wanted.has('MIN')) parts.push(`MIN ${numbers[0]}`);
    if (wanted.has('MAX')) parts.push(`MAX ${numbers[numbers.length - 1]}`);
    if (wanted.has('ALL')) parts.push(`ALL ${formatNumberSet(numbers)}`);
  }
  if (wanted.has('COUNT')) parts.push(`COUNT ${numbers.length}`);
  if (result.highestModSeq !== null && numbers.length > 0) parts.push(`MODSEQ ${result.highestModSeq}`);
  session.out.text(`${parts.join(' ')}\r\n`);
  return { status: 'OK', text: 'SEARCH completed' };
}
