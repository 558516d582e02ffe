/**
 * The standard ports of every Fulmar service, and how `--port-offset` moves them all.
 */
export const SERVICES = [
  'smtp',
  'submission',
  'smtps',
  'pop3',
  'pop3s',
  'imap',
  'imaps',
  'odmr',
  'minger',
  'admin',
  'webmail',
] as const;

export type ServiceName = (typeof SERVICES)[number];

export const STANDARD_PORTS: Readonly<Record<ServiceName, number>> = {
  smtp: 25,
  submission: 587,
  smtps: 465,
  pop3: 110,
  pop3s: 995,
  imap: 143,
  imaps: 993,
  odmr: 366,
  minger: 4069, // UDP
  admin: 1000,
  webmail: 3000,
};

/**
 * Effective ports: a port set alone in the config file wins as written; every other port is
 * the standard one plus the offset.
 */
export function resolvePorts(
  explicit: Partial<Record<ServiceName, number>>,
  offset: number,
): Record<ServiceName, number> {
  const out = {} as Record<ServiceName, number>;
  for (const name of SERVICES) {
    const port = explicit[name] ?? STANDARD_PORTS[name] + offset;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new RangeError(
        `port for ${name} would be ${port}; ports must be 1-65535 (check --port-offset and [ports] in the config)`,
      );
    }
    out[name] = port;
  }
  return out;
}
