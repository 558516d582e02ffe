/** NOOP, QUIT, VRFY, EXPN, HELP and STARTTLS. */
import type { SmtpCommand } from '../parser.js';
import type { CommandContext } from './table.js';

export function cmdNoop(ctx: CommandContext): void {
  ctx.reply({ code: 250, enhanced: '2.0.0', text: 'Ok' });
}

export function cmdQuit(ctx: CommandContext): void {
  ctx.close({ code: 221, enhanced: '2.0.0', text: 'Bye' }, 'quit');
}

/** VRFY and EXPN would let anyone harvest addresses; they are off, as in MDaemon and most MXes. */
export function cmdVrfy(ctx: CommandContext): void {
  ctx.reply({ code: 252, enhanced: '2.5.0', text: 'Cannot VRFY user, but will accept message and attempt delivery' });
}

export function cmdExpn(ctx: CommandContext): void {
  ctx.error({ code: 502, enhanced: '5.5.1', text: 'EXPN command is disabled' });
}

export function cmdHelp(ctx: CommandContext, _command: Extract<SmtpCommand, { verb: 'HELP' }>): void {
  ctx.reply({
    code: 214,
    enhanced: '2.0.0',
    text: ['Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY', 'See RFC 5321'],
  });
}

export async function cmdStartTls(ctx: CommandContext): Promise<void> {
  const s = ctx.session;
  if (s.tls !== null) {
    ctx.error({ code: 503, enhanced: '5.5.1', text: 'TLS already active' });
    return;
  }
  if (s.state === 'mail' || s.state === 'rcpt') {
    ctx.error({ code: 503, enhanced: '5.5.1', text: 'STARTTLS is not allowed during a mail transaction' });
    return;
  }
  await ctx.startTls();
}
