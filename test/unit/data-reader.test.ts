import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BdatReader, DataReader, type BareNewlinePolicy, type DataStats } from '../../src/smtp/server/data-reader.js';

interface Outcome {
  body: string;
  done: boolean;
  rest: string;
  stats: DataStats;
}

function feed(chunks: Buffer[], policy: BareNewlinePolicy, maxLineLength = 998, precededByCrlf = true): Outcome {
  const reader = new DataReader({ maxLineLength, bareNewline: policy, precededByCrlf });
  const body: Buffer[] = [];
  let rest: Buffer[] = [];
  let done = false;
  for (const c of chunks) {
    const step = reader.push(c);
    body.push(step.body);
    if (step.done) {
      if (!done) rest.push(step.rest);
      else rest = [...rest, step.rest];
      done = true;
    }
  }
  return { body: Buffer.concat(body).toString('latin1'), done, rest: Buffer.concat(rest).toString('latin1'), stats: reader.stats };
}

/** A byte-at-a-time model of the rules, to check the fast reader against. */
function reference(input: string, policy: BareNewlinePolicy, maxLineLength = 998, precededByCrlf = true): Outcome {
  const normalize = policy === 'normalize';
  const stats: DataStats = { bodyBytes: 0, inputBytes: 0, bareNewline: false, bareLfCount: 0, bareCrCount: 0, longLine: false, longestLine: 0 };
  let body = '';
  let prevCrlf = precededByCrlf;
  let pos = 0;
  const emitContent = (content: string): void => {
    for (const ch of content) {
      if (ch === '\r') {
        stats.bareCrCount++;
        body += normalize ? '\r\n' : '\r';
      } else body += ch;
    }
  };
  const measure = (len: number): void => {
    stats.longestLine = Math.max(stats.longestLine, len);
    if (len > maxLineLength) stats.longLine = true;
  };
  for (;;) {
    const lf = input.indexOf('\n', pos);
    if (lf === -1) {
      // A partial line: held bytes are "." / ".\r" at the start, or a final CR.
      let partial = input.slice(pos);
      if (partial === '.' || partial === '.\r') break;
      if (partial.startsWith('.')) partial = partial.slice(1);
      if (partial.endsWith('\r')) partial = partial.slice(0, -1);
      emitContent(partial);
      break;
    }
    const crlf = lf > pos && input[lf - 1] === '\r';
    let content = input.slice(pos, crlf ? lf - 1 : lf);
    if (content === '.' && crlf && prevCrlf) {
      stats.bareNewline = stats.bareCrCount + stats.bareLfCount > 0;
      stats.bodyBytes = Buffer.byteLength(body, 'latin1');
      stats.inputBytes = lf + 1;
      return { body, done: true, rest: input.slice(lf + 1), stats };
    }
    measure(content.length);
    if (content.startsWith('.') && content.length > 1) content = content.slice(1);
    emitContent(content);
    if (crlf) body += '\r\n';
    else {
      stats.bareLfCount++;
      body += normalize ? '\r\n' : '\n';
    }
    prevCrlf = crlf;
    pos = lf + 1;
  }
  stats.bareNewline = stats.bareCrCount + stats.bareLfCount > 0;
  stats.bodyBytes = Buffer.byteLength(body, 'latin1');
  return { body, done: false, rest: '', stats };
}

function withoutPartialStats(o: Outcome): Omit<Outcome, 'stats'> & { stats: Partial<DataStats> } {
  // inputBytes and the unfinished line's length differ by design when the input stops mid-line.
  const { inputBytes: _i, longestLine: _l, longLine: _ll, ...stats } = o.stats;
  return { ...o, stats };
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

const fixtures: Array<{ name: string; input: string; body: string; rest: string; policy?: BareNewlinePolicy; done?: boolean }> = [
  { name: 'simple message', input: 'Subject: hi\r\n\r\nHello\r\n.\r\nQUIT\r\n', body: 'Subject: hi\r\n\r\nHello\r\n', rest: 'QUIT\r\n' },
  { name: 'empty message (dot right after DATA)', input: '.\r\nMAIL FROM:<a@b>\r\n', body: '', rest: 'MAIL FROM:<a@b>\r\n' },
  { name: 'dot-stuffing removed', input: '..leading\r\n..\r\n...\r\n.\r\n', body: '.leading\r\n.\r\n..\r\n', rest: '' },
  { name: 'dot inside a line kept', input: 'a.b\r\n .\r\n.\r\n', body: 'a.b\r\n .\r\n', rest: '' },
  { name: 'empty lines', input: '\r\n\r\n.\r\n', body: '\r\n\r\n', rest: '' },
  { name: 'rest is empty when the chunk ends at the terminator', input: 'x\r\n.\r\n', body: 'x\r\n', rest: '' },
  // SMTP smuggling: none of these ends the data.
  {
    name: 'smuggling LF.LF',
    input: 'a\n.\nMAIL FROM:<evil@x>\r\n.\r\n',
    body: 'a\r\n.\r\nMAIL FROM:<evil@x>\r\n',
    rest: '',
  },
  { name: 'smuggling CRLF.LF', input: 'a\r\n.\nRCPT\r\n.\r\n', body: 'a\r\n.\r\nRCPT\r\n', rest: '' },
  { name: 'smuggling LF.CRLF', input: 'a\n.\r\nRCPT\r\n.\r\n', body: 'a\r\n.\r\nRCPT\r\n', rest: '' },
  { name: 'smuggling CR.CR', input: 'a\r.\rRCPT\r\n.\r\n', body: 'a\r\n.\r\nRCPT\r\n', rest: '' },
  { name: 'smuggling CR.CRLF', input: 'a\r.\r\nRCPT\r\n.\r\n', body: 'a\r\n.\r\nRCPT\r\n', rest: '' },
  { name: 'smuggling CRLF.CR', input: 'a\r\n.\rX\r\n.\r\n', body: 'a\r\n\r\nX\r\n', rest: '' },
  { name: 'smuggling at body start LF', input: '.\nX\r\n.\r\n', body: '.\r\nX\r\n', rest: '' },
  {
    name: 'smuggling kept as is with reject',
    input: 'a\n.\nMAIL\r\n.\r\n',
    body: 'a\n.\nMAIL\r\n',
    rest: '',
    policy: 'reject',
  },
  { name: 'bare CR kept with reject', input: 'a\rb\r\n.\r\n', body: 'a\rb\r\n', rest: '', policy: 'reject' },
  { name: 'not preceded: unterminated', input: 'no end\r\n', body: 'no end\r\n', rest: '', done: false },
  { name: 'ends in CR held', input: 'line\r', body: 'line', rest: '', done: false },
];

describe('DataReader', () => {
  for (const f of fixtures) {
    it(`${f.name}: whole, split at every offset, and split in three`, () => {
      const policy = f.policy ?? 'normalize';
      const input = b(f.input);
      const whole = feed([input], policy);
      assert.equal(whole.body, f.body);
      assert.equal(whole.rest, f.rest);
      assert.equal(whole.done, f.done ?? true);
      assert.deepEqual(withoutPartialStats(whole), withoutPartialStats(reference(f.input, policy)));
      for (let i = 0; i <= input.length; i++) {
        const split = feed([input.subarray(0, i), input.subarray(i)], policy);
        assert.deepEqual(split, whole, `split at ${i}`);
        for (let j = i; j <= input.length; j++) {
          const three = feed([input.subarray(0, i), input.subarray(i, j), input.subarray(j)], policy);
          assert.deepEqual(three, whole, `split at ${i}, ${j}`);
        }
      }
    });
  }

  it('counts bare line ends, long lines and bytes', () => {
    const out = feed([b(`${'x'.repeat(1000)}\r\nok\nbad\rx\r\n.\r\n`)], 'normalize');
    assert.equal(out.done, true);
    assert.equal(out.stats.longLine, true);
    assert.equal(out.stats.longestLine, 1000);
    assert.equal(out.stats.bareNewline, true);
    assert.equal(out.stats.bareLfCount, 1);
    assert.equal(out.stats.bareCrCount, 1);
    assert.equal(out.stats.bodyBytes, out.body.length);
    assert.equal(out.stats.inputBytes, 1000 + 2 + 3 + 7 + 3);
    const clean = feed([b('abc\r\n.\r\n')], 'normalize');
    assert.equal(clean.stats.bareNewline, false);
    assert.equal(clean.stats.longLine, false);
    assert.equal(clean.stats.longestLine, 3);
  });

  it('a 998-byte line is not long, a 999-byte one is', () => {
    assert.equal(feed([b(`${'a'.repeat(998)}\r\n.\r\n`)], 'normalize').stats.longLine, false);
    assert.equal(feed([b(`${'a'.repeat(999)}\r\n.\r\n`)], 'normalize').stats.longLine, true);
  });

  it('with precededByCrlf false, a leading ".\\r\\n" is data', () => {
    const out = feed([b('.\r\nx\r\n.\r\n')], 'normalize', 998, false);
    assert.equal(out.body, '.\r\nx\r\n');
    assert.equal(out.done, true);
  });

  it('after done, further input is returned as rest', () => {
    const reader = new DataReader({ maxLineLength: 998, bareNewline: 'normalize' });
    assert.equal(reader.push(b('.\r\n')).done, true);
    const again = reader.push(b('NOOP\r\n'));
    assert.equal(again.done, true);
    assert.equal(again.done && again.rest.toString(), 'NOOP\r\n');
  });

  it('returns a view of the chunk when nothing changes (no copy)', () => {
    const chunk = b('line one\r\nline two\r\n');
    const step = new DataReader({ maxLineLength: 998, bareNewline: 'normalize' }).push(chunk);
    assert.equal(step.body.buffer, chunk.buffer);
    assert.equal(step.body.length, chunk.length);
  });

  it('matches the reference model on random inputs split randomly', () => {
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const alphabet = ['\r', '\n', '.', 'a', '\r\n', '\r\n.', '.\r\n', '\r\n.\r\n'];
    for (let round = 0; round < 3000; round++) {
      let s = '';
      const n = rand(16);
      for (let i = 0; i < n; i++) s += alphabet[rand(alphabet.length)];
      const policy: BareNewlinePolicy = rand(2) === 0 ? 'normalize' : 'reject';
      const pre = rand(4) !== 0;
      const input = b(s);
      const chunks: Buffer[] = [];
      let p = 0;
      while (p < input.length) {
        const size = 1 + rand(4);
        chunks.push(input.subarray(p, p + size));
        p += size;
      }
      const got = feed(chunks, policy, 2, pre);
      const want = reference(s, policy, 2, pre);
      assert.deepEqual(withoutPartialStats(got), withoutPartialStats(want), JSON.stringify({ s, policy, pre }));
      if (want.done) assert.deepEqual(got.stats, want.stats, JSON.stringify({ s, policy, pre }));
    }
  });

  it('holds at most two bytes across calls', () => {
    const reader = new DataReader({ maxLineLength: 998, bareNewline: 'normalize' });
    let out = 0;
    for (const piece of ['abc\r', '\n', '.', '\r', 'x\r\n']) out += reader.push(b(piece)).body.length;
    // "abc\r\n" + "\rx\r\n" normalised ("." then a bare CR: the dot is a stuffed dot)
    assert.equal(out, 5 + 5);
  });

  it('throughput on 100 MB of 4 KB messages (printed, not asserted)', () => {
    const line = `${'The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij'.padEnd(76, '.')}\r\n`;
    let msg = 'From: a@example.com\r\nTo: b@example.org\r\nSubject: test\r\n\r\n';
    while (msg.length + line.length < 4096 - 5) msg += msg.length % 7 === 0 ? `.${line}` : line;
    const message = b(`${msg}.\r\n`);
    const perBatch = Math.floor((1024 * 1024) / message.length);
    const batch = Buffer.concat(Array.from({ length: perBatch }, () => message));
    const total = 100 * 1024 * 1024;
    const chunkSize = 64 * 1024;
    let messages = 0;
    let bytesOut = 0;
    let reader = new DataReader({ maxLineLength: 998, bareNewline: 'normalize' });
    const start = process.hrtime.bigint();
    for (let fed = 0; fed < total; fed += batch.length) {
      for (let off = 0; off < batch.length; off += chunkSize) {
        let chunk: Buffer = batch.subarray(off, off + chunkSize);
        for (;;) {
          const step = reader.push(chunk);
          bytesOut += step.body.length;
          if (!step.done) break;
          messages++;
          reader = new DataReader({ maxLineLength: 998, bareNewline: 'normalize' });
          chunk = step.rest;
          if (chunk.length === 0) break;
        }
      }
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const mb = total / (1024 * 1024);
    console.log(
      `DataReader: ${mb} MB, ${messages} messages of ${message.length} bytes in ${seconds.toFixed(3)} s: ` +
        `${(mb / seconds).toFixed(0)} MB/s, ${Math.round(messages / seconds)} msg/s (${bytesOut} bytes out)`,
    );
    assert.ok(messages > 0);
  });
});

describe('BdatReader', () => {
  function bdat(chunks: Array<{ size: number; data: Buffer[] }>, policy: BareNewlinePolicy): { body: string; rests: string[]; stats: DataStats } {
    const reader = new BdatReader({ maxLineLength: 998, bareNewline: policy });
    let body = '';
    const rests: string[] = [];
    for (const c of chunks) {
      reader.beginChunk(c.size);
      let rest = '';
      let done = false;
      for (const d of c.data) {
        const step = reader.push(d);
        body += step.body.toString('latin1');
        if (step.done) {
          rest += step.rest.toString('latin1');
          done = true;
        }
      }
      assert.equal(done, true);
      rests.push(rest);
    }
    body += reader.finish().toString('latin1');
    return { body, rests, stats: reader.stats };
  }

  it('passes exactly the counted bytes and returns the rest, at every split', () => {
    const input = b('Subject: x\r\n\r\n.hello\r\nBDAT 0 LAST\r\n');
    const size = 22;
    const whole = bdat([{ size, data: [input] }], 'normalize');
    assert.equal(whole.body, 'Subject: x\r\n\r\n.hello\r\n');
    assert.deepEqual(whole.rests, ['BDAT 0 LAST\r\n']);
    for (let i = 0; i <= input.length; i++) {
      const split = bdat([{ size, data: [input.subarray(0, i), input.subarray(i)] }], 'normalize');
      assert.deepEqual(split, whole, `split at ${i}`);
    }
  });

  it('normalises bare newlines, including a CR LF straddling two BDAT chunks', () => {
    const out = bdat(
      [
        { size: 4, data: [b('a\nb\r')] },
        { size: 4, data: [b('\nc\rd')] },
      ],
      'normalize',
    );
    assert.equal(out.body, 'a\r\nb\r\nc\r\nd');
    assert.equal(out.stats.bareLfCount, 1);
    assert.equal(out.stats.bareCrCount, 1);
    assert.equal(out.stats.inputBytes, 8);
  });

  it('flags but keeps bare newlines with reject, and flushes a final CR', () => {
    const out = bdat([{ size: 5, data: [b('a\nb\r\r')] }], 'reject');
    assert.equal(out.body, 'a\nb\r\r');
    assert.equal(out.stats.bareNewline, true);
    assert.equal(out.stats.bareCrCount, 2);
    const norm = bdat([{ size: 2, data: [b('x\r')] }], 'normalize');
    assert.equal(norm.body, 'x\r\n');
  });

  it('never ends at a dot line: BDAT has no terminator', () => {
    const out = bdat([{ size: 6, data: [b('.\r\nx\r\nQUIT\r\n')] }], 'normalize');
    assert.equal(out.body, '.\r\nx\r\n');
    assert.deepEqual(out.rests, ['QUIT\r\n']);
    assert.equal(out.stats.bareNewline, false);
  });
});
