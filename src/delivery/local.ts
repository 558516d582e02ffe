/**
 * Local delivery's per-recipient header lines. They are stored with each mailbox copy and read
 * before the shared message bytes, so a message for 50 local recipients is stored once while
 * each copy still says whom it was for (which a downstream DomainPOP needs to route it).
 */

/** Header values here come from envelope addresses; strip anything that could break a header line. */
function headerSafe(value: string): string {
  return value.replace(/[\r\n\0]/g, '');
}

export function localPrefix(fields: { returnPath: string; deliveredTo: string; rcptTo: string }): Buffer {
  return Buffer.from(
    `Return-Path: <${headerSafe(fields.returnPath)}>\r\n` +
      `Delivered-To: ${headerSafe(fields.deliveredTo)}\r\n` +
      `X-Rcpt-To: ${headerSafe(fields.rcptTo)}\r\n`,
    'utf8',
  );
}
