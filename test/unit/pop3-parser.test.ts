import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Pop3Command, type Pop3Verb, parsePop3Command } from '../../src/pop3/parser.js';

function ok(line: string): Pop3Command {
  const r = parsePop3Command(line);
  assert.ok(r.ok, `${JSON.stringify(line)}: ${r.ok ? '' : r.error}`);
  return r.command;
}

function bad(line: string, verb: Pop3Verb | null, error: string): void {
  const r = parsePop3Command(line);
  assert.ok(!r.ok, `${JSON.stringify(line)} should fail, got ${JSON.stringify(r)}`);
  assert.deepEqual({ verb: r.verb, error: r.error }, { verb, error }, JSON.stringify(line));
}

describe('parsePop3Command: commands without arguments', () => {
  for (const verb of ['STAT', 'NOOP', 'RSET', 'QUIT', 'CAPA', 'STLS', 'UTF8'] as const) {
    it(`${verb}: any case, no arguments`, () => {
      assert.deepEqual(ok(verb), { verb });
      assert.deepEqual(ok(verb.toLowerCase()), { verb });
      assert.deepEqual(ok(verb[0] + verb.slice(1).toLowerCase()), { verb });
      bad(`${verb} x`, verb, `${verb} takes no arguments`);
      bad(`${verb} 1 2`, verb, `${verb} takes no arguments`);
      bad(`${verb}  `, verb, `${verb} takes no arguments`);
    });
  }

  it('a single trailing space is tolerated (an empty argument list)', () => {
    assert.deepEqual(ok('STAT '), { verb: 'STAT' });
    assert.deepEqual(ok('QUIT '), { verb: 'QUIT' });
  });
});

describe('parsePop3Command: USER, PASS, APOP', () => {
  it('USER takes exactly one name', () => {
    assert.deepEqual(ok('USER alice@example.com'), { verb: 'USER', name: 'alice@example.com' });
    assert.deepEqual(ok('user Alice'), { verb: 'USER', name: 'Alice' });
    assert.deepEqual(ok('USER jürgen@bücher.example'), { verb: 'USER', name: 'jürgen@bücher.example' });
    bad('USER', 'USER', 'Usage: USER name');
    bad('USER ', 'USER', 'Usage: USER name');
    bad('USER a b', 'USER', 'Usage: USER name');
    bad('USER  a', 'USER', 'Usage: USER name');
    bad('USER a ', 'USER', 'Usage: USER name');
  });

  it('PASS takes the rest of the line, spaces included', () => {
    assert.deepEqual(ok('PASS secret'), { verb: 'PASS', password: 'secret' });
    assert.deepEqual(ok('pass correct horse battery staple'), { verb: 'PASS', password: 'correct horse battery staple' });
    assert.deepEqual(ok('PASS  leading'), { verb: 'PASS', password: ' leading' });
    assert.deepEqual(ok('PASS trailing '), { verb: 'PASS', password: 'trailing ' });
    assert.deepEqual(ok('PASS pässwörd'), { verb: 'PASS', password: 'pässwörd' });
    bad('PASS', 'PASS', 'Usage: PASS password');
    bad('PASS ', 'PASS', 'Usage: PASS password');
  });

  it('APOP takes a name and a 32-digit hex digest (lower-cased)', () => {
    const digest = 'C4C9334BAC560ECC979E58001B3E22FB';
    assert.deepEqual(ok(`APOP mrose ${digest}`), { verb: 'APOP', name: 'mrose', digest: digest.toLowerCase() });
    assert.deepEqual(ok(`apop mrose ${digest.toLowerCase()}`), { verb: 'APOP', name: 'mrose', digest: digest.toLowerCase() });
    bad('APOP', 'APOP', 'Usage: APOP name digest');
    bad('APOP mrose', 'APOP', 'Usage: APOP name digest');
    bad(`APOP mrose ${digest.slice(1)}`, 'APOP', 'Usage: APOP name digest');
    bad(`APOP mrose ${digest}0`, 'APOP', 'Usage: APOP name digest');
    bad(`APOP mrose ${'g'.repeat(32)}`, 'APOP', 'Usage: APOP name digest');
    bad(`APOP mrose ${digest} extra`, 'APOP', 'Usage: APOP name digest');
  });
});

describe('parsePop3Command: AUTH', () => {
  it('without a mechanism (RFC 5034: list the mechanisms)', () => {
    assert.deepEqual(ok('AUTH'), { verb: 'AUTH', mechanism: null, initialResponse: null });
  });

  it('mechanism upper-cased, initial response kept as sent', () => {
    assert.deepEqual(ok('auth plain'), { verb: 'AUTH', mechanism: 'PLAIN', initialResponse: null });
    assert.deepEqual(ok('AUTH PLAIN AGFsaWNlAHNlY3JldA=='), { verb: 'AUTH', mechanism: 'PLAIN', initialResponse: 'AGFsaWNlAHNlY3JldA==' });
    assert.deepEqual(ok('AUTH LOGIN YWxpY2U='), { verb: 'AUTH', mechanism: 'LOGIN', initialResponse: 'YWxpY2U=' });
    assert.deepEqual(ok('AUTH PLAIN ='), { verb: 'AUTH', mechanism: 'PLAIN', initialResponse: '=' });
    assert.deepEqual(ok('AUTH X-UNKNOWN'), { verb: 'AUTH', mechanism: 'X-UNKNOWN', initialResponse: null });
  });

  it('more than two arguments or empty ones', () => {
    bad('AUTH PLAIN a b', 'AUTH', 'Usage: AUTH mechanism [initial-response]');
    bad('AUTH  PLAIN', 'AUTH', 'Usage: AUTH mechanism [initial-response]');
    bad('AUTH PLAIN ', 'AUTH', 'Usage: AUTH mechanism [initial-response]');
  });
});

describe('parsePop3Command: message numbers', () => {
  for (const verb of ['LIST', 'UIDL'] as const) {
    it(`${verb} with and without a message number`, () => {
      assert.deepEqual(ok(verb), { verb, msg: null });
      assert.deepEqual(ok(`${verb.toLowerCase()} 1`), { verb, msg: 1 });
      assert.deepEqual(ok(`${verb} 0`), { verb, msg: 0 }, 'range is the session’s business');
      assert.deepEqual(ok(`${verb} 007`), { verb, msg: 7 });
      assert.deepEqual(ok(`${verb} 2147483647`), { verb, msg: 2147483647 });
      for (const arg of ['-1', '+1', '1.5', 'x', '1x', '2147483648', '99999999999', '١']) {
        bad(`${verb} ${arg}`, verb, 'Invalid message number');
      }
      bad(`${verb} 1 2`, verb, 'Invalid message number');
      bad(`${verb}  1`, verb, 'Invalid message number');
    });
  }

  for (const verb of ['RETR', 'DELE'] as const) {
    it(`${verb} needs exactly one message number`, () => {
      assert.deepEqual(ok(`${verb} 1`), { verb, msg: 1 });
      assert.deepEqual(ok(`${verb.toLowerCase()} 42`), { verb, msg: 42 });
      assert.deepEqual(ok(`${verb} 0`), { verb, msg: 0 });
      bad(verb, verb, 'Invalid message number');
      bad(`${verb} `, verb, 'Invalid message number');
      bad(`${verb} 1 2`, verb, 'Invalid message number');
      bad(`${verb} one`, verb, 'Invalid message number');
      bad(`${verb} -3`, verb, 'Invalid message number');
      bad(`${verb} 4294967296`, verb, 'Invalid message number');
    });
  }

  it('TOP needs a message number and a line count', () => {
    assert.deepEqual(ok('TOP 1 0'), { verb: 'TOP', msg: 1, lines: 0 });
    assert.deepEqual(ok('top 3 10'), { verb: 'TOP', msg: 3, lines: 10 });
    assert.deepEqual(ok('TOP 1 2147483647'), { verb: 'TOP', msg: 1, lines: 2147483647 });
    for (const line of ['TOP', 'TOP 1', 'TOP 1 ', 'TOP 1 x', 'TOP x 1', 'TOP 1 -1', 'TOP 1 2 3', 'TOP 1  2', 'TOP 1 2147483648']) {
      bad(line, 'TOP', 'Usage: TOP msg lines');
    }
  });
});

describe('parsePop3Command: unknown and malformed lines', () => {
  it('unknown keywords', () => {
    for (const line of ['', ' ', 'XYZZY', 'LISTX', 'RETR1', 'GET / HTTP/1.1', 'EHLO client', 'LAST', 'RPOP x', ' STAT']) {
      bad(line, null, 'Unknown command');
    }
  });

  it('control characters anywhere in the line', () => {
    for (const line of ['STAT\x00', 'USER a\tb', 'PASS se\x7fcret', 'NOOP\x1b[2J', 'QUIT\r', 'LIST\n1']) {
      bad(line, null, 'Invalid character in command');
    }
  });
});
