/** The Received: header this server prepends to each message it accepts (rfc5321 4.4, rfc3848). */
import { formatReceived } from '../../message/header.js';
import type { SmtpSession } from './session.js';

/** rfc3848 `with` keyword: ESMTP, plus S for TLS, A for authenticated; UTF8 prefix under SMTPUTF8 (rfc6531 3.7.3). */
function protocolKeyword(s: SmtpSession): string {
  if (!s.esmtp) return 'SMTP';
  const base = `${s.smtputf8 ? 'UTF8SMTP' : 'ESMTP'}${s.tls ? 'S' : ''}${s.account ? 'A' : ''}`;
  return base;
}

export function receivedHeader(s: SmtpSession, id: string): string {
  const recipients = s.transaction?.recipientAddresses ?? [];
  return formatReceived({
    from: s.heloName ?? 'unknown',
    fromIp: s.remoteAddress,
    by: s.hostname,
    with: protocolKeyword(s),
    id,
    ...(recipients.length === 1 ? { for: recipients[0]! } : {}),
    ...(s.tls ? { tls: s.tls } : {}),
    ...(s.account ? { auth: s.account.address } : {}),
    date: new Date(),
  });
}
