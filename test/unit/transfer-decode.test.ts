import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { decodeBase64, decodeBase64Slow, decodeQuotedPrintable, decodeTransferEncoding } from '../../src/message/transfer-decode.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

test('identity encodings return the bytes as they are; unknown ones give null (UNKNOWN-CTE)', () => {
  const raw = b('a\r\n\xff\x00b');
  for (const enc of ['7bit', '8BIT', ' binary ', '']) assert.equal(decodeTransferEncoding(raw, enc), raw);
  assert.equal(decodeTransferEncoding(raw, 'x-uuencode'), null);
  assert.equal(decodeTransferEncoding(raw, 'base-64'), null);
});

test('base64: line breaks, spaces and garbage are skipped; the pad ends the data', () => {
  assert.equal(decodeTransferEncoding(b('SGVs\r\nbG8s IHdv\tcmxk!!\r\n'), 'BASE64')!.toString(), 'Hello, world');
  assert.equal(decodeBase64(b('SGVsbG8=\r\nIGlnbm9yZWQ=')).toString(), 'Hello');
  assert.equal(decodeBase64(b('SGVsbG8')).toString(), 'Hello'); // missing pad
  assert.equal(decodeBase64(b('SGk')).toString(), 'Hi');
  assert.equal(decodeBase64(b('S')).length, 0); // a lone character carries no whole byte
  assert.equal(decodeBase64(b('')).length, 0);
  assert.equal(decodeBase64(b('\x00\xff*#')).length, 0);
  assert.equal(decodeBase64(b('SGVs*bG8=')).toString(), 'Hello');
  assert.equal(decodeBase64(b('SGVsbG8h-_')).toString(), 'Hello!'); // not base64url digits
});

test('base64: the native fast path and the plain decoder agree on odd input', () => {
  const cases = ['SGVs\r\nbG8s IHdv\tcmxk!!\r\n', 'SGVsbG8=\r\nIGlnbm9yZWQ=', 'SGVsbG8', 'SGk', 'S', '\x00\xff*#', 'SG=VsbG8', 'SGVsbG8==x', 'Zm9v\x80YmFy', ''];
  for (const text of cases) assert.deepEqual(decodeBase64(b(text)), decodeBase64Slow(b(text)), JSON.stringify(text));
  for (let i = 0; i < 200; i++) {
    const junk = randomBytes(1 + (i % 50));
    const clean = Buffer.from(junk.filter((x) => x !== 0x2d && x !== 0x5f));
    assert.deepEqual(decodeBase64(clean), decodeBase64Slow(clean));
  }
});

test('base64: random data wrapped at 76 columns round-trips', () => {
  for (const size of [0, 1, 2, 3, 57, 1000, 65537]) {
    const data = randomBytes(size);
    const wrapped = data.toString('base64').replace(/.{76}/g, '$&\r\n');
    assert.deepEqual(decodeBase64(b(wrapped)), data);
  }
});

test('quoted-printable: =XX, soft breaks (CRLF and bare LF), padding before line ends', () => {
  assert.equal(decodeQuotedPrintable(b('Gr=C3=BC=C3=9Fe')).toString('utf8'), 'Grüße');
  assert.equal(decodeQuotedPrintable(b('abc=\r\ndef=\nghi')).toString(), 'abcdefghi');
  assert.equal(decodeQuotedPrintable(b('soft with padding=  \r\nnext')).toString(), 'soft with paddingnext');
  assert.equal(decodeQuotedPrintable(b('trailing   \r\nkept  inside\r\n')).toString(), 'trailing\r\nkept  inside\r\n');
  assert.equal(decodeQuotedPrintable(b('lower =c3=a9')).toString('utf8'), 'lower é');
  assert.equal(decodeQuotedPrintable(b('a = b =ZZ =4')).toString(), 'a = b =ZZ =4');
  assert.equal(decodeQuotedPrintable(b('ends with =')).toString(), 'ends with ');
  assert.equal(decodeQuotedPrintable(b('x=3D1\nline\n')).toString(), 'x=1\nline\n');
  assert.equal(decodeTransferEncoding(b('=E2=82=AC'), 'Quoted-Printable')!.toString('utf8'), '€');
});

test('quoted-printable: every byte value round-trips through a simple encoder', () => {
  const data = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  let enc = '';
  for (const byte of data) enc += `=${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  const wrapped = enc.replace(/.{72}/g, '$&=\r\n');
  assert.deepEqual(decodeQuotedPrintable(b(wrapped)), data);
});
