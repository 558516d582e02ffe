/**
 * Test helper: parses IMAP response data (NIL, numbers, quoted strings, literals, lists) into
 * plain values, so answers can be compared whatever quoting each server chose.
 */
export type Sexp = null | string | number | Sexp[];

export function parseSexp(text: string): Sexp {
  const buf = Buffer.from(text, 'utf8');
  let i = 0;
  const skip = (): void => {
    while (i < buf.length && buf[i] === 0x20) i++;
  };
  const value = (): Sexp => {
    skip();
    const c = buf[i];
    if (c === 0x28) {
      i++;
      const list: Sexp[] = [];
      for (;;) {
        skip();
        if (i >= buf.length) throw new Error('unterminated list');
        if (buf[i] === 0x29) {
          i++;
          return list;
        }
        list.push(value());
      }
    }
    if (c === 0x22) {
      const bytes: number[] = [];
      i++;
      while (i < buf.length && buf[i] !== 0x22) {
        if (buf[i] === 0x5c) i++;
        bytes.push(buf[i]!);
        i++;
      }
      i++;
      return Buffer.from(bytes).toString('utf8');
    }
    if (c === 0x7b) {
      const close = buf.indexOf(0x7d, i);
      const n = Number(buf.toString('latin1', i + 1, close));
      if (buf[close + 1] !== 0x0d || buf[close + 2] !== 0x0a) throw new Error('bad literal');
      const start = close + 3;
      i = start + n;
      return buf.toString('utf8', start, start + n);
    }
    let j = i;
    while (j < buf.length && buf[j] !== 0x20 && buf[j] !== 0x28 && buf[j] !== 0x29) j++;
    const atom = buf.toString('latin1', i, j);
    i = j;
    if (atom === 'NIL') return null;
    if (/^\d+$/.test(atom)) return Number(atom);
    throw new Error(`unexpected atom ${JSON.stringify(atom)} at ${i}`);
  };
  const result = value();
  skip();
  if (i !== buf.length) throw new Error(`trailing data at ${i}: ${text.slice(i, i + 20)}`);
  return result;
}
