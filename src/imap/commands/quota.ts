/**
 * QUOTA (rfc9208): one quota root per account, named "", with the STORAGE resource in units of
 * 1024 octets. Limits are set by the administrator (`fulmar user quota`), not by SETQUOTA.
 */
import type { Command } from '../ast.js';
import type { ImapSession } from '../session.js';
import { mailboxName, quoted } from '../wire.js';
import type { Completion } from './table.js';

type Cmd<N extends Command['name']> = Extract<Command, { name: N }>;

async function quotaLine(session: ImapSession): Promise<string | null> {
  const account = await session.services.directory.getUserById(session.account!.id);
  if (!account || account.quotaBytes === null) return null;
  return `* QUOTA ${quoted('')} (STORAGE ${Math.ceil(account.usedBytes / 1024)} ${Math.floor(account.quotaBytes / 1024)})\r\n`;
}

export async function getQuotaRoot(session: ImapSession, _tag: string, command: Cmd<'GETQUOTAROOT'>): Promise<Completion> {
  const box = await session.services.mail.getMailbox(session.account!.id, command.mailbox.name);
  if (!box) return { status: 'NO', code: 'NONEXISTENT', text: 'No such mailbox' };
  const line = await quotaLine(session);
  const name = mailboxName(box.name, { utf8: session.utf8 });
  session.out.text(line ? `* QUOTAROOT ${name} ${quoted('')}\r\n${line}` : `* QUOTAROOT ${name}\r\n`);
  return { status: 'OK', text: 'GETQUOTAROOT completed' };
}

export async function getQuota(session: ImapSession, _tag: string, command: Cmd<'GETQUOTA'>): Promise<Completion> {
  const line = command.root === '' ? await quotaLine(session) : null;
  if (!line) return { status: 'NO', code: 'NONEXISTENT', text: 'No such quota root' };
  session.out.text(line);
  return { status: 'OK', text: 'GETQUOTA completed' };
}

export async function setQuota(): Promise<Completion> {
  return { status: 'NO', code: 'NOPERM', text: 'Quotas are set by the administrator (fulmar user quota)' };
}
