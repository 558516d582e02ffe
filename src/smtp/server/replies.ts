/**
 * SMTP replies: formatting (RFC 5321 4.2, multi-line with `-`), and the one table that maps
 * protocol-neutral verdicts of the services to reply codes with RFC 3463 enhanced status codes.
 */
import type { RecipientRefusal } from '../../pipeline/ingest.js';

export interface Reply {
  code: number;
  /** Enhanced status code (RFC 2034/3463), e.g. `2.0.0`; omitted on the greeting and EHLO. */
  enhanced?: string;
  text: string | string[];
}

export function formatReply(reply: Reply): string {
  const lines = Array.isArray(reply.text) ? reply.text : [reply.text];
  const prefix = reply.enhanced ? `${reply.enhanced} ` : '';
  let out = '';
  for (let i = 0; i < lines.length; i++) {
    const sep = i === lines.length - 1 ? ' ' : '-';
    // Each line of a reply carries the enhanced code (RFC 2034 section 4).
    out += `${reply.code}${sep}${i === 0 || reply.enhanced ? prefix : ''}${lines[i]!.replace(/[\r\n]/g, ' ')}\r\n`;
  }
  return out;
}

export const REPLIES = {
  ok: { code: 250, enhanced: '2.0.0', text: 'Ok' },
  badSequence: (text: string): Reply => ({ code: 503, enhanced: '5.5.1', text }),
  authRequired: { code: 530, enhanced: '5.7.0', text: 'Authentication required' },
  tooManyErrors: { code: 421, enhanced: '4.7.0', text: 'Too many errors, closing connection' },
  timeout: { code: 421, enhanced: '4.4.2', text: 'Timeout exceeded, closing connection' },
  shuttingDown: { code: 421, enhanced: '4.3.2', text: 'Service shutting down, try again later' },
  lineTooLong: { code: 500, enhanced: '5.5.2', text: 'Line too long' },
  bareLf: { code: 500, enhanced: '5.5.2', text: 'Command lines must end with CRLF (RFC 5321 2.3.8)' },
  badUtf8: { code: 500, enhanced: '5.5.2', text: 'Command is not valid UTF-8' },
  tempFailure: { code: 451, enhanced: '4.3.0', text: 'Temporary failure, please try again later' },
} satisfies Record<string, Reply | ((text: string) => Reply)>;

/** The verdicts of MessageTransaction.addRecipient, as SMTP replies. */
export function recipientRefusalReply(reason: RecipientRefusal, detail: string): Reply {
  switch (reason) {
    case 'unknown-user':
      return { code: 550, enhanced: '5.1.1', text: `Recipient address rejected: ${detail}` };
    case 'relay-denied':
      return { code: 554, enhanced: '5.7.1', text: `Relay access denied` };
    case 'over-quota':
      return { code: 452, enhanced: '4.2.2', text: `Mailbox full: ${detail}` };
    case 'too-many-recipients':
      return { code: 452, enhanced: '4.5.3', text: `Too many recipients: ${detail}` };
    case 'too-big-for-domain':
      return { code: 552, enhanced: '5.3.4', text: `Message too big for recipient: ${detail}` };
    case 'duplicate':
      return { code: 250, enhanced: '2.1.5', text: 'Ok (duplicate recipient)' };
  }
}
