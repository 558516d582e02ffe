import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CommandFramer, type FramerEvent, type FramerLimits, type LiteralAnnouncement, type Segment } from '../../src/imap/framer.js';

const LIMITS: FramerLimits = { maxLineLength: 200, maxCommandBytes: 1000, maxLiteralInMemory: 300, maxSegments: 50 };

type Policy = (l: LiteralAnnouncement) => 'buffer' | 'stream' | 'reject';
const bufferAll: Policy = (l) => (l.bufferable ? 'buffer' : 'stream');

/** A comparable form of an event: buffers as strings, literal chunks merged per literal. */
type Plain =
  | { type: 'command'; segments: Array<string | { literal: string; binary: boolean } | { streamed: number; size: number; binary: boolean }> }
  | { type: 'literal'; literal: LiteralAnnouncement }
  | { type: 'literal-data'; id: number; data: string }
  | { type: 'literal-end'; id: number }
  | { type: 'error'; tag: string | null; reason: string; message: string };

function plainSegment(s: Segment): string | { literal: string; binary: boolean } | { streamed: number; size: number; binary: boolean } {
  if (s.kind === 'text') return s.bytes.toString('latin1');
  if (s.kind === 'literal') return { literal: s.bytes.toString('latin1'), binary: s.binary };
  return { streamed: s.id, size: s.size, binary: s.binary };
}

function drain(f: CommandFramer, policy: Policy, out: Plain[], maxPending?: number): void {
  for (;;) {
    const e: FramerEvent | null = f.next();
    if (maxPending !== undefined) assert.ok(f.pendingBytes <= maxPending, `pendingBytes ${f.pendingBytes} > ${maxPending}`);
    if (e === null) return;
    switch (e.type) {
      case 'command':
        out.push({ type: 'command', segments: e.segments.map(plainSegment) });
        break;
      case 'literal': {
        out.push({ type: 'literal', literal: e.literal });
        const p = policy(e.literal);
        if (p === 'reject') f.rejectLiteral();
        else f.acceptLiteral(p);
        break;
      }
      case 'literal-chunk': {
        const last = out[out.length - 1];
        if (last?.type === 'literal-data' && last.id === e.id) last.data += e.chunk.toString('latin1');
        else out.push({ type: 'literal-data', id: e.id, data: e.chunk.toString('latin1') });
        break;
      }
      case 'literal-end':
        out.push({ type: 'literal-end', id: e.id });
        break;
      case 'error':
        out.push({ type: 'error', tag: e.tag, reason: e.reason, message: e.message });
        break;
    }
  }
}

function run(chunks: Array<string | Buffer>, policy: Policy = bufferAll, limits: FramerLimits = LIMITS): Plain[] {
  const f = new CommandFramer(limits);
  const out: Plain[] = [];
  for (const c of chunks) {
    f.push(typeof c === 'string' ? Buffer.from(c, 'latin1') : c);
    drain(f, policy, out);
  }
  return out;
}

const cmd = (...segments: Array<string | { literal: string; binary: boolean } | { streamed: number; size: number; binary: boolean }>): Plain => ({ type: 'command', segments });
const lit = (s: string, binary = false) => ({ literal: s, binary });
function ann(id: number, size: number, sync: boolean, tag: string | null, command: string | null, more: Partial<LiteralAnnouncement> = {}): Plain {
  return { type: 'literal', literal: { id, size, sync, binary: false, tag, command, bufferable: true, ...more } };
}

describe('CommandFramer: lines', () => {
  it('splits commands at CRLF, and at a bare LF', () => {
    assert.deepEqual(run(['a1 NOOP\r\na2 CAPABILITY\nA3 LOGOUT\r\n']), [cmd('a1 NOOP'), cmd('a2 CAPABILITY'), cmd('A3 LOGOUT')]);
  });

  it('an empty line is an empty command (the parser reports it)', () => {
    assert.deepEqual(run(['\r\n\n']), [cmd(''), cmd('')]);
  });

  it('waits for the end of the line', () => {
    const f = new CommandFramer(LIMITS);
    f.push(Buffer.from('a1 NO'));
    assert.equal(f.next(), null);
    f.push(Buffer.from('OP\r'));
    assert.equal(f.next(), null);
    assert.equal(f.pendingBytes, 8);
    f.push(Buffer.from('\n'));
    assert.deepEqual(f.next(), { type: 'command', segments: [{ kind: 'text', bytes: Buffer.from('a1 NOOP') }] });
    assert.equal(f.next(), null);
    assert.equal(f.pendingBytes, 0);
  });

  it('a bare CR inside a line is an error; the line is dropped', () => {
    assert.deepEqual(run(['a1 NO\rOP\r\na2 NOOP\r\n']), [
      { type: 'error', tag: 'a1', reason: 'bare-cr', message: 'CR not followed by LF' },
      cmd('a2 NOOP'),
    ]);
    assert.deepEqual(run(['a1 NOOP\r\r\n']), [{ type: 'error', tag: 'a1', reason: 'bare-cr', message: 'CR not followed by LF' }]);
  });

  it('a line of exactly maxLineLength is accepted; one more byte is not', () => {
    const limits = { ...LIMITS, maxLineLength: 20 };
    const ok = `a1 ${'x'.repeat(17)}`;
    assert.deepEqual(run([`${ok}\r\n`], bufferAll, limits), [cmd(ok)]);
    assert.deepEqual(run([`${ok}y\r\na2 NOOP\r\n`], bufferAll, limits), [
      { type: 'error', tag: 'a1', reason: 'line-too-long', message: 'Line too long (limit 20 bytes)' },
      cmd('a2 NOOP'),
    ]);
  });

  it('an over-long line is refused before its end arrives, with bounded memory', () => {
    const limits = { ...LIMITS, maxLineLength: 1000, maxCommandBytes: 4000 };
    const f = new CommandFramer(limits);
    const out: Plain[] = [];
    f.push(Buffer.from('t9 APPEND '));
    const chunk = Buffer.alloc(997, 0x61);
    for (let i = 0; i < 2000; i++) {
      f.push(chunk);
      drain(f, bufferAll, out, 1000 + 997 + 80);
    }
    assert.deepEqual(out, [{ type: 'error', tag: 't9', reason: 'line-too-long', message: 'Line too long (limit 1000 bytes)' }]);
    f.push(Buffer.from('\r\nt10 NOOP\r\n'));
    drain(f, bufferAll, out, 2000);
    assert.deepEqual(out.slice(1), [cmd('t10 NOOP')]);
    assert.equal(f.pendingBytes, 0);
  });

  it('a huge single push without LF is not copied whole', () => {
    const f = new CommandFramer(LIMITS);
    f.push(Buffer.alloc(50_000_000, 0x41));
    const out: Plain[] = [];
    drain(f, bufferAll, out, 300);
    assert.equal(out.length, 1);
    assert.equal(out[0]!.type, 'error');
  });

  it('the tag of an over-long line is read from its start; none if unreadable', () => {
    assert.deepEqual(run([`${'x'.repeat(300)}\r\n`]), [{ type: 'error', tag: null, reason: 'line-too-long', message: 'Line too long (limit 200 bytes)' }]);
    assert.deepEqual(run([`+bad ${'x'.repeat(300)}\r\n`]), [{ type: 'error', tag: null, reason: 'line-too-long', message: 'Line too long (limit 200 bytes)' }]);
  });
});

describe('CommandFramer: literals', () => {
  it('a synchronizing literal: announce, pause, then the data', () => {
    const f = new CommandFramer(LIMITS);
    f.push(Buffer.from('a1 LOGIN {5}\r\n'));
    const e = f.next();
    assert.deepEqual(e, { type: 'literal', literal: { id: 1, size: 5, sync: true, binary: false, tag: 'a1', command: 'LOGIN', bufferable: true } });
    f.push(Buffer.from('alice "pw"\r\n'));
    assert.equal(f.next(), null, 'paused until accepted');
    f.acceptLiteral('buffer');
    assert.deepEqual(f.next(), {
      type: 'command',
      segments: [
        { kind: 'text', bytes: Buffer.from('a1 LOGIN ') },
        { kind: 'literal', bytes: Buffer.from('alice'), binary: false },
        { kind: 'text', bytes: Buffer.from(' "pw"') },
      ],
    });
  });

  it('LITERAL+ {n+}, literal8 ~{n} and ~{n+}', () => {
    assert.deepEqual(run(['a1 LOGIN {5+}\r\nalice {2+}\r\npw\r\n']), [
      ann(1, 5, false, 'a1', 'LOGIN'),
      ann(2, 2, false, 'a1', 'LOGIN'),
      cmd('a1 LOGIN ', lit('alice'), ' ', lit('pw'), ''),
    ]);
    assert.deepEqual(run(['a1 APPEND x ~{3}\r\na\0b\r\n']), [ann(1, 3, true, 'a1', 'APPEND', { binary: true }), cmd('a1 APPEND x ', lit('a\0b', true), '')]);
    assert.deepEqual(run(['a1 APPEND x ~{3+}\r\na\0b\r\n']), [ann(1, 3, false, 'a1', 'APPEND', { binary: true }), cmd('a1 APPEND x ', lit('a\0b', true), '')]);
  });

  it('a zero-length literal', () => {
    assert.deepEqual(run(['a1 LOGIN {0}\r\n {0+}\r\n\r\n']), [
      ann(1, 0, true, 'a1', 'LOGIN'),
      ann(2, 0, false, 'a1', 'LOGIN'),
      cmd('a1 LOGIN ', lit(''), ' ', lit(''), ''),
    ]);
  });

  it('a literal inside a list, and literal data that looks like commands', () => {
    assert.deepEqual(run(['a1 ID ("name" {10}\r\nx\r\nb2 NOOP)\r\n']), [ann(1, 10, true, 'a1', 'ID'), cmd('a1 ID ("name" ', lit('x\r\nb2 NOOP'), ')')]);
  });

  it('braces not at the end of the line are text; {n-} is not a literal (rfc7888 uses {n+} for LITERAL- too)', () => {
    assert.deepEqual(run(['a1 SEARCH SUBJECT {3} x\r\n']), [cmd('a1 SEARCH SUBJECT {3} x')]);
    assert.deepEqual(run(['a1 LOGIN {3-}\r\n']), [cmd('a1 LOGIN {3-}')]);
    assert.deepEqual(run(['a1 LOGIN {}\r\n']), [cmd('a1 LOGIN {}')]);
    assert.deepEqual(run(['a1 LOGIN {x}\r\n']), [cmd('a1 LOGIN {x}')]);
  });

  it('UID commands are named with their prefix', () => {
    assert.deepEqual(run(['a1 uid search text {1+}\r\nx\r\n'])[0], ann(1, 1, false, 'a1', 'UID SEARCH'));
  });

  it('streamed literals: chunks, an end, and a streamed segment (APPEND)', () => {
    const policy: Policy = (l) => (l.command === 'APPEND' ? 'stream' : 'buffer');
    const chunks = ['a1 APPEND INBOX (\\Seen) {11}\r\n', 'Hello', ' world', ' {3+}\r\nabc\r\n'];
    assert.deepEqual(run(chunks, policy), [
      ann(1, 11, true, 'a1', 'APPEND'),
      { type: 'literal-data', id: 1, data: 'Hello world' },
      { type: 'literal-end', id: 1 },
      ann(2, 3, false, 'a1', 'APPEND'),
      { type: 'literal-data', id: 2, data: 'abc' },
      { type: 'literal-end', id: 2 },
      cmd('a1 APPEND INBOX (\\Seen) ', { streamed: 1, size: 11, binary: false }, ' ', { streamed: 2, size: 3, binary: false }, ''),
    ]);
  });

  it('a 100 MB streamed literal never accumulates', () => {
    const f = new CommandFramer(LIMITS);
    const size = 100 * 1024 * 1024;
    f.push(Buffer.from(`a1 APPEND INBOX {${size}+}\r\n`));
    const first = f.next();
    assert.equal(first?.type, 'literal');
    f.acceptLiteral('stream');
    const chunk = Buffer.alloc(65536, 0x78);
    let streamed = 0;
    for (let sent = 0; sent < size; sent += chunk.length) {
      f.push(chunk);
      for (let e = f.next(); e !== null; e = f.next()) {
        assert.equal(e.type, sent + chunk.length < size ? 'literal-chunk' : e.type);
        if (e.type === 'literal-chunk') streamed += e.chunk.length;
        else assert.deepEqual(e, { type: 'literal-end', id: 1 });
      }
      assert.ok(f.pendingBytes <= 64, `pendingBytes ${f.pendingBytes}`);
    }
    f.push(Buffer.from('\r\n'));
    const c = f.next();
    assert.equal(c?.type, 'command');
    assert.equal(streamed, size);
  });

  it('a literal split across pushes, and data right after it in the same push', () => {
    assert.deepEqual(run(['a1 LOGIN {5}\r\nal', 'i', 'ce x\r\na2 NOOP\r\n']), [ann(1, 5, true, 'a1', 'LOGIN'), cmd('a1 LOGIN ', lit('alice'), ' x'), cmd('a2 NOOP')]);
  });

  it('rejecting a synchronizing literal ends the command without an event', () => {
    const policy: Policy = () => 'reject';
    assert.deepEqual(run(['a1 APPEND INBOX {500}\r\na2 NOOP\r\n'], policy), [ann(1, 500, true, 'a1', 'APPEND', { bufferable: false }), cmd('a2 NOOP')]);
  });

  it('rejecting a non-synchronizing literal skips it and the rest of the command, then says so', () => {
    const policy: Policy = (l) => (l.id === 1 ? 'reject' : 'buffer');
    const input = 'a1 APPEND INBOX {10+}\r\n0123456789 {3+}\r\nabc (\\Seen) {4+}\r\nwxyz {2}\r\na2 NOOP\r\n';
    assert.deepEqual(run([input], policy), [
      ann(1, 10, false, 'a1', 'APPEND'),
      { type: 'error', tag: 'a1', reason: 'literal-rejected', message: 'Literal rejected' },
      cmd('a2 NOOP'),
    ]);
    // The rejection is reported only once the command's bytes are gone.
    const f = new CommandFramer(LIMITS);
    f.push(Buffer.from('a1 APPEND INBOX {10+}\r\n01234'));
    assert.equal(f.next()?.type, 'literal');
    f.rejectLiteral();
    assert.equal(f.next(), null);
    f.push(Buffer.from('56789 {3+}\r\nab'));
    assert.equal(f.next(), null);
    f.push(Buffer.from('c\r\n'));
    assert.deepEqual(f.next(), { type: 'error', tag: 'a1', reason: 'literal-rejected', message: 'Literal rejected' });
  });

  it('acceptLiteral and rejectLiteral out of turn, or buffer past the limit, are programming errors', () => {
    const f = new CommandFramer(LIMITS);
    assert.throws(() => f.acceptLiteral('buffer'), /no literal/);
    assert.throws(() => f.rejectLiteral(), /no literal/);
    f.push(Buffer.from('a1 APPEND INBOX {301}\r\n'));
    const e = f.next();
    assert.equal(e?.type === 'literal' && e.literal.bufferable, false);
    assert.throws(() => f.acceptLiteral('buffer'), /maxLiteralInMemory/);
    f.acceptLiteral('stream');
  });

  it('bufferable is false when the literal would overflow the command', () => {
    const f = new CommandFramer({ ...LIMITS, maxCommandBytes: 302 });
    f.push(Buffer.from('a1 X {300}\r\n'));
    const e = f.next();
    assert.equal(e?.type === 'literal' && e.literal.bufferable, false);
    // Buffering anyway: an error, and the literal's octets are skipped.
    f.acceptLiteral('buffer');
    assert.deepEqual(f.next(), { type: 'error', tag: 'a1', reason: 'command-too-long', message: 'Command too long (limit 302 bytes)' });
    f.push(Buffer.alloc(300, 0x41));
    f.push(Buffer.from(' more\r\na2 NOOP\r\n'));
    assert.deepEqual(f.next(), { type: 'command', segments: [{ kind: 'text', bytes: Buffer.from('a2 NOOP') }] });
  });

  it('an absurd literal size is a bad-literal error', () => {
    assert.deepEqual(run(['a1 LOGIN {99999999999999999999}\r\na2 NOOP\r\n']), [
      { type: 'error', tag: 'a1', reason: 'bad-literal', message: 'Invalid literal size' },
      cmd('a2 NOOP'),
    ]);
    assert.deepEqual(run([`a1 LOGIN {${'0'.repeat(30)}1}\r\n`]), [{ type: 'error', tag: 'a1', reason: 'bad-literal', message: 'Invalid literal size' }]);
  });
});

describe('CommandFramer: command limits', () => {
  it('the command total (text + buffered literals) is bounded', () => {
    const limits = { ...LIMITS, maxCommandBytes: 100 };
    const out = run(['a1 LOGIN {50}\r\n', 'x'.repeat(50), ' {50}\r\n'], bufferAll, limits);
    // The second literal would overflow: not bufferable, so the policy streams it.
    const second = out[1];
    assert.equal(second?.type === 'literal' && second.literal.bufferable, false);
    assert.deepEqual(
      run(['a1 LOGIN {50}\r\n', 'x'.repeat(50), ` ${'y'.repeat(60)}\r\na2 NOOP\r\n`], bufferAll, limits).slice(1),
      [{ type: 'error', tag: 'a1', reason: 'command-too-long', message: 'Command too long (limit 100 bytes)' }, cmd('a2 NOOP')],
    );
  });

  it('text overflowing the command at a non-synchronizing literal: the literal and the rest are skipped', () => {
    const limits = { ...LIMITS, maxCommandBytes: 100 };
    const input = `a1 LOGIN {60}\r\n${'x'.repeat(60)} ${'y'.repeat(50)} {5+}\r\nhello {1+}\r\nz\r\na2 NOOP\r\n`;
    assert.deepEqual(run([input], bufferAll, limits).slice(1), [
      { type: 'error', tag: 'a1', reason: 'command-too-long', message: 'Command too long (limit 100 bytes)' },
      cmd('a2 NOOP'),
    ]);
  });

  it('the number of segments is bounded (many empty literals)', () => {
    const f = new CommandFramer({ ...LIMITS, maxSegments: 10 });
    const out: Plain[] = [];
    f.push(Buffer.from(`a1 X${' {0+}\r\n'.repeat(1000)}\r\na2 NOOP\r\n`));
    drain(f, bufferAll, out, 100_000);
    assert.deepEqual(out.filter((e) => e.type !== 'literal'), [
      { type: 'error', tag: 'a1', reason: 'command-too-long', message: 'Command too long (limit 10 segments)' },
      cmd('a2 NOOP'),
    ]);
  });

  it('an over-long continuation line is reported with the tag of the command', () => {
    assert.deepEqual(run([`a1 LOGIN {1}\r\nx${'y'.repeat(300)} {2+}\r\nzz\r\na2 NOOP\r\n`]).slice(1), [
      { type: 'error', tag: 'a1', reason: 'line-too-long', message: 'Line too long (limit 200 bytes)' },
      cmd('a2 NOOP'),
    ]);
  });

  it('an over-long line ending in a synchronizing literal ends the command', () => {
    assert.deepEqual(run([`a1 LOGIN ${'y'.repeat(300)} {2}\r\na2 NOOP\r\n`]), [
      { type: 'error', tag: 'a1', reason: 'line-too-long', message: 'Line too long (limit 200 bytes)' },
      cmd('a2 NOOP'),
    ]);
  });
});

describe('CommandFramer: takeRemaining (COMPRESS)', () => {
  it('returns what was pushed after the last command, and resets', () => {
    const f = new CommandFramer(LIMITS);
    f.push(Buffer.from('a1 COMPRESS DEFLATE\r\n\x01\x02'));
    f.push(Buffer.from('\x03'));
    assert.equal(f.next()?.type, 'command');
    assert.deepEqual(f.takeRemaining(), Buffer.from('\x01\x02\x03'));
    assert.equal(f.pendingBytes, 0);
    assert.equal(f.next(), null);
    f.push(Buffer.from('a2 NOOP\r\n'));
    assert.equal(f.next()?.type, 'command');
  });
});

// --- split points: every fixture fed whole, split at every offset, and byte by byte -------------

const FIXTURES: Array<{ name: string; input: string; policy?: Policy; limits?: FramerLimits }> = [
  { name: 'simple lines', input: 'a1 NOOP\r\na2 LOGIN alice pw\na3 LOGOUT\r\n' },
  { name: 'rfc3501 6.2.3 LOGIN with a literal', input: 'a001 LOGIN SMITH {6}\r\nSESAME\r\n' },
  { name: 'rfc3501 6.3.11 APPEND', input: 'A003 APPEND saved-messages (\\Seen) {310}\r\n' + 'D'.repeat(308) + '\r\n\r\n' },
  { name: 'APPEND streamed', input: 'A003 APPEND INBOX (\\Seen) "17-Jul-1996 02:44:25 -0700" {20+}\r\n01234567890123456789 {5+}\r\nabcde\r\nA4 NOOP\r\n', policy: (l) => (l.command === 'APPEND' ? 'stream' : 'buffer') },
  { name: 'several literals', input: 'a1 LOGIN {5}\r\nalice {0}\r\n\r\na2 SEARCH CHARSET UTF-8 SUBJECT {4+}\r\n\xc3\xa9t\xc3 TEXT ~{2}\r\n\0\0\r\n' },
  { name: 'rejected sync', input: 'a1 APPEND INBOX {9999}\r\na2 NOOP\r\n', policy: () => 'reject' },
  { name: 'rejected non-sync with trailing literals', input: 'a1 APPEND INBOX {10+}\r\n0123456789 {3+}\r\nabc (\\Seen) {4+}\r\nwxyz {2}\r\na2 NOOP\r\n', policy: (l) => (l.id === 1 ? 'reject' : 'buffer') },
  { name: 'over-long lines', input: `a1 NOOP\r\nb1 ${'x'.repeat(500)}\r\nc1 LOGIN {1}\r\nx ${'z'.repeat(500)} {3+}\r\nabc\r\nd1 NOOP\r\n` },
  { name: 'over-long line with a CR near the limit', input: `a1 ${'x'.repeat(196)}\r\r\n` + `a2 ${'x'.repeat(197)}\r\n` + `a3 ${'x'.repeat(198)}\r\n` },
  { name: 'bare CR and bare LF', input: 'a1 NO\rOP\r\na2 NOOP\na3 NOOP\r\r\n\r\n' },
  { name: 'command too long', policy: (l) => (l.size <= 300 ? 'buffer' : 'stream'), input: `a1 LOGIN {250}\r\n${'x'.repeat(250)} {250}\r\n${'y'.repeat(250)} {250}\r\n${'z'.repeat(250)} {250+}\r\n${'w'.repeat(250)} {300+}\r\n${'v'.repeat(300)}\r\na2 NOOP\r\n` },
  { name: 'bad literal', input: 'a1 LOGIN {123456789012345678901}\r\na2 NOOP\r\n' },
];

describe('CommandFramer: split points', () => {
  for (const fx of FIXTURES) {
    it(fx.name, () => {
      const input = Buffer.from(fx.input, 'latin1');
      const whole = run([input], fx.policy, fx.limits);
      assert.ok(whole.length > 0);
      for (let i = 1; i < input.length; i++) {
        assert.deepEqual(run([input.subarray(0, i), input.subarray(i)], fx.policy, fx.limits), whole, `split at ${i}`);
      }
      const bytes = [...input].map((b) => Buffer.from([b]));
      assert.deepEqual(run(bytes, fx.policy, fx.limits), whole, 'byte by byte');
    });
  }

  it('the fixtures give the expected events', () => {
    const byName = new Map(FIXTURES.map((f) => [f.name, run([Buffer.from(f.input, 'latin1')], f.policy, f.limits)]));
    assert.deepEqual(byName.get('over-long line with a CR near the limit')!.map((e) => e.type), ['error', 'command', 'error']);
    assert.deepEqual(
      byName.get('command too long')!.filter((e) => e.type !== 'literal'),
      [{ type: 'error', tag: 'a1', reason: 'command-too-long', message: 'Command too long (limit 1000 bytes)' }, cmd('a2 NOOP')],
    );
  });
});

describe('CommandFramer: hostile input', () => {
  it('random bytes for a while: never throws, memory stays bounded', () => {
    const limits: FramerLimits = { maxLineLength: 64, maxCommandBytes: 256, maxLiteralInMemory: 128, maxSegments: 8 };
    const pieces = ['{', '}', '+}', '~{', '\r', '\n', '\r\n', 'a1 ', '{5}\r\n', '{3+}\r\n', '~{2}\r\n', '{0}\r\n', '9', '(', '"', 'x'.repeat(70), '{99999999999999999999999}\r\n'];
    const deadline = Date.now() + 2000;
    let rounds = 0;
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    while (Date.now() < deadline) {
      rounds++;
      const f = new CommandFramer(limits);
      const policy: Policy = (l) => (['buffer', 'stream', 'reject'] as const)[rand(3)] === 'buffer' && l.bufferable ? 'buffer' : rand(2) === 0 ? 'stream' : 'reject';
      for (let k = 0; k < 50; k++) {
        const parts: Buffer[] = [];
        for (let j = rand(6); j >= 0; j--) {
          if (rand(3) === 0) parts.push(Buffer.from(pieces[rand(pieces.length)]!, 'latin1'));
          else parts.push(Buffer.from(Array.from({ length: rand(40) }, () => rand(256))));
        }
        f.push(Buffer.concat(parts));
        const out: Plain[] = [];
        drain(f, policy, out);
        // Drained: only the current line, a literal being buffered or the command are held.
        assert.ok(f.pendingBytes <= limits.maxLineLength + limits.maxCommandBytes + 128, `pendingBytes ${f.pendingBytes}`);
      }
    }
    assert.ok(rounds > 10);
  });
});
