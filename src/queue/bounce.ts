/**
 * Delivery status notifications (RFC 3464): the multipart/report message sent back to a sender
 * when recipients failed, are delayed, or (NOTIFY=SUCCESS) were delivered or relayed.
 *
 * Invariants: pure (bytes in, bytes out); every value that came from the outside (addresses,
 * remote replies, ENVID) is stripped of CR/LF before it goes into a header or a DSN field.
 *
 * Standards: rfc3464 (report format, fields), rfc3461 (NOTIFY, RET, ENVID, ORCPT), rfc3463
 * (status codes), rfc6522 (multipart/report), rfc3834 (Auto-Submitted).
 */
import { randomBytes } from 'node:crypto';
import { formatDate } from '../message/header.js';

export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed';

export interface DsnRecipient {
  address: string;
  /** ORCPT as received (`rfc822;addr`), or null. */
  orcpt: string | null;
  action: DsnAction;
  /** The remote's reply or our reason. */
  diagnostic: string | null;
  remoteMta: string | null;
  /** Enhanced status code; derived from `diagnostic` when null. */
  status?: string | null;
}

export interface DsnInput {
  reportingMta: string;
  queueId: number;
  /** The bounce goes to this address (the original envelope sender). */
  to: string;
  envId: string | null;
  arrivalDate: Date;
  recipients: DsnRecipient[];
  /** The original message, or its header section (RET=HDRS, delays, too large). */
  original: Buffer;
  originalIsHeadersOnly: boolean;
  /** For delays: when we give up. */
  willRetryUntil?: Date | null;
  now?: Date;
}

function clean(value: string): string {
  return value.replace(/[\r\n\0]+/g, ' ').trim();
}

/** rfc3463: the enhanced code of a reply (`550 5.1.1 ...` → 5.1.1), else one from its class. */
export function statusOf(r: DsnRecipient): string {
  if (r.status) return r.status;
  const m = /^\s*([245])\d\d[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(r.diagnostic ?? '');
  if (m) return m[2]!;
  if (r.action === 'delivered' || r.action === 'relayed') return '2.0.0';
  if (r.action === 'delayed') return '4.0.0';
  const cls = /^\s*([245])\d\d\b/.exec(r.diagnostic ?? '')?.[1];
  return cls === '4' ? '4.0.0' : '5.0.0';
}

const SUBJECTS: Record<DsnAction, string> = {
  failed: 'Undelivered Mail Returned to Sender',
  delayed: 'Delayed Mail (still being retried)',
  delivered: 'Successful Mail Delivery Report',
  relayed: 'Successful Mail Delivery Report',
};

const EXPLANATIONS: Record<DsnAction, string> = {
  failed: 'could not be delivered to one or more recipients. It is attached below.',
  delayed: 'has not been delivered yet to one or more recipients. The mail system will keep trying; you do not need to send it again.',
  delivered: 'was delivered to the recipients listed below.',
  relayed: 'was passed on to a mail system that does not send delivery notifications.',
};

export function buildDsn(input: DsnInput): Buffer {
  const now = input.now ?? new Date();
  const boundary = `${now.getTime().toString(36)}.${randomBytes(8).toString('hex')}/${input.reportingMta}`;
  const main: DsnAction = input.recipients.some((r) => r.action === 'failed')
    ? 'failed'
    : input.recipients.some((r) => r.action === 'delayed')
      ? 'delayed'
      : input.recipients[0]?.action ?? 'failed';
  const lines: string[] = [
    `From: Mail Delivery System <MAILER-DAEMON@${input.reportingMta}>`,
    `To: <${clean(input.to)}>`,
    `Subject: ${SUBJECTS[main]}`,
    `Date: ${formatDate(now)}`,
    `Message-ID: <${now.getTime()}.${randomBytes(6).toString('hex')}@${input.reportingMta}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    'This is a MIME-encapsulated message.',
    '',
    `--${boundary}`,
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    `This is the mail system at host ${input.reportingMta}.`,
    '',
    `Your message ${EXPLANATIONS[main]}`,
    '',
  ];
  for (const r of input.recipients) {
    lines.push(`<${clean(r.address)}>: ${clean(r.diagnostic ?? r.action)}`);
  }
  if (main === 'delayed' && input.willRetryUntil) lines.push('', `The mail system will try until ${formatDate(input.willRetryUntil)}.`);
  lines.push(
    '',
    `--${boundary}`,
    'Content-Description: Delivery report',
    'Content-Type: message/delivery-status',
    '',
    `Reporting-MTA: dns; ${input.reportingMta}`,
    `X-Fulmar-Queue-ID: ${input.queueId}`,
  );
  if (input.envId) lines.push(`Original-Envelope-Id: ${clean(input.envId)}`);
  lines.push(`Arrival-Date: ${formatDate(input.arrivalDate)}`);
  for (const r of input.recipients) {
    lines.push('', `Final-Recipient: rfc822; ${clean(r.address)}`);
    if (r.orcpt) {
      const [type, ...rest] = r.orcpt.split(';');
      lines.push(`Original-Recipient: ${clean(type ?? 'rfc822')}; ${clean(rest.join(';'))}`);
    }
    lines.push(`Action: ${r.action}`, `Status: ${statusOf(r)}`);
    if (r.remoteMta) lines.push(`Remote-MTA: dns; ${clean(r.remoteMta)}`);
    if (r.diagnostic && /^\s*[245]\d\d\b/.test(r.diagnostic)) lines.push(`Diagnostic-Code: smtp; ${clean(r.diagnostic)}`);
    lines.push(`Last-Attempt-Date: ${formatDate(now)}`);
    if (r.action === 'delayed' && input.willRetryUntil) lines.push(`Will-Retry-Until: ${formatDate(input.willRetryUntil)}`);
  }
  lines.push(
    '',
    `--${boundary}`,
    input.originalIsHeadersOnly ? 'Content-Description: Undelivered Message Headers' : 'Content-Description: Undelivered Message',
    input.originalIsHeadersOnly ? 'Content-Type: text/rfc822-headers' : 'Content-Type: message/rfc822',
    '',
    '',
  );
  let original = input.original;
  if (original.length > 0 && original[original.length - 1] !== 0x0a) original = Buffer.concat([original, Buffer.from('\r\n')]);
  return Buffer.concat([
    Buffer.from(lines.join('\r\n'), 'utf8'), // ends with the part header's empty line
    original,
    Buffer.from(`\r\n--${boundary}--\r\n`, 'utf8'),
  ]);
}

/** The header section of a message (up to and including the empty line), for RET=HDRS. */
export function headerSection(message: Buffer): Buffer {
  const crlf = message.indexOf('\r\n\r\n');
  const lf = message.indexOf('\n\n');
  const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf + 4 : lf >= 0 ? lf + 2 : message.length;
  return message.subarray(0, end);
}
