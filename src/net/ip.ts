/** `::ffff:1.2.3.4` (a v4 client on a dual-stack socket) is logged, limited and written as `1.2.3.4`. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
