import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LineReader, type LineResult } from '../../src/net/line-reader.js';

type Seen = { line: string; crlf: boolean } | 'too-long';

function show(r: LineResult): Seen {
  return r.tooLong ? 'too-long' : { line: r.line.toString('latin1'), crlf: r.crlf };
}

/** Feeds the chunks, pulling every line after each push; returns the lines and what is left. */
function run(chunks: Buffer[], max: number): { lines: Seen[]; rest: string; maxBuffered: number } {
  const reader = new LineReader({ maxLineLength: max });
  const lines: Seen[] = [];
  let maxBuffered = 0;
  for (const c of chunks) {
    reader.push(c);
    maxBuffered = Math.max(maxBuffered, reader.bufferedBytes - c.length);
    for (let r = reader.next(); r !== null; r = reader.next()) lines.push(show(r));
    maxBuffered = Math.max(maxBuffered, reader.bufferedBytes);
  }
  return { lines, rest: reader.takeRemaining().toString('latin1'), maxBuffered };
}

const fixtures: Array<{ name: string; input: string; max: number; lines: Seen[]; rest: string }> = [
  { name: 'one CRLF line', input: 'EHLO x\r\n', max: 20, lines: [{ line: 'EHLO x', crlf: true }], rest: '' },
  { name: 'bare LF', input: 'NOOP\n', max: 20, lines: [{ line: 'NOOP', crlf: false }], rest: '' },
  {
    name: 'pipelined with partial tail',
    input: 'MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubj',
    max: 40,
    lines: [
      { line: 'MAIL FROM:<a@b>', crlf: true },
      { line: 'RCPT TO:<c@d>', crlf: true },
      { line: 'DATA', crlf: true },
    ],
    rest: 'Subj',
  },
  { name: 'empty lines', input: '\r\n\n\r\n', max: 5, lines: [{ line: '', crlf: true }, { line: '', crlf: false }, { line: '', crlf: true }], rest: '' },
  { name: 'CR inside a line', input: 'a\rb\r\n', max: 5, lines: [{ line: 'a\rb', crlf: true }], rest: '' },
  { name: 'exactly the limit', input: '12345\r\n', max: 5, lines: [{ line: '12345', crlf: true }], rest: '' },
  { name: 'one over the limit', input: '123456\r\nok\r\n', max: 5, lines: ['too-long', { line: 'ok', crlf: true }], rest: '' },
  {
    name: 'long line drained, then more',
    input: `${'x'.repeat(100)}\r\nQUIT\r\n`,
    max: 10,
    lines: ['too-long', { line: 'QUIT', crlf: true }],
    rest: '',
  },
  { name: 'long line with bare LF', input: `${'y'.repeat(30)}\nA\n`, max: 10, lines: ['too-long', { line: 'A', crlf: false }], rest: '' },
];

describe('LineReader', () => {
  for (const f of fixtures) {
    it(`${f.name}: whole and split at every offset`, () => {
      const input = Buffer.from(f.input, 'latin1');
      const whole = run([input], f.max);
      assert.deepEqual(whole.lines, f.lines);
      assert.equal(whole.rest, f.rest);
      for (let i = 0; i <= input.length; i++) {
        const split = run([input.subarray(0, i), input.subarray(i)], f.max);
        assert.deepEqual(split.lines, f.lines, `split at ${i}`);
        assert.equal(split.rest, f.rest, `split at ${i}`);
      }
      const bytewise = run([...input].map((b) => Buffer.from([b])), f.max);
      assert.deepEqual(bytewise.lines, f.lines, 'byte by byte');
    });
  }

  it('reports a too-long line once, and keeps memory bounded while draining', () => {
    const reader = new LineReader({ maxLineLength: 512 });
    const junk = Buffer.alloc(64 * 1024, 0x41);
    let tooLong = 0;
    for (let i = 0; i < 200; i++) {
      reader.push(junk);
      for (let r = reader.next(); r !== null; r = reader.next()) if (r.tooLong) tooLong++;
      assert.ok(reader.bufferedBytes <= 513, `buffered ${reader.bufferedBytes}`);
    }
    assert.equal(tooLong, 1);
    assert.equal(reader.isDraining, true);
    reader.push(Buffer.from('AAAA\r\nRSET\r\n'));
    const first = reader.next();
    assert.deepEqual(first && show(first), { line: 'RSET', crlf: true });
    assert.equal(reader.next(), null);
    assert.equal(reader.isDraining, false);
  });

  it('drains a long line without buffering the following chunks', () => {
    const reader = new LineReader({ maxLineLength: 8 });
    reader.push(Buffer.from('0123456789'));
    assert.deepEqual(reader.next(), { tooLong: true });
    reader.push(Buffer.alloc(100000, 0x42));
    assert.equal(reader.bufferedBytes, 0);
    reader.push(Buffer.from('tail\nnext\n'));
    const r = reader.next();
    assert.deepEqual(r && show(r), { line: 'next', crlf: false });
  });

  it('does not report a line of exactly the limit whose CR arrived without its LF', () => {
    const reader = new LineReader({ maxLineLength: 4 });
    reader.push(Buffer.from('abcd\r'));
    assert.equal(reader.next(), null);
    reader.push(Buffer.from('\n'));
    const r = reader.next();
    assert.deepEqual(r && show(r), { line: 'abcd', crlf: true });
  });

  it('takeRemaining hands over pipelined bytes (data mode, STARTTLS discard)', () => {
    const reader = new LineReader({ maxLineLength: 100 });
    reader.push(Buffer.from('STARTTLS\r\nMAIL FROM:<evil@x>\r\n'));
    const r = reader.next();
    assert.deepEqual(r && show(r), { line: 'STARTTLS', crlf: true });
    assert.equal(reader.bufferedBytes, 20);
    assert.equal(reader.takeRemaining().toString(), 'MAIL FROM:<evil@x>\r\n');
    assert.equal(reader.bufferedBytes, 0);
    assert.equal(reader.next(), null);
  });

  it('returned lines stay valid after more pushes', () => {
    const reader = new LineReader({ maxLineLength: 100 });
    reader.push(Buffer.from('one\r\ntw'));
    const one = reader.next();
    reader.push(Buffer.from('o\r\n'));
    const two = reader.next();
    assert.deepEqual(one && show(one), { line: 'one', crlf: true });
    assert.deepEqual(two && show(two), { line: 'two', crlf: true });
  });

  it('handles many small chunks without rescanning (linear time)', () => {
    const reader = new LineReader({ maxLineLength: 100000 });
    const start = process.hrtime.bigint();
    for (let i = 0; i < 50000; i++) {
      reader.push(Buffer.from('x'));
      assert.equal(reader.next(), null);
    }
    reader.push(Buffer.from('\r\n'));
    const r = reader.next();
    assert.ok(r && !r.tooLong && r.line.length === 50000);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    assert.ok(ms < 2000, `took ${ms} ms`);
  });
});
