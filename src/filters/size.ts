/**
 * Message size policy (RFC 1870 and MDaemon's two limits).
 *
 * - The global `smtp.max_message_size` is advertised as SIZE; a MAIL FROM declaring more is
 *   refused at once.
 * - A domain's own limit refuses, at RCPT, a recipient of that domain when the declared size
 *   is over it.
 * - During DATA the limit that counts is the smallest among the global limit and the limits of
 *   the domains of accepted recipients: one reply covers the whole message.
 * 0 (global) or null (domain) means no limit.
 */
export function effectiveLimit(globalLimit: number, domainLimits: Array<number | null>): number {
  let limit = globalLimit > 0 ? globalLimit : Infinity;
  for (const d of domainLimits) if (d !== null && d > 0 && d < limit) limit = d;
  return limit;
}

export function exceedsLimit(size: number, limit: number): boolean {
  return limit > 0 && size > limit;
}

/** True when a drop-connection size this small makes senders retry instead of bounce. */
export function dropSizeTooSmall(dropSize: number, maxMessageSize: number): boolean {
  return dropSize > 0 && maxMessageSize > 0 && dropSize < 2 * maxMessageSize;
}
