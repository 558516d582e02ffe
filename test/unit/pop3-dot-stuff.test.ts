import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DotStuffer } from '../../src/pop3/dot-stuff.js';

/**
 * What the session sends for RETR/TOP after the status line: the stuffer's output for each chunk,
 * then ".\r\n" when the TOP limit stopped it (the last line already ended), else `end()`.
 */
function run(chunks: Buffer[], bodyLines?: number): string {
  const s = new DotStuffer(bodyLines === undefined ? {} : { bodyLines });
  const out: Buffer[] = [];
  for (const c of chunks) {
    out.push(s.push(c));
    if (s.done) break;
  }
  out.push(s.done ? Buffer.from('.\r\n') : s.end());
  return Buffer.concat(out).toString('latin1');
}

const whole = (text: string, bodyLines?: number): string => run([Buffer.from(text, 'latin1')], bodyLines);

/** The same input cut at every byte offset (two chunks), and fed one byte at a time. */
function splits(text: string, bodyLines?: number): string[] {
  const b = Buffer.from(text, 'latin1');
  const out: string[] = [];
  for (let i = 0; i <= b.length; i++) out.push(run([b.subarray(0, i), b.subarray(i)], bodyLines));
  out.push(run([...b].map((x) => Buffer.from([x])), bodyLines));
  return out;
}

/**
 * An independent model of RFC 1939 3 and 7: split into lines at CRLF, bare CR or bare LF, end
 * every line with CRLF, stuff lines that start with ".", keep the header, its empty line and
 * `bodyLines` lines of the body for TOP, and terminate with ".\r\n".
 */
function model(text: string, bodyLines?: number): string {
  const lines = text.split(/\r\n|\r|\n/);
  if (lines[lines.length - 1] === '') lines.pop(); // text ended with a line end (or was empty)
  let kept = lines;
  if (bodyLines !== undefined) {
    const blank = lines.indexOf('');
    if (blank >= 0) kept = lines.slice(0, blank + 1 + bodyLines);
  }
  return kept.map((l) => `${l.startsWith('.') ? '.' : ''}${l}\r\n`).join('') + '.\r\n';
}

/** Fixtures, each checked whole, split at every offset and byte by byte, against the model. */
const FIXTURES: Array<[string, string]> = [
  ['empty message', ''],
  ['one line', 'Subject: hi\r\n'],
  ['header and body', 'Subject: hi\r\nFrom: a@b\r\n\r\nline 1\r\nline 2\r\nline 3\r\n'],
  ['dots', '.\r\n..\r\n...x\r\n.leading\r\nmid.dle\r\n \r\n.'],
  ['a lone dot line in the body', 'A: b\r\n\r\nbefore\r\n.\r\nafter\r\n'],
  ['the body starts with a dot', 'A: b\r\n\r\n.hidden\r\n'],
  ['bare LF', 'A: b\n\nbody 1\nbody 2\n'],
  ['bare CR', 'A: b\r\rbody 1\rbody 2\r'],
  ['mixed line ends', 'A: b\r\nC: d\n\r\n.x\r.y\n\r\r\n.'],
  ['CR CR LF', 'A: b\r\r\nbody\r\n'],
  ['no final line end', 'A: b\r\n\r\nlast line without end'],
  ['ends in a bare CR', 'A: b\r\n\r\nbody\r'],
  ['no body (header only, no blank line)', 'A: b\r\nC: d\r\n'],
  ['header-only message ending in the blank line', 'A: b\r\nC: d\r\n\r\n'],
  ['no header (starts with the blank line)', '\r\nbody 1\r\nbody 2\r\n'],
  ['empty body lines', 'A: b\r\n\r\n\r\n\r\nx\r\n\r\n'],
  ['folded header', 'Subject: a\r\n b\r\n\tc\r\n\r\nbody\r\n'],
  ['8-bit bytes', 'S: \xe9\xff\r\n\r\n\xc3\xa9t\xe9\r\n.\xff\r\n'],
];

describe('DotStuffer: RETR (whole message)', () => {
  it('exact output for the basic cases', () => {
    assert.equal(whole(''), '.\r\n');
    assert.equal(whole('a\r\nb\r\n'), 'a\r\nb\r\n.\r\n');
    assert.equal(whole('.\r\n'), '..\r\n.\r\n');
    assert.equal(whole('..\r\n'), '...\r\n.\r\n');
    assert.equal(whole('.x\r\nmid.dle\r\n. \r\n'), '..x\r\nmid.dle\r\n.. \r\n.\r\n');
    assert.equal(whole('x\r\n.'), 'x\r\n..\r\n.\r\n', 'a final "." without line end is stuffed and ended');
    assert.equal(whole('no end'), 'no end\r\n.\r\n');
  });

  it('bare LF and bare CR become CRLF', () => {
    assert.equal(whole('a\nb\n'), 'a\r\nb\r\n.\r\n');
    assert.equal(whole('a\rb\r'), 'a\r\nb\r\n.\r\n');
    assert.equal(whole('a\r\r\nb'), 'a\r\n\r\nb\r\n.\r\n');
    assert.equal(whole('a\n\r\n\rb'), 'a\r\n\r\n\r\nb\r\n.\r\n');
    assert.equal(whole('\n.\r.\n'), '\r\n..\r\n..\r\n.\r\n', 'stuffing after every kind of line end');
  });

  it('matches the model for every fixture', () => {
    for (const [name, text] of FIXTURES) assert.equal(whole(text), model(text), name);
  });

  it('same output split at every byte offset and byte by byte', () => {
    for (const [name, text] of FIXTURES) {
      const expected = model(text);
      splits(text).forEach((got, i) => assert.equal(got, expected, `${name}, split ${i}`));
    }
  });

  it('a pending CR at a chunk end is resolved by the next chunk', () => {
    const s = new DotStuffer();
    assert.equal(s.push(Buffer.from('a\r')).toString(), 'a');
    assert.equal(s.push(Buffer.from('\n.b')).toString(), '\r\n..b');
    assert.equal(s.push(Buffer.from('\r')).toString(), '');
    assert.equal(s.push(Buffer.from('c')).toString(), '\r\nc');
    assert.equal(s.end().toString(), '\r\n.\r\n');
    assert.equal(s.done, true);
    assert.equal(s.push(Buffer.from('more')).length, 0, 'nothing after end');
  });

  it('passes large chunks through without splitting lines that need no change', () => {
    const line = `${'x'.repeat(998)}\r\n`;
    const big = Buffer.from(line.repeat(2000));
    const s = new DotStuffer();
    const out = s.push(big);
    assert.ok(out.equals(big));
  });
});

describe('DotStuffer: TOP line limits', () => {
  const msg = 'Subject: t\r\nFrom: a@b\r\n\r\nb1\r\n.b2\r\nb3\r\n';

  it('0 lines: the header and the blank line', () => {
    assert.equal(whole(msg, 0), 'Subject: t\r\nFrom: a@b\r\n\r\n.\r\n');
  });

  it('n lines of the body, stuffed', () => {
    assert.equal(whole(msg, 1), 'Subject: t\r\nFrom: a@b\r\n\r\nb1\r\n.\r\n');
    assert.equal(whole(msg, 2), 'Subject: t\r\nFrom: a@b\r\n\r\nb1\r\n..b2\r\n.\r\n');
    assert.equal(whole(msg, 3), `${msg.replace('.b2', '..b2')}.\r\n`);
  });

  it('more lines than the body has: the whole message', () => {
    assert.equal(whole(msg, 4), whole(msg));
    assert.equal(whole(msg, 2147483647), whole(msg));
  });

  it('a message without body (no blank line): the whole header, for any n', () => {
    const head = 'A: b\r\nC: d\r\n';
    assert.equal(whole(head, 0), 'A: b\r\nC: d\r\n.\r\n');
    assert.equal(whole(head, 5), 'A: b\r\nC: d\r\n.\r\n');
    assert.equal(whole('A: b', 0), 'A: b\r\n.\r\n', 'unterminated last header line');
  });

  it('a header-only message ending in the blank line', () => {
    assert.equal(whole('A: b\r\n\r\n', 0), 'A: b\r\n\r\n.\r\n');
    assert.equal(whole('A: b\r\n\r\n', 3), 'A: b\r\n\r\n.\r\n');
  });

  it('a message that starts with the blank line (no header)', () => {
    assert.equal(whole('\r\nb1\r\nb2\r\n', 0), '\r\n.\r\n');
    assert.equal(whole('\r\nb1\r\nb2\r\n', 1), '\r\nb1\r\n.\r\n');
  });

  it('bare LF and CR line ends count as lines, and the blank line may be bare', () => {
    assert.equal(whole('A: b\n\nb1\nb2\n', 1), 'A: b\r\n\r\nb1\r\n.\r\n');
    assert.equal(whole('A: b\r\rb1\rb2\r', 1), 'A: b\r\n\r\nb1\r\n.\r\n');
    assert.equal(whole('A: b\r\n\nb1\r\nb2', 2), 'A: b\r\n\r\nb1\r\nb2\r\n.\r\n');
  });

  it('the last counted line without a line end is ended', () => {
    assert.equal(whole('A: b\r\n\r\nb1', 1), 'A: b\r\n\r\nb1\r\n.\r\n');
    assert.equal(whole('A: b\r\n\r\nb1', 5), 'A: b\r\n\r\nb1\r\n.\r\n');
  });

  it('done is set when the limit is reached, and later input is ignored', () => {
    const s = new DotStuffer({ bodyLines: 1 });
    assert.equal(s.push(Buffer.from('A: b\r\n\r\nb1\r\nb2\r\n')).toString(), 'A: b\r\n\r\nb1\r\n');
    assert.equal(s.done, true);
    assert.equal(s.push(Buffer.from('b3\r\n')).length, 0);
  });

  it('matches the model for every fixture and limit, whole and split at every byte offset', () => {
    for (const [name, text] of FIXTURES) {
      for (const n of [0, 1, 2, 3, 100]) {
        const expected = model(text, n);
        assert.equal(whole(text, n), expected, `${name}, TOP ${n}`);
        splits(text, n).forEach((got, i) => assert.equal(got, expected, `${name}, TOP ${n}, split ${i}`));
      }
    }
  });
});

describe('DotStuffer: random inputs against the model', () => {
  it('1,000 random messages over the alphabet {".", CR, LF, "a", ":"}, random chunking', () => {
    let seed = 0x2545f491;
    const rand = (n: number): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const alphabet = ['.', '\r', '\n', 'a', ':'];
    for (let iter = 0; iter < 1000; iter++) {
      const len = rand(40);
      let text = '';
      for (let i = 0; i < len; i++) text += alphabet[rand(alphabet.length)];
      const b = Buffer.from(text, 'latin1');
      const chunks: Buffer[] = [];
      for (let pos = 0; pos < b.length; ) {
        const size = 1 + rand(6);
        chunks.push(b.subarray(pos, pos + size));
        pos += size;
      }
      const n = rand(2) === 0 ? undefined : rand(4);
      assert.equal(run(chunks, n), model(text, n), `${JSON.stringify(text)} TOP ${n}`);
    }
  });
});
