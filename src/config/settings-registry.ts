/**
 * Every runtime setting Fulmar knows: its type, default and meaning. Settings are data in the
 * store (`fulmar settings set KEY VALUE`), read by the running server at each use, so a change
 * takes effect at once. The config file's `[settings]` table gives defaults under the store's values.
 */
import { formatDuration, parseDuration } from '../util/duration.js';
import { formatSize, parseSize } from '../util/size.js';

type Kind = 'size' | 'duration' | 'int' | 'bool' | 'string';

interface SettingBase<K extends Kind, T> {
  kind: K;
  default: T;
  description: string;
  choices?: readonly string[];
  min?: number;
}

type SettingDef =
  | SettingBase<'size', number>
  | SettingBase<'duration', number>
  | SettingBase<'int', number>
  | SettingBase<'bool', boolean>
  | SettingBase<'string', string>;

export const SETTINGS = {
  'smtp.max_message_size': {
    kind: 'size',
    default: 25 * 1024 * 1024,
    description: 'Largest message accepted (advertised as SIZE); 0 = no limit. Per-domain limits can be lower.',
  },
  'smtp.drop_connection_size': {
    kind: 'size',
    default: 0,
    description:
      'Hard cap against disk filling: a transfer past this many bytes gets 552 and the connection is closed; 0 = off. Keep it at least twice smtp.max_message_size.',
  },
  'smtp.max_recipients': { kind: 'int', default: 100, min: 1, description: 'Recipients per message; more get 452 4.5.3.' },
  'smtp.max_errors': {
    kind: 'int',
    default: 10,
    min: 1,
    description: 'Protocol errors in one session before it is closed with 421.',
  },
  'smtp.idle_timeout': { kind: 'duration', default: 300_000, min: 1000, description: 'Time a client may stay silent (RFC 5321 asks for at least 5 minutes).' },
  'smtp.session_timeout': { kind: 'duration', default: 3_600_000, min: 1000, description: 'Longest total time of one SMTP session.' },
  'smtp.max_connections': { kind: 'int', default: 500, min: 1, description: 'Simultaneous SMTP connections over all ports.' },
  'smtp.max_connections_per_ip': { kind: 'int', default: 20, min: 1, description: 'Simultaneous SMTP connections from one IP address.' },
  'smtp.max_line_length': {
    kind: 'int',
    default: 65_536,
    min: 1000,
    description: 'Longest line inside a message (RFC 5322 asks senders for 998); longer lines make the message refused with 554 5.6.0.',
  },
  'smtp.max_header_size': {
    kind: 'size',
    default: 256 * 1024,
    description: 'Largest header section of a message; larger ones are refused with 552 5.3.4.',
  },
  'smtp.bare_newline': {
    kind: 'string',
    default: 'normalize',
    choices: ['normalize', 'reject'],
    description:
      'What to do with a bare LF or CR inside DATA/BDAT: normalize it to CRLF, or refuse the message with 554 5.6.0. A bare LF never ends DATA either way.',
  },
  'auth.cache_ttl': {
    kind: 'duration',
    default: 600_000,
    description: 'How long a successful login is remembered (as an HMAC, in memory) so that polling clients skip the password hash; 0 = off.',
  },
  'auth.max_failures_per_ip': {
    kind: 'int',
    default: 10,
    min: 1,
    description: 'Failed logins from one IP address within 15 minutes before its further attempts are refused for a while.',
  },
  'pop3.idle_timeout': { kind: 'duration', default: 600_000, min: 1000, description: 'POP3 autologout timer (RFC 1939 asks for at least 10 minutes).' },
  'pop3.max_errors': { kind: 'int', default: 10, min: 1, description: 'Bad POP3 commands in one session before it is closed.' },
  'pop3.max_connections': { kind: 'int', default: 500, min: 1, description: 'Simultaneous POP3 connections over both ports.' },
  'pop3.max_connections_per_ip': { kind: 'int', default: 20, min: 1, description: 'Simultaneous POP3 connections from one IP address.' },
  'pop3.apop': {
    kind: 'bool',
    default: false,
    description: 'Offer APOP (a timestamp in the POP3 greeting) to accounts that have an APOP secret (fulmar user apop).',
  },
  'pop3.login_delay': {
    kind: 'duration',
    default: 0,
    description: 'Advertised as LOGIN-DELAY (RFC 2449): how often clients may log in; 0 = not advertised.',
  },
  'imap.idle_timeout': {
    kind: 'duration',
    default: 1_800_000,
    min: 60_000,
    description: 'IMAP autologout timer, also while IDLE (RFC 9051 5.4 asks for at least 30 minutes once logged in).',
  },
  'imap.login_timeout': { kind: 'duration', default: 60_000, min: 1000, description: 'How long an IMAP connection may stay without logging in.' },
  'imap.max_errors': { kind: 'int', default: 10, min: 1, description: 'Bad IMAP commands in a row before the connection is closed.' },
  'imap.max_connections': { kind: 'int', default: 2000, min: 1, description: 'Simultaneous IMAP connections over both ports.' },
  'imap.max_connections_per_ip': { kind: 'int', default: 50, min: 1, description: 'Simultaneous IMAP connections from one IP address.' },
  'imap.max_append_size': {
    kind: 'size',
    default: 0,
    description: 'Largest message APPEND accepts (advertised as APPENDLIMIT); 0 = the same as smtp.max_message_size.',
  },
  'dns.servers': {
    kind: 'string',
    default: '',
    description: 'DNS resolvers for MX, SPF, DKIM and DMARC lookups, comma-separated with optional ports (127.0.0.1:5353); empty = the system resolvers.',
  },
  'delivery.remote_port': { kind: 'int', default: 25, min: 1, description: 'Port of remote mail servers (MX hosts); change only for tests.' },
  'delivery.concurrency': { kind: 'int', default: 20, min: 1, description: 'Outbound deliveries (SMTP client sessions) running at once.' },
  'delivery.smarthost': {
    kind: 'string',
    default: '',
    description: 'Send outbound mail through this server (host or host:port) instead of to the MX hosts; empty = MX delivery.',
  },
  'delivery.smarthost_tls': {
    kind: 'string',
    default: 'starttls',
    choices: ['starttls', 'implicit', 'none'],
    description: 'TLS to the smarthost: STARTTLS (required), implicit TLS (port 465 style), or none.',
  },
  'delivery.smarthost_user': { kind: 'string', default: '', description: 'AUTH user name at the smarthost; empty = no AUTH.' },
  'delivery.smarthost_password': { kind: 'string', default: '', description: 'AUTH password at the smarthost.' },
  'delivery.smarthost_domains': {
    kind: 'string',
    default: '',
    description: 'Destination domains (comma-separated) that go through the smarthost; empty = every domain.',
  },
  'delivery.tls_required_domains': {
    kind: 'string',
    default: '',
    description: 'Destination domains (comma-separated) whose MX hosts must offer STARTTLS with a valid certificate; mail waits otherwise.',
  },
  'queue.retry_schedule': {
    kind: 'string',
    default: '5m,10m,20m,40m,1h',
    description: 'Waits between delivery attempts after a temporary failure; the last one repeats until queue.max_age.',
  },
  'queue.max_age': { kind: 'duration', default: 5 * 86_400_000, min: 60_000, description: 'How long a message may wait in the queue before it bounces.' },
  'queue.delay_warning': {
    kind: 'duration',
    default: 4 * 3_600_000,
    description: 'Tell the sender once when a message has waited this long (a delay DSN); 0 = never.',
  },
  'queue.lease_time': {
    kind: 'duration',
    default: 10 * 60_000,
    min: 1000,
    description: 'How long a node owns a message it is delivering; when a node dies, another takes its messages over after this. Longer than any delivery attempt.',
  },
  'submission.enforce_sender': {
    kind: 'bool',
    default: true,
    description: 'Authenticated users may use only their own addresses, aliases that reach them, and their send-as list as MAIL FROM (553 5.7.1 otherwise).',
  },
  'smtp.auth_checks': {
    kind: 'bool',
    default: true,
    description: 'Check SPF, DKIM, DMARC and ARC on mail arriving on port 25 and add an Authentication-Results header.',
  },
  'smtp.dmarc_reject': {
    kind: 'bool',
    default: true,
    description: 'Refuse (550 5.7.1) mail that fails DMARC with p=reject; off = deliver it to Junk.',
  },
  'collect.interval': {
    kind: 'int',
    default: 0,
    min: 0,
    description: 'Minutes between DomainPOP and MultiPOP collections (0 = only on demand, `fulmar collect run`).',
  },
  'collect.multipop.enabled': {
    kind: 'bool',
    default: false,
    description: 'Collect the MultiPOP mailboxes of accounts (each entry can also be switched off on its own).',
  },
  'collect.postmaster': {
    kind: 'string',
    default: '',
    description: 'Where collected mail without a local recipient and collector warnings go; empty = postmaster@ the source\'s domain.',
  },
  'auth.failure_delay': {
    kind: 'duration',
    default: 1000,
    description: 'Wait before answering a failed login, to slow down password guessing.',
  },
  'auth.allow_plaintext': {
    kind: 'bool',
    default: false,
    description: 'Allow password authentication on connections without TLS (SMTP, and later POP3/IMAP).',
  },
} as const satisfies Record<string, SettingDef>;

export type SettingKey = keyof typeof SETTINGS;
export type SettingValue<K extends SettingKey> = (typeof SETTINGS)[K]['default'] extends number
  ? number
  : (typeof SETTINGS)[K]['default'] extends boolean
    ? boolean
    : string;

export function isSettingKey(key: string): key is SettingKey {
  return Object.hasOwn(SETTINGS, key);
}

export type ParsedSetting = { ok: true; value: number | boolean | string } | { ok: false; error: string };

/** Parses a value given as text for a known key; errors say what is accepted. */
export function parseSettingValue(key: SettingKey, text: string): ParsedSetting {
  const def: SettingDef = SETTINGS[key];
  switch (def.kind) {
    case 'size': {
      const v = parseSize(text);
      return v === null ? { ok: false, error: `${key} takes a size such as 12345, 512KB, 10MB or 1GB (0 = no limit); got "${text}"` } : { ok: true, value: v };
    }
    case 'duration': {
      const v = parseDuration(text);
      if (v === null) return { ok: false, error: `${key} takes a duration such as 300, 90s, 5m or 2h; got "${text}"` };
      if (def.min !== undefined && v < def.min) return { ok: false, error: `${key} must be at least ${formatDuration(def.min)}; got "${text}"` };
      return { ok: true, value: v };
    }
    case 'int': {
      if (!/^\d+$/.test(text.trim())) return { ok: false, error: `${key} takes a whole number; got "${text}"` };
      const v = Number(text.trim());
      if (def.min !== undefined && v < def.min) return { ok: false, error: `${key} must be at least ${def.min}; got ${v}` };
      return { ok: true, value: v };
    }
    case 'bool': {
      const t = text.trim().toLowerCase();
      if (['true', 'yes', 'on', '1'].includes(t)) return { ok: true, value: true };
      if (['false', 'no', 'off', '0'].includes(t)) return { ok: true, value: false };
      return { ok: false, error: `${key} takes true or false; got "${text}"` };
    }
    case 'string': {
      const t = text.trim();
      if (def.choices && !def.choices.includes(t)) return { ok: false, error: `${key} takes one of ${def.choices.join(', ')}; got "${text}"` };
      return { ok: true, value: t };
    }
  }
}

/** Text form of a value, as `settings get/list` print it. */
export function formatSettingValue(key: SettingKey, value: number | boolean | string): string {
  const def: SettingDef = SETTINGS[key];
  if (def.kind === 'size' && typeof value === 'number') {
    // Exact, so that what `settings get` shows can be set again: 12345 stays 12345, not 12.1KB.
    const text = formatSize(value);
    return parseSize(text) === value ? text : String(value);
  }
  if (def.kind === 'duration' && typeof value === 'number') return formatDuration(value);
  return String(value);
}
