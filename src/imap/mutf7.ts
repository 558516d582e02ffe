/**
 * Modified UTF-7, the encoding of IMAP mailbox names for clients that have not enabled UTF-8.
 *
 * Purpose: convert between the names Fulmar stores (UTF-8 strings) and the 7-bit form on the wire.
 *
 * Invariants
 * - `decodeMailboxName` accepts only the canonical encoding: `decode(x) !== null` implies
 *   `encodeMailboxName(decode(x)) === x`. So one stored name has exactly one wire form, and a
 *   client cannot create two wire names for the same mailbox (or smuggle printable ASCII, such
 *   as the hierarchy separator, inside a base64 run).
 * - Both functions are pure and never throw.
 *
 * Security: the input of `decodeMailboxName` is untrusted (any string from a command); it is
 * bounded by the command-size limit of the framer. Invalid input yields null, never an exception.
 *
 * Standards: rfc3501 5.1.3 (mailbox international naming convention), rfc9051 5.1.3 (the same,
 * for clients without UTF8=ACCEPT), rfc2152 (UTF-7, whose base64 variant this modifies).
 */

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,';
const B64_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_VALUE[B64.charCodeAt(i)] = i;

/** rfc3501 5.1.3: printable US-ASCII (0x20-0x7e) represents itself, except "&". */
function isDirect(code: number): boolean {
  return code >= 0x20 && code <= 0x7e;
}

function encodeRun(units: number[]): string {
  // rfc3501 5.1.3: UTF-16 in modified BASE64 ("," for "/", no "=" padding).
  let out = '';
  let bits = 0;
  let nbits = 0;
  for (const unit of units) {
    bits = (bits << 16) | unit;
    nbits += 16;
    while (nbits >= 6) {
      nbits -= 6;
      out += B64[(bits >> nbits) & 0x3f];
    }
    bits &= (1 << nbits) - 1;
  }
  if (nbits > 0) out += B64[(bits << (6 - nbits)) & 0x3f];
  return out;
}

/** Encode a mailbox name (any JS string) to modified UTF-7. */
export function encodeMailboxName(name: string): string {
  let out = '';
  let run: number[] = [];
  const flush = (): void => {
    if (run.length > 0) {
      out += `&${encodeRun(run)}-`;
      run = [];
    }
  };
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (isDirect(code)) {
      flush();
      // rfc3501 5.1.3: "&" is represented by "&-".
      out += code === 0x26 ? '&-' : name[i];
    } else {
      run.push(code);
    }
  }
  flush();
  return out;
}

/** Decode one base64 run (between "&" and "-") to UTF-16 code units, or null if malformed. */
function decodeRun(text: string): number[] | null {
  const units: number[] = [];
  let bits = 0;
  let nbits = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const v = code < 128 ? B64_VALUE[code]! : -1;
    if (v < 0) return null;
    bits = ((bits << 6) | v) & 0xffffff;
    nbits += 6;
    if (nbits >= 16) {
      nbits -= 16;
      units.push((bits >> nbits) & 0xffff);
    }
  }
  // Leftover bits must be padding: fewer than 6 and all zero.
  if (nbits >= 6 || (bits & ((1 << nbits) - 1)) !== 0) return null;
  return units;
}

function validUtf16(units: number[]): boolean {
  for (let i = 0; i < units.length; i++) {
    const u = units[i]!;
    if (u >= 0xd800 && u <= 0xdbff) {
      const next = units[i + 1];
      if (next === undefined || next < 0xdc00 || next > 0xdfff) return false;
      i++;
    } else if (u >= 0xdc00 && u <= 0xdfff) {
      return false;
    }
  }
  return true;
}

/**
 * Decode a modified UTF-7 mailbox name. Returns null when the name is not valid canonical
 * modified UTF-7: a character outside printable ASCII, an unterminated "&", bad base64, an odd
 * number of octets, a lone surrogate, printable ASCII inside base64, an empty run other than
 * "&-", or two adjacent runs (which the canonical form merges).
 */
export function decodeMailboxName(wire: string): string | null {
  let out = '';
  let i = 0;
  while (i < wire.length) {
    const code = wire.charCodeAt(i);
    if (!isDirect(code)) return null;
    if (code !== 0x26) {
      out += wire[i];
      i++;
      continue;
    }
    const end = wire.indexOf('-', i + 1);
    if (end < 0) return null;
    if (end === i + 1) {
      out += '&';
      i = end + 1;
      continue;
    }
    const units = decodeRun(wire.slice(i + 1, end));
    if (units === null || units.length === 0 || !validUtf16(units)) return null;
    // Canonical form: a run never holds printable ASCII (rfc3501 5.1.3 "MUST NOT be used to
    // represent any printing US-ASCII character which can represent itself").
    if (units.some(isDirect)) return null;
    for (let k = 0; k < units.length; k += 4096) out += String.fromCharCode(...units.slice(k, k + 4096));
    i = end + 1;
  }
  // Remaining non-canonical forms (adjacent runs, non-minimal padding) are caught by re-encoding.
  return encodeMailboxName(out) === wire ? out : null;
}
