import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  LOGIN_PASSWORD_CHALLENGE,
  LOGIN_USERNAME_CHALLENGE,
  LoginExchange,
  decodeLoginStep,
  decodePlain,
  decodeResponse,
} from '../../src/directory/sasl.js';
import { LineReader } from '../../src/net/line-reader.js';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

describe('decodePlain (rfc4616)', () => {
  it('decodes authzid, authcid and password', () => {
    assert.deepEqual(decodePlain(b64('\0john\0secret')), { ok: true, authzid: '', authcid: 'john', password: 'secret' });
    assert.deepEqual(decodePlain(b64('admin\0jöhn\0pä ss')), { ok: true, authzid: 'admin', authcid: 'jöhn', password: 'pä ss' });
  });

  it('rejects malformed, oversized and cancelled responses', () => {
    const reason = (s: string, max?: number) => {
      const r = decodePlain(s, max === undefined ? undefined : { maxFieldBytes: max });
      return r.ok ? 'ok' : r.reason;
    };
    assert.equal(reason('*'), 'cancelled');
    assert.equal(reason('not base64!'), 'invalid-base64');
    assert.equal(reason('AGpvaG4Ac2VjcmV0='), 'invalid-base64');
    assert.equal(reason(b64('john\0secret')), 'malformed');
    assert.equal(reason(b64('\0john\0sec\0ret')), 'malformed');
    assert.equal(reason(b64('\0\0secret')), 'malformed');
    assert.equal(reason(b64('\0john\0')), 'malformed');
    assert.equal(reason(''), 'malformed');
    assert.equal(reason('='), 'malformed');
    assert.equal(reason(Buffer.from([0, 0x6a, 0, 0xff, 0xfe]).toString('base64')), 'malformed');
    assert.equal(reason(b64(`\0john\0${'p'.repeat(300)}`), 255), 'too-long');
    assert.equal(reason(b64(`\0john\0${'p'.repeat(300)}`)), 'ok');
    assert.equal(reason('A'.repeat(100000)), 'too-long');
  });

  it('gives the same result when the response line arrives split at any offset', () => {
    const line = Buffer.from(`${b64('\0user@example.com\0correct horse battery staple')}\r\n`);
    const results: unknown[] = [];
    for (let i = 0; i <= line.length; i++) {
      const reader = new LineReader({ maxLineLength: 12288 });
      reader.push(line.subarray(0, i));
      reader.push(line.subarray(i));
      const r = reader.next();
      assert.ok(r && !r.tooLong);
      results.push(decodePlain(r.line.toString('latin1')));
    }
    for (const r of results) assert.deepEqual(r, results[0]);
    assert.deepEqual(results[0], { ok: true, authzid: '', authcid: 'user@example.com', password: 'correct horse battery staple' });
  });
});

describe('LOGIN', () => {
  it('uses the two standard prompts', () => {
    assert.equal(Buffer.from(LOGIN_USERNAME_CHALLENGE, 'base64').toString(), 'Username:');
    assert.equal(Buffer.from(LOGIN_PASSWORD_CHALLENGE, 'base64').toString(), 'Password:');
  });

  it('runs the exchange, with and without an initial response', () => {
    const a = new LoginExchange();
    assert.deepEqual(a.start(null), { kind: 'challenge', challenge: LOGIN_USERNAME_CHALLENGE });
    assert.deepEqual(a.respond(b64('john')), { kind: 'challenge', challenge: LOGIN_PASSWORD_CHALLENGE });
    assert.deepEqual(a.respond(b64('secret')), { kind: 'done', username: 'john', password: 'secret' });
    assert.equal(a.respond(b64('more')).kind, 'failed');

    const c = new LoginExchange();
    assert.deepEqual(c.start(b64('john')), { kind: 'challenge', challenge: LOGIN_PASSWORD_CHALLENGE });
    assert.deepEqual(c.respond(b64('pw')), { kind: 'done', username: 'john', password: 'pw' });
  });

  it('fails on cancel, bad base64, empty or oversized fields', () => {
    const failed = (lines: string[]) => {
      const x = new LoginExchange({ maxFieldBytes: 16 });
      let step = x.start(null);
      for (const l of lines) step = x.respond(l);
      return step.kind === 'failed' ? step.reason : step.kind;
    };
    assert.equal(failed(['*']), 'cancelled');
    assert.equal(failed([b64('john'), '*']), 'cancelled');
    assert.equal(failed(['%%%']), 'invalid-base64');
    assert.equal(failed(['']), 'malformed');
    assert.equal(failed([b64('a\0b')]), 'malformed');
    assert.equal(failed([b64('x'.repeat(17))]), 'too-long');
    assert.equal(failed([b64('x'.repeat(16)), b64('y')]), 'done');
  });

  it('decodeLoginStep decodes one response', () => {
    assert.deepEqual(decodeLoginStep(b64('john')), { ok: true, value: 'john' });
    const bad = decodeLoginStep('*');
    assert.ok(!bad.ok && bad.reason === 'cancelled' && bad.error.length > 0);
  });

  it('decodeResponse: "=" and empty are empty, "*" cancels', () => {
    const e = decodeResponse('=', 10);
    assert.ok(e.ok && e.bytes.length === 0);
    const c = decodeResponse('*', 10);
    assert.ok(!c.ok && c.reason === 'cancelled');
  });
});
