/** MAIL, RCPT and RSET (rfc5321 4.1.1.2, 4.1.1.3, 4.1.1.5): the envelope of one transaction. */
import { checkSender } from '../../../filters/sender-policy.js';
import { MessageTransaction } from '../../../pipeline/ingest.js';
import type { SmtpCommand } from '../parser.js';
import { recipientRefusalReply } from '../replies.js';
import type { CommandContext } from './table.js';

export async function cmdMail(ctx: CommandContext, command: Extract<SmtpCommand, { verb: 'MAIL' }>): Promise<void> {
  const s = ctx.session;
  const p = command.params;
  if (!s.esmtp && (p.size !== undefined || p.body !== undefined || p.smtputf8 || p.auth !== undefined || p.ret || p.envid)) {
    ctx.error({ code: 555, enhanced: '5.5.4', text: 'MAIL parameters need EHLO, not HELO' });
    return;
  }
  if (s.port !== 'mx' && s.account === null) {
    // rfc6409 4.3: submission requires authentication before the transaction.
    ctx.error({ code: 530, enhanced: '5.7.0', text: 'Authentication required' });
    return;
  }
  if (p.body === 'BINARYMIME') {
    ctx.error({ code: 555, enhanced: '5.5.4', text: 'BODY=BINARYMIME is not supported' });
    return;
  }
  const max = s.settings.get('smtp.max_message_size');
  if (p.size !== undefined && max > 0 && p.size > max) {
    // rfc1870 6.1: a declared size over the fixed limit is refused at once, permanently.
    ctx.reply({ code: 552, enhanced: '5.3.4', text: `Message size exceeds fixed maximum message size (${max} bytes)` });
    return;
  }
  if (command.from?.utf8 && !p.smtputf8) {
    ctx.error({ code: 553, enhanced: '5.6.7', text: 'Non-ASCII address requires the SMTPUTF8 parameter' });
    return;
  }
  if (s.account !== null && s.settings.get('submission.enforce_sender')) {
    // An authenticated user sends only as an address they own (filters/sender-policy.ts).
    const from = command.from?.address ?? '';
    if (!(await checkSender(s.services.directory, s.account, from)).ok) {
      s.log.info({ event: 'smtp.sender_refused', from, user: s.account.address }, 'sender address not owned');
      ctx.error({ code: 553, enhanced: '5.7.1', text: `Sender address <${from}> not owned by user ${s.account.address}` });
      return;
    }
  }
  s.transaction = new MessageTransaction(
    s.services,
    {
      authenticated: s.account !== null,
      settings: s.settings,
      // Mail from the world (port 25, no AUTH) gets SPF, DKIM, DMARC and ARC checks.
      inbound: s.port === 'mx' && s.account === null ? { ip: s.remoteAddress, helo: s.heloName, hostname: s.hostname } : null,
    },
    command.from?.address ?? '',
    p.size ?? null,
    { envId: p.envid ?? null, ret: p.ret ?? null },
  );
  s.smtputf8 = p.smtputf8;
  s.state = 'mail';
  s.log.debug({ event: 'smtp.mail', from: command.from?.address ?? '' }, 'mail from');
  ctx.reply({ code: 250, enhanced: '2.1.0', text: 'Ok' });
}

export async function cmdRcpt(ctx: CommandContext, command: Extract<SmtpCommand, { verb: 'RCPT' }>): Promise<void> {
  const s = ctx.session;
  const tx = s.transaction!;
  s.rcptAttempts++;
  let address = command.to.address;
  if (command.to.domain === '') {
    // rfc5321 4.5.1: <Postmaster> without a domain must be accepted; it goes to the postmaster
    // of the local domain that the server's name belongs to, else of the first local domain.
    const domains = await s.services.directory.listDomains();
    const home = domains.find((d) => s.hostname === d.name || s.hostname.endsWith(`.${d.name}`)) ?? domains[0];
    if (!home) {
      ctx.error({ code: 550, enhanced: '5.1.1', text: 'Recipient address rejected: no local domain for <postmaster>' });
      return;
    }
    address = `postmaster@${home.name}`;
  }
  const notify = command.params.notify;
  const verdict = await tx.addRecipient(address, {
    orcpt: command.params.orcpt ? `${command.params.orcpt.addrType};${command.params.orcpt.address}` : null,
    notify: notify
      ? notify.never
        ? 'NEVER'
        : [notify.success && 'SUCCESS', notify.failure && 'FAILURE', notify.delay && 'DELAY'].filter(Boolean).join(',')
      : null,
  });
  if (verdict.ok) {
    s.state = 'rcpt';
    ctx.reply({ code: 250, enhanced: '2.1.5', text: 'Ok' });
    return;
  }
  const reply = recipientRefusalReply(verdict.reason, verdict.detail);
  s.log.info({ event: 'smtp.rcpt_refused', rcpt: address, reason: verdict.reason }, verdict.detail);
  if (reply.code >= 500) ctx.error(reply);
  else ctx.reply(reply);
}

export async function cmdRset(ctx: CommandContext): Promise<void> {
  await ctx.resetTransaction();
  ctx.reply({ code: 250, enhanced: '2.0.0', text: 'Ok' });
}
