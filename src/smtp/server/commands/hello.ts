/** EHLO and HELO (rfc5321 4.1.1.1): greet, reset the transaction, advertise the extensions. */
import type { SmtpCommand } from '../parser.js';
import type { CommandContext } from './table.js';

export async function cmdEhlo(ctx: CommandContext, command: Extract<SmtpCommand, { verb: 'EHLO' | 'HELO' }>): Promise<void> {
  const s = ctx.session;
  // rfc5321 4.1.4: EHLO in the middle of a transaction resets it, like RSET.
  await ctx.resetTransaction();
  s.heloName = command.host.raw;
  s.esmtp = command.verb === 'EHLO';
  s.state = 'greeted';
  const greeting = `${s.hostname} Hello ${command.host.raw} [${s.remoteAddress}]`;
  if (!s.esmtp) {
    ctx.reply({ code: 250, text: greeting });
    return;
  }
  const max = s.settings.get('smtp.max_message_size');
  const lines = [greeting, 'PIPELINING', max > 0 ? `SIZE ${max}` : 'SIZE', 'ENHANCEDSTATUSCODES', '8BITMIME', 'SMTPUTF8', 'CHUNKING'];
  if (s.tls === null) lines.push('STARTTLS');
  if (s.authAllowed && s.account === null) lines.push('AUTH PLAIN LOGIN');
  ctx.reply({ code: 250, text: lines });
}
