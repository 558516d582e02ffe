/**
 * The DNS resolver every lookup goes through (MX for delivery, SPF/DKIM/DMARC for filters), built
 * from the `dns.servers` setting so tests and sites can point it at their own resolvers.
 */
import { Resolver } from 'node:dns/promises';

/** `''` = the system's resolvers; otherwise `host[:port]` entries, comma-separated. */
export function createResolver(servers: string, timeoutMs = 5000): Resolver {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  const list = servers
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (list.length > 0) resolver.setServers(list);
  return resolver;
}
