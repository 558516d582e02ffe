/**
 * Content-Transfer-Encoding decoding, for IMAP BINARY[section] and BINARY.SIZE (rfc3516).
 *
 * Purpose: turn a part's stored body bytes (a range given by mime.ts offsets) into the octets
 * it encodes, so the IMAP layer can send them as literal8.
 *
 * Invariants
 * - Pure and total: nothing here throws; malformed input decodes leniently.
 * - An encoding we do not know gives null, never a guess (the IMAP layer answers
 *   NO [UNKNOWN-CTE], rfc3516 4.3).
 * - Output is never larger than the input.
 *
 * Security: the input is untrusted and may be large (tens of MB); decoding is one linear pass
 * with one output buffer the size of the input at most.
 *
 * Standards: rfc2045 6.2 (7bit, 8bit, binary: identity), rfc2045 6.7 (quoted-printable: `=XX`,
 * soft line breaks `=` CRLF, trailing whitespace on a line is padding; lenient with lower-case
 * hex, bare LF and stray `=`), rfc2045 6.8 (base64: characters outside the alphabet are
 * ignored, decoding stops at the pad), rfc3516 4.3 (UNKNOWN-CTE).
 */

/** Decodes `bytes` from `encoding` (case-insensitive, surrounding whitespace ignored). */
export function decodeTransferEncoding(bytes: Buffer, encoding: string): Buffer | null {
  switch (encoding.trim().toLowerCase()) {
    case '':
    case '7bit':
    case '8bit':
    case 'binary':
      return bytes;
    case 'base64':
      return decodeBase64(bytes);
    case 'quoted-printable':
      return decodeQuotedPrintable(bytes);
    default:
      return null;
  }
}

const B64 = new Int16Array(256).fill(-1);
for (let i = 0; i < 64; i++) {
  B64['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i;
}
const EQ = 0x3d;

/**
 * rfc2045 6.8 base64, leniently: bytes outside the alphabet (line ends, spaces, garbage) are
 * skipped; a "=" ends the data; a trailing group of 2 or 3 characters gives its 1 or 2 bytes,
 * a lone trailing character is dropped.
 */
export function decodeBase64(bytes: Buffer): Buffer {
  // Node's decoder skips whitespace and bytes outside the alphabet and stops at the pad, as
  // below, but reads "-" and "_" as base64url digits: use it only when neither occurs.
  if (bytes.indexOf(0x2d) === -1 && bytes.indexOf(0x5f) === -1) return Buffer.from(bytes.toString('latin1'), 'base64');
  return decodeBase64Slow(bytes);
}

/** The same decoding in plain code, for input holding "-" or "_" (which it skips). */
export function decodeBase64Slow(bytes: Buffer): Buffer {
  const out = Buffer.allocUnsafe(Math.floor((bytes.length * 3) / 4) + 3);
  let o = 0;
  let acc = 0;
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c === EQ) break;
    const v = B64[c]!;
    if (v < 0) continue;
    acc = (acc << 6) | v;
    if (++n === 4) {
      out[o++] = (acc >> 16) & 0xff;
      out[o++] = (acc >> 8) & 0xff;
      out[o++] = acc & 0xff;
      acc = 0;
      n = 0;
    }
  }
  if (n === 2) out[o++] = (acc >> 4) & 0xff;
  else if (n === 3) {
    out[o++] = (acc >> 10) & 0xff;
    out[o++] = (acc >> 2) & 0xff;
  }
  return out.subarray(0, o);
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57; // lower case: rfc2045 6.7 (1) says accept it
  return -1;
}

function isSpaceOrTab(c: number | undefined): boolean {
  return c === 0x20 || c === 0x09;
}

/**
 * rfc2045 6.7 quoted-printable: `=XX` is one octet, `=` before a line end (CRLF or bare LF,
 * possibly after padding whitespace) is a soft break and disappears, whitespace before a hard
 * line end is padding and is dropped, line ends are kept as written. A `=` not followed by
 * two hex digits or a line end is kept as it is.
 */
export function decodeQuotedPrintable(bytes: Buffer): Buffer {
  const out = Buffer.allocUnsafe(bytes.length);
  let o = 0;
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const c = bytes[i]!;
    if (c === EQ) {
      const h1 = i + 1 < n ? hexValue(bytes[i + 1]!) : -1;
      const h2 = i + 2 < n ? hexValue(bytes[i + 2]!) : -1;
      if (h1 >= 0 && h2 >= 0) {
        out[o++] = (h1 << 4) | h2;
        i += 3;
        continue;
      }
      // Soft line break: "=" [transport padding] (CRLF / LF / end of input).
      let j = i + 1;
      while (j < n && isSpaceOrTab(bytes[j])) j++;
      if (j >= n) {
        i = n;
        continue;
      }
      if (bytes[j] === 0x0a) {
        i = j + 1;
        continue;
      }
      if (bytes[j] === 0x0d && bytes[j + 1] === 0x0a) {
        i = j + 2;
        continue;
      }
      out[o++] = c; // a stray "=": keep it (rfc2045 6.7 note 2 suggests so)
      i++;
      continue;
    }
    if (isSpaceOrTab(c)) {
      // Whitespace at the end of a line is padding (rfc2045 6.7 (3)); elsewhere it is kept.
      let j = i;
      while (j < n && isSpaceOrTab(bytes[j])) j++;
      const atLineEnd = j >= n || bytes[j] === 0x0a || (bytes[j] === 0x0d && bytes[j + 1] === 0x0a);
      if (!atLineEnd) {
        bytes.copy(out, o, i, j);
        o += j - i;
      }
      i = j;
      continue;
    }
    out[o++] = c;
    i++;
  }
  return out.subarray(0, o);
}
