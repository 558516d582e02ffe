/**
 * Commands on mailboxes as names: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST (with
 * LIST-EXTENDED, LIST-STATUS and SPECIAL-USE), LSUB, NAMESPACE, STATUS.
 *
 * Mailbox names are data in the store, never paths: a name such as `../x` is only a name. The
 * hierarchy delimiter is `/`; names with wildcards or empty levels are refused.
 *
 * Standards: rfc9051 6.3, rfc3501 6.3, rfc5258 (LIST-EXTENDED), rfc5819 (LIST-STATUS), rfc6154
 * (SPECIAL-USE, CREATE-SPECIAL-USE), rfc8438 (STATUS=SIZE), rfc7162 3.1.2.3 (STATUS HIGHESTMODSEQ).
 */
import type { Mailbox, SpecialUse } from '../../store/types.js';
import { InvalidInput } from '../../util/errors.js';
import type { Command, StatusItem } from '../ast.js';
import type { ImapSession } from '../session.js';
import { mailboxName } from '../wire.js';
import type { Completion } from './table.js';

type Cmd<N extends Command['name']> = Extract<Command, { name: N }>;

const SPECIAL_USES = new Set(['\\SENT', '\\DRAFTS', '\\TRASH', '\\JUNK', '\\ARCHIVE']);

function accountId(session: ImapSession): number {
  return session.account!.id;
}

function checkNewName(name: string): void {
  if (/[*%]/.test(name)) throw new InvalidInput('Mailbox names cannot contain * or %');
}

export async function create(session: ImapSession, _tag: string, command: Cmd<'CREATE'>): Promise<Completion> {
  const name = command.mailbox.name.replace(/\/$/, '');
  checkNewName(name);
  let specialUse: SpecialUse | null = null;
  for (const use of command.specialUse) {
    const canonical = use.toUpperCase();
    if (!SPECIAL_USES.has(canonical)) return { status: 'NO', code: 'USEATTR', text: `Unsupported special use ${use}` };
    specialUse = (`\\${canonical.charAt(1)}${canonical.slice(2).toLowerCase()}`) as SpecialUse;
  }
  if (name.toUpperCase() === 'INBOX') return { status: 'NO', code: 'ALREADYEXISTS', text: 'INBOX always exists' };
  await session.services.mail.createMailbox(accountId(session), name, specialUse);
  return { status: 'OK', text: 'CREATE completed' };
}

export async function del(session: ImapSession, _tag: string, command: Cmd<'DELETE'>): Promise<Completion> {
  const name = command.mailbox.name;
  if (name.toUpperCase() === 'INBOX') return { status: 'NO', code: 'CANNOT', text: 'INBOX cannot be deleted' };
  const box = await session.services.mail.getMailbox(accountId(session), name);
  if (!box) return { status: 'NO', code: 'NONEXISTENT', text: 'No such mailbox' };
  if (session.selected?.mailboxId === box.id) session.unselect();
  await session.services.mail.deleteMailbox(accountId(session), name);
  return { status: 'OK', text: 'DELETE completed' };
}

export async function rename(session: ImapSession, _tag: string, command: Cmd<'RENAME'>): Promise<Completion> {
  const to = command.to.name;
  checkNewName(to);
  const mail = session.services.mail;
  const from = await mail.getMailbox(accountId(session), command.from.name);
  if (!from) return { status: 'NO', code: 'NONEXISTENT', text: 'No such mailbox' };
  if (await mail.getMailbox(accountId(session), to)) return { status: 'NO', code: 'ALREADYEXISTS', text: 'A mailbox with the new name exists' };
  await mail.renameMailbox(accountId(session), command.from.name, to);
  return { status: 'OK', text: 'RENAME completed' };
}

export async function subscribe(session: ImapSession, _tag: string, command: Cmd<'SUBSCRIBE' | 'UNSUBSCRIBE'>): Promise<Completion> {
  const on = command.name === 'SUBSCRIBE';
  if (on && !(await session.services.mail.getMailbox(accountId(session), command.mailbox.name))) {
    // Dovecot and mox refuse subscribing to a name that does not exist; so do we.
    return { status: 'NO', code: 'NONEXISTENT', text: 'No such mailbox' };
  }
  await session.services.mail.setSubscribed(accountId(session), command.mailbox.name, on);
  return { status: 'OK', text: `${command.name} completed` };
}

export async function namespace(session: ImapSession): Promise<Completion> {
  session.out.text('* NAMESPACE (("" "/")) NIL NIL\r\n');
  return { status: 'OK', text: 'NAMESPACE completed' };
}

// ---- LIST

/**
 * rfc3501 6.3.8: `*` matches anything, `%` anything but the delimiter; INBOX case-insensitively.
 * Matched by walking the pattern's states (an NFA), not with a regular expression: time is
 * linear in name × pattern, whatever wildcards a client sends (a backtracking regex is not).
 */
export function patternMatcher(reference: string, pattern: string): (name: string) => boolean {
  let full = pattern;
  if (reference !== '' && !pattern.startsWith('/')) full = reference.endsWith('/') ? reference + pattern : `${reference}/${pattern}`;
  if (/^inbox(?=$|\/)/i.test(full)) full = 'INBOX' + full.slice(5);
  const p = [...full];
  const n = p.length;
  const isWild = (i: number): boolean => p[i] === '*' || p[i] === '%';
  /** Adds state i and the states reachable by letting wildcards match nothing. */
  const enter = (set: Uint8Array, i: number): void => {
    while (i <= n && !set[i]) {
      set[i] = 1;
      if (i < n && isWild(i)) i++;
      else break;
    }
  };
  return (name) => {
    let states = new Uint8Array(n + 1);
    enter(states, 0);
    for (const ch of name) {
      const next = new Uint8Array(n + 1);
      let any = false;
      for (let i = 0; i < n; i++) {
        if (!states[i]) continue;
        const c = p[i];
        if (c === '*' || (c === '%' && ch !== '/')) {
          enter(next, i);
          any = true;
        } else if (c === ch) {
          enter(next, i + 1);
          any = true;
        }
      }
      if (!any) return false;
      states = next;
    }
    return states[n] === 1;
  };
}

function hasChildren(name: string, all: string[]): boolean {
  const prefix = `${name}/`;
  return all.some((n) => n.startsWith(prefix));
}

export async function list(session: ImapSession, _tag: string, command: Cmd<'LIST'>): Promise<Completion> {
  const l = command.list;
  const utf8 = session.utf8;
  if (l.basic && l.patterns.length === 1 && l.patterns[0] === '') {
    // rfc9051 6.3.9: the delimiter and the root of the reference.
    const root = l.reference.includes('/') ? l.reference.slice(0, l.reference.indexOf('/') + 1) : '';
    session.out.text(`* LIST (\\Noselect) "/" ${mailboxName(root, { utf8 })}\r\n`);
    return { status: 'OK', text: 'LIST completed' };
  }
  const mail = session.services.mail;
  const id = accountId(session);
  const boxes = await mail.listMailboxes(id);
  const subscribed = new Set(await mail.listSubscriptions(id));
  const byName = new Map(boxes.map((b) => [b.name, b]));
  const allNames = boxes.map((b) => b.name);
  const matchers = l.patterns.map((p) => patternMatcher(l.reference, p));
  const matches = (name: string): boolean => matchers.some((m) => m(name));
  const selectSubscribed = l.selection.includes('SUBSCRIBED');
  const selectSpecial = l.selection.includes('SPECIAL-USE');
  const recursive = l.selection.includes('RECURSIVEMATCH');
  const showSubscribed = selectSubscribed || l.returnOptions.subscribed;
  const showSpecial = !l.basic ? l.returnOptions.specialUse || selectSpecial : true;

  const candidates = selectSubscribed ? [...new Set([...subscribed, ...(recursive ? allNames : [])])].sort() : allNames;
  for (const name of candidates) {
    if (!matches(name)) continue;
    const box = byName.get(name);
    const attrs: string[] = [];
    let childInfo = false;
    if (selectSubscribed && !subscribed.has(name)) {
      // RECURSIVEMATCH: listed only because a child is subscribed (rfc5258 3.5).
      if (!recursive || !allNames.some((n) => n.startsWith(`${name}/`) && subscribed.has(n))) continue;
      childInfo = true;
    }
    if (!box) attrs.push('\\NonExistent');
    else attrs.push(hasChildren(name, allNames) ? '\\HasChildren' : '\\HasNoChildren');
    if (showSubscribed && subscribed.has(name)) attrs.push('\\Subscribed');
    if (box?.specialUse && showSpecial) attrs.push(box.specialUse);
    if (selectSpecial && !box?.specialUse) continue;
    const extra = childInfo ? ' ("CHILDINFO" ("SUBSCRIBED"))' : '';
    session.out.text(`* LIST (${attrs.join(' ')}) "/" ${mailboxName(name, { utf8 })}${extra}\r\n`);
    if (l.returnOptions.status && box) await writeStatus(session, box, l.returnOptions.status);
  }
  return { status: 'OK', text: 'LIST completed' };
}

export async function lsub(session: ImapSession, _tag: string, command: Cmd<'LSUB'>): Promise<Completion> {
  const mail = session.services.mail;
  const id = accountId(session);
  const names = new Set((await mail.listMailboxes(id)).map((b) => b.name));
  const match = patternMatcher(command.reference, command.pattern);
  for (const name of (await mail.listSubscriptions(id)).sort()) {
    if (!match(name)) continue;
    const attrs = names.has(name) ? '' : '\\Noselect';
    session.out.text(`* LSUB (${attrs}) "/" ${mailboxName(name, { utf8: session.utf8 })}\r\n`);
  }
  return { status: 'OK', text: 'LSUB completed' };
}

// ---- STATUS

export async function status(session: ImapSession, _tag: string, command: Cmd<'STATUS'>): Promise<Completion> {
  const box = await session.services.mail.getMailbox(accountId(session), command.mailbox.name);
  if (!box) return { status: 'NO', code: 'NONEXISTENT', text: 'No such mailbox' };
  await writeStatus(session, box, command.items);
  return { status: 'OK', text: 'STATUS completed' };
}

async function writeStatus(session: ImapSession, box: Mailbox, items: StatusItem[]): Promise<void> {
  const needCounts = items.some((i) => i === 'UNSEEN' || i === 'DELETED' || i === 'SIZE' || i === 'MESSAGES');
  const counts = needCounts ? await session.services.mail.mailboxCounts(box.id) : null;
  const parts: string[] = [];
  for (const item of items) {
    switch (item) {
      case 'MESSAGES':
        parts.push(`MESSAGES ${counts!.messages}`);
        break;
      case 'RECENT':
        parts.push('RECENT 0');
        break;
      case 'UIDNEXT':
        parts.push(`UIDNEXT ${box.uidNext}`);
        break;
      case 'UIDVALIDITY':
        parts.push(`UIDVALIDITY ${box.uidValidity}`);
        break;
      case 'UNSEEN':
        parts.push(`UNSEEN ${counts!.unseen}`);
        break;
      case 'DELETED':
        parts.push(`DELETED ${counts!.deleted}`);
        break;
      case 'SIZE':
        parts.push(`SIZE ${counts!.size}`);
        break;
      case 'HIGHESTMODSEQ':
        session.condstoreActive = true; // rfc7162 3.1: using a CONDSTORE item enables it
        parts.push(`HIGHESTMODSEQ ${box.highestModSeq}`);
        break;
      case 'APPENDLIMIT':
        parts.push(`APPENDLIMIT ${session.appendLimit}`);
        break;
    }
  }
  session.out.text(`* STATUS ${mailboxName(box.name, { utf8: session.utf8 })} (${parts.join(' ')})\r\n`);
}
