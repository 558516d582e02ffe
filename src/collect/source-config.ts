/**
 * The settings of one remote POP3 mailbox the collectors read (DomainPOP and MultiPOP), as the
 * store keeps them (CollectSource.config, JSON), with their defaults and checks.
 */
import { z } from 'zod';

export const ENVELOPE_HEADERS = ['X-Rcpt-To', 'X-MDRcpt-To', 'Delivered-To', 'X-Original-To', 'X-Envelope-To'] as const;
/** MDaemon's default header list for header mode. */
export const DEFAULT_HEADERS = ['To', 'Cc', 'X-Rcpt-To', 'X-MDRcpt-To', 'X-Delivered-To'];

const headerName = z.string().regex(/^[\x21-\x39\x3b-\x7e]{1,76}$/, 'not a header field name');

export const remoteMailboxSchema = z.object({
  host: z.string().min(1).max(255).regex(/^[^\s/]+$/, 'not a host name'),
  port: z.number().int().min(1).max(65535),
  tls: z.enum(['none', 'starttls', 'implicit']),
  /** Accept a certificate that does not verify (self-signed ISP boxes). */
  insecure: z.boolean().default(false),
  user: z.string().min(1).max(255),
  password: z.string().max(1024),
  apop: z.boolean().default(false),
  leaveOnServer: z.boolean().default(false),
  /** With leaveOnServer: delete a collected message once it is this many days old; 0 = never. */
  deleteAfterDays: z.number().int().min(0).default(0),
  /** Messages of at least this many bytes are not downloaded; 0 = no limit. */
  maxDownloadSize: z.number().int().min(0).default(0),
  deleteLarge: z.boolean().default(false),
  warnPostmaster: z.boolean().default(false),
  smallFirst: z.boolean().default(false),
});

export const domainPopSchema = remoteMailboxSchema.extend({
  domain: z.string().min(1).max(255),
  mode: z.enum(['envelope', 'headers']),
  envelopeHeader: headerName.nullable().default(null),
  /** Which occurrence of the envelope header, counted from the top, 1-based. */
  envelopeOccurrence: z.number().int().min(1).default(1),
  stripPrefix: z.string().max(255).nullable().default(null),
  headers: z.array(headerName).min(1).default(DEFAULT_HEADERS),
  received: z.boolean().default(false),
  skipReceived: z.number().int().min(0).default(0),
  stopAtLocal: z.boolean().default(false),
  subjectParens: z.boolean().default(false),
  nameMatching: z.boolean().default(false),
  foreign: z.enum(['ignore', 'postmaster', 'relay']).default('ignore'),
  unknown: z.enum(['postmaster', 'drop']).default('postmaster'),
  dedupe: z.enum(['Message-ID', 'Date', 'off']).default('Message-ID'),
  /** A local address (`user@domain` or `user@domain/Folder`) or an absolute folder path. */
  archive: z.string().max(1024).nullable().default(null),
});

export type RemoteMailboxConfig = z.infer<typeof remoteMailboxSchema>;
export type DomainPopConfig = z.infer<typeof domainPopSchema>;

export function parseDomainPopConfig(json: string): DomainPopConfig {
  return domainPopSchema.parse(JSON.parse(json));
}

export function parseRemoteMailboxConfig(json: string): RemoteMailboxConfig {
  return remoteMailboxSchema.parse(JSON.parse(json));
}

/** The standard port of a TLS mode: 995 for implicit TLS, else 110. */
export function defaultPort(tls: RemoteMailboxConfig['tls']): number {
  return tls === 'implicit' ? 995 : 110;
}

/** One line describing a source for `list`, without its password. */
export function describeRemote(c: RemoteMailboxConfig): string {
  const parts = [`${c.user}@${c.host}:${c.port}`, `tls=${c.tls}${c.insecure ? ' (unverified)' : ''}`];
  if (c.apop) parts.push('apop');
  parts.push(c.leaveOnServer ? `leave-on-server${c.deleteAfterDays > 0 ? ` ${c.deleteAfterDays}d` : ''}` : 'delete-after-download');
  if (c.maxDownloadSize > 0) {
    parts.push(`max ${c.maxDownloadSize} bytes${c.deleteLarge ? ' (delete larger)' : ''}${c.warnPostmaster ? ' (warn postmaster)' : ''}`);
  }
  if (c.smallFirst) parts.push('small-first');
  return parts.join(', ');
}
