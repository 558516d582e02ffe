/**
 * SASL PLAIN and LOGIN decoders: client responses in, credentials or a typed failure out.
 *
 * Purpose: the wire format of the two password mechanisms, shared by SMTP AUTH, IMAP
 * AUTHENTICATE and POP3 AUTH. Checking the password is the directory's business, not this one's.
 *
 * Invariants: pure and total; nothing throws. A response of "*" cancels (rfc4954 4), and the
 * edge answers 501 (SMTP) or BAD (IMAP).
 *
 * Security: responses are untrusted and arrive before authentication. Base64 is checked
 * strictly before decoding, the encoded length is bounded before anything is decoded, every
 * field is bounded (`maxFieldBytes`, default 1024 octets: rfc4616 2 asks for at least 255),
 * and fields must be valid UTF-8 without NUL. Passwords are returned to the caller only; never
 * log a result.
 *
 * Standards: rfc4616 (PLAIN), rfc4954 4 (SMTP AUTH exchange, "*", "="), rfc4648 4 (base64),
 * draft-murchison-sasl-login-00 (LOGIN: "Username:" / "Password:" prompts).
 */

/** base64("Username:"), the first LOGIN challenge. */
export const LOGIN_USERNAME_CHALLENGE = 'VXNlcm5hbWU6';
/** base64("Password:"), the second LOGIN challenge. */
export const LOGIN_PASSWORD_CHALLENGE = 'UGFzc3dvcmQ6';
/** PLAIN without an initial response: the server sends an empty challenge ("334 "). */
export const PLAIN_CHALLENGE = '';

export const DEFAULT_MAX_FIELD_BYTES = 1024;

export interface SaslLimits {
  /** The longest authzid, authcid, user name or password accepted, in octets. */
  maxFieldBytes?: number;
}

export type SaslFailureReason =
  /** The client sent "*" (rfc4954 4). SMTP: 501 5.0.0. */
  | 'cancelled'
  /** Not base64 (rfc4954 4: 501 5.5.2). */
  | 'invalid-base64'
  /** Decoded, but not the mechanism's format (missing NUL, empty field, bad UTF-8). SMTP: 501 5.5.2. */
  | 'malformed'
  /** A field over the limit. SMTP: 501 5.5.2 (or 500 5.5.6 when the line itself was too long). */
  | 'too-long';

export interface SaslFailure {
  ok: false;
  reason: SaslFailureReason;
  /** A short text for the reply, e.g. "Invalid base64". Never contains the credentials. */
  error: string;
}

export type PlainResult = { ok: true; authzid: string; authcid: string; password: string } | SaslFailure;

export type ResponseResult = { ok: true; bytes: Buffer } | SaslFailure;

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function failure(reason: SaslFailureReason, error: string): SaslFailure {
  return { ok: false, reason, error };
}

function maxField(limits: SaslLimits | undefined): number {
  return Math.max(1, limits?.maxFieldBytes ?? DEFAULT_MAX_FIELD_BYTES);
}

/**
 * Decodes one client response line: "*" cancels, "=" is an empty initial response (rfc4954 4),
 * an empty line is an empty continuation response, anything else must be strict base64 of at
 * most `maxBytes` octets.
 */
export function decodeResponse(line: string, maxBytes: number): ResponseResult {
  if (line === '*') return failure('cancelled', 'Authentication cancelled');
  if (line === '' || line === '=') return { ok: true, bytes: Buffer.alloc(0) };
  // Bound before decoding: 4 characters carry 3 octets.
  if (line.length > Math.ceil(maxBytes / 3) * 4) return failure('too-long', 'Response too long');
  if (!BASE64.test(line)) return failure('invalid-base64', 'Invalid base64');
  const bytes = Buffer.from(line, 'base64');
  if (bytes.length > maxBytes) return failure('too-long', 'Response too long');
  return { ok: true, bytes };
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** Valid UTF-8 without NUL, or null. */
function utf8Field(bytes: Buffer): string | null {
  if (bytes.includes(0)) return null;
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * rfc4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd, each field valid UTF-8,
 * authcid and passwd not empty. An empty authzid is returned as '' (act as authcid).
 */
export function decodePlain(response: string, limits?: SaslLimits): PlainResult {
  const max = maxField(limits);
  const decoded = decodeResponse(response, max * 3 + 2);
  if (!decoded.ok) return decoded;
  const bytes = decoded.bytes;
  const nul1 = bytes.indexOf(0);
  const nul2 = nul1 === -1 ? -1 : bytes.indexOf(0, nul1 + 1);
  if (nul2 === -1 || bytes.indexOf(0, nul2 + 1) !== -1) {
    return failure('malformed', 'PLAIN needs authzid, authcid and password separated by NUL');
  }
  const parts = [bytes.subarray(0, nul1), bytes.subarray(nul1 + 1, nul2), bytes.subarray(nul2 + 1)] as const;
  if (parts.some((p) => p.length > max)) return failure('too-long', 'Credentials too long');
  const [authzid, authcid, password] = parts.map(utf8Field);
  if (authzid == null || authcid == null || password == null) return failure('malformed', 'Credentials are not valid UTF-8');
  if (authcid === '' || password === '') return failure('malformed', 'Empty user name or password');
  return { ok: true, authzid, authcid, password };
}

/**
 * One LOGIN response decoded on its own (the user name or the password), for sessions that
 * drive the two prompts themselves: strict base64 of valid UTF-8, not empty, without NUL.
 */
export function decodeLoginStep(response: string, limits?: SaslLimits): { ok: true; value: string } | SaslFailure {
  const decoded = decodeResponse(response, maxField(limits));
  if (!decoded.ok) return decoded;
  const value = utf8Field(decoded.bytes);
  if (value === null) return failure('malformed', 'Not valid UTF-8');
  if (value === '') return failure('malformed', 'Empty response');
  return { ok: true, value };
}

export type LoginStep =
  /** Send this base64 challenge ("334 " + challenge) and pass the reply to `respond`. */
  | { kind: 'challenge'; challenge: string }
  | { kind: 'done'; username: string; password: string }
  | { kind: 'failed'; reason: SaslFailureReason; error: string };

/**
 * The LOGIN exchange: prompts for the user name, then the password. `AUTH LOGIN <base64 user>`
 * (an initial response) skips the first prompt. Call `start` once, then `respond` with each
 * client line until the step is `done` or `failed`.
 */
export class LoginExchange {
  private readonly max: number;
  private username: string | null = null;
  private finished = false;

  constructor(limits?: SaslLimits) {
    this.max = maxField(limits);
  }

  start(initialResponse: string | null): LoginStep {
    if (initialResponse === null) return { kind: 'challenge', challenge: LOGIN_USERNAME_CHALLENGE };
    return this.respond(initialResponse);
  }

  respond(line: string): LoginStep {
    if (this.finished) return { kind: 'failed', reason: 'malformed', error: 'Exchange already finished' };
    const decoded = decodeResponse(line, this.max);
    if (!decoded.ok) return this.fail(decoded);
    const value = utf8Field(decoded.bytes);
    if (value === null || value === '') {
      return this.fail(failure('malformed', this.username === null ? 'Invalid user name' : 'Invalid password'));
    }
    if (this.username === null) {
      this.username = value;
      return { kind: 'challenge', challenge: LOGIN_PASSWORD_CHALLENGE };
    }
    this.finished = true;
    return { kind: 'done', username: this.username, password: value };
  }

  private fail(f: SaslFailure): LoginStep {
    this.finished = true;
    return { kind: 'failed', reason: f.reason, error: f.error };
  }
}
