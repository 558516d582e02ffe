/**
 * The SMTP command table: for each verb, the states it is valid in, what to say otherwise, and
 * its handler. The session's dispatcher enforces the states in one place (after Postfix's
 * smtpd_cmd_table); handlers check only what is particular to them.
 */
import type { Reply } from '../replies.js';
import type { SmtpSession, SmtpState } from '../session.js';
import type { SmtpCommand } from '../parser.js';
import { cmdAuth } from './auth.js';
import { cmdBdat, cmdData } from './data.js';
import { cmdEhlo } from './hello.js';
import { cmdExpn, cmdHelp, cmdNoop, cmdQuit, cmdStartTls, cmdVrfy } from './misc.js';
import { cmdMail, cmdRcpt, cmdRset } from './transaction.js';

export interface CommandContext {
  session: SmtpSession;
  reply(reply: Reply): void;
  /** Replies and counts a client error. */
  error(reply: Reply): void;
  close(reply: Reply, why: string): void;
  startTls(): Promise<void>;
  resetTransaction(): Promise<void>;
}

type Verb = SmtpCommand['verb'];
type CommandOf<V extends Verb> = Extract<SmtpCommand, { verb: V }>;

export interface CommandEntry<V extends Verb> {
  states: readonly SmtpState[];
  wrongStateText: string;
  handler: (ctx: CommandContext, command: CommandOf<V>) => Promise<void> | void;
}

const GREETED: readonly SmtpState[] = ['greeted', 'mail', 'rcpt'];
const ANY: readonly SmtpState[] = ['connected', 'greeted', 'mail', 'rcpt'];


export const COMMANDS: { [V in Verb]: CommandEntry<V> } = {
  EHLO: { states: ANY, wrongStateText: '', handler: cmdEhlo },
  HELO: { states: ANY, wrongStateText: '', handler: cmdEhlo },
  STARTTLS: { states: GREETED, wrongStateText: 'Send EHLO first', handler: cmdStartTls },
  AUTH: { states: ['greeted'], wrongStateText: 'Send EHLO first; AUTH is not allowed during a mail transaction', handler: cmdAuth },
  MAIL: { states: ['greeted'], wrongStateText: 'Send EHLO/HELO first, or finish the current transaction (nested MAIL command)', handler: cmdMail },
  RCPT: { states: ['mail', 'rcpt'], wrongStateText: 'Need MAIL command first', handler: cmdRcpt },
  DATA: { states: ['mail', 'rcpt'], wrongStateText: 'Need MAIL and RCPT commands first', handler: cmdData },
  BDAT: { states: ANY, wrongStateText: '', handler: cmdBdat },
  RSET: { states: ANY, wrongStateText: '', handler: cmdRset },
  NOOP: { states: ANY, wrongStateText: '', handler: cmdNoop },
  QUIT: { states: ANY, wrongStateText: '', handler: cmdQuit },
  VRFY: { states: ANY, wrongStateText: '', handler: cmdVrfy },
  EXPN: { states: ANY, wrongStateText: '', handler: cmdExpn },
  HELP: { states: ANY, wrongStateText: '', handler: cmdHelp },
};

