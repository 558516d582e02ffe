/**
 * The fixtures for the POP3 collector's tests, checked with a client we did not write (Python's
 * poplib): the throwaway Dovecot (dovecot-pop3.ts) on its plain port, with STLS and on its
 * implicit-TLS port, USER/PASS and APOP; and the no-UIDL proxy (pop3-no-uidl-proxy.ts) in front
 * of it. Python runs asynchronously: the proxy lives in this process and must keep answering.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { type DovecotPop3, startDovecotPop3 } from './dovecot-pop3.js';
import { startNoUidlProxy } from './pop3-no-uidl-proxy.js';

let d: DovecotPop3;

before(async () => {
  d = await startDovecotPop3();
});
after(async () => {
  await d?.stop();
});

/** Python prelude: poplib with ports from the environment, answers and errors as JSON-able values. */
const PRELUDE = String.raw`
import poplib, ssl, json, os
H = '127.0.0.1'
PORT = int(os.environ['PORT']); TLSPORT = int(os.environ.get('TLSPORT', '0'))
def unverified():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c
def t(b):
    return b.decode('latin-1') if isinstance(b, (bytes, bytearray)) else b
def r(fn, *a):
    try:
        res = fn(*a)
    except poplib.error_proto as e:
        return 'EXC ' + t(e.args[0])
    if isinstance(res, tuple) and len(res) == 3 and isinstance(res[1], list):
        return [t(res[0]), [t(l) for l in res[1]]]
    return t(res) if isinstance(res, (bytes, str)) else list(res)
def body(p, n):
    return '\r\n'.join(t(l) for l in p.retr(n)[1])
out = {}
`;

function python(script: string, env: Record<string, string | number>): Promise<Record<string, unknown>> {
  return new Promise((res, rej) => {
    execFile(
      'python3',
      ['-c', PRELUDE + script + '\nprint(json.dumps(out))'],
      { env: { ...process.env, ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])) }, timeout: 20_000 },
      (err, stdout, stderr) => {
        if (err) rej(new Error(`python failed: ${err.message}\n${stderr}\n--- dovecot.log ---\n${d.log()}`));
        else res(JSON.parse(stdout) as Record<string, unknown>);
      },
    );
  });
}

const USER = 'collector@isp.test';
const M1 = 'From: a@example.com\r\nSubject: one\r\n\r\nfirst, CRLF lines\r\n';
const M2 = 'From: b@example.com\nSubject: two\n\nsecond, LF lines\n.leading dot\n';
const M3 = Buffer.from('From: c@example.com\r\nSubject: three\r\nContent-Type: text/plain; charset=latin1\r\n\r\nd\xe9j\xe0 8-bit\r\n', 'latin1');
/** What RETR gives back (poplib's lines joined by CRLF, without the final CRLF). */
const asRetr = (m: string | Buffer): string => (typeof m === 'string' ? m : m.toString('latin1')).replace(/\r?\n/g, '\r\n').replace(/\r\n$/, '');

test('Dovecot POP3: STAT, UIDL and RETR over plain, STLS and implicit TLS; APOP; DELE; clear keeps the UIDs going', async () => {
  d.addUser('Collector@ISP.test', 'secret');
  d.addUser('hashed@isp.test', 'secret2', { apop: false });
  d.deliver(USER, M1, { mtime: new Date('2020-01-02T03:04:05Z') });
  d.deliver(USER, M2);
  const name = d.deliver(USER, M3);
  assert.match(name, /^\d+\.M\d+P\d+\.fulmar-test,S=\d+$/);
  assert.equal(d.count(USER), 3);

  const got = await python(
    String.raw`
p = poplib.POP3(H, PORT, timeout=10)
out['greeting'] = t(p.getwelcome())
out['capa'] = sorted(p.capa().keys())
out['login'] = [r(p.user, 'collector@isp.test'), r(p.pass_, 'secret')]
out['stat'] = list(p.stat())
out['uidl'] = r(p.uidl)
out['bodies'] = [body(p, n) for n in (1, 2, 3)]
p.quit()

p = poplib.POP3(H, PORT, timeout=10)
out['stls'] = r(p.stls, unverified())
out['stls_capa'] = sorted(p.capa().keys())
out['stls_login'] = [r(p.user, 'collector@isp.test'), r(p.pass_, 'secret')]
out['stls_stat'] = list(p.stat())
out['stls_uidl'] = r(p.uidl)
p.quit()

# Implicit TLS, verified against the fixture's certificate (it names 127.0.0.1 and localhost).
c = ssl.create_default_context(cafile=os.environ['CERT'])
p = poplib.POP3_SSL(H, TLSPORT, context=c, timeout=10)
out['ssl_login'] = [r(p.user, 'collector@isp.test'), r(p.pass_, 'secret')]
out['ssl_stat'] = list(p.stat())
out['ssl_retr3'] = body(p, 3)
p.quit()

p = poplib.POP3(H, PORT, timeout=10)
out['apop'] = r(p.apop, 'collector@isp.test', 'secret')
out['apop_stat'] = list(p.stat())
p.quit()
p = poplib.POP3(H, PORT, timeout=10)
out['apop_wrong'] = r(p.apop, 'collector@isp.test', 'wrong')
p.quit()
p = poplib.POP3(H, PORT, timeout=10)
out['apop_hashed'] = r(p.apop, 'hashed@isp.test', 'secret2')
p.quit()
p = poplib.POP3(H, PORT, timeout=10)
out['pass_hashed'] = [r(p.user, 'hashed@isp.test'), r(p.pass_, 'secret2')]
p.quit()

p = poplib.POP3(H, PORT, timeout=10)
p.user('collector@isp.test'); p.pass_('secret')
out['dele'] = r(p.dele, 1)
p.quit()
`,
    { PORT: d.port, TLSPORT: d.tlsPort, CERT: d.certFile },
  );

  assert.match(got.greeting as string, /^\+OK .*<[^>]+@[^>]+>$/, 'APOP timestamp in the greeting');
  for (const key of ['capa', 'stls_capa']) assert.ok((got[key] as string[]).includes('UIDL'), key);
  assert.ok((got.capa as string[]).includes('STLS'));
  assert.ok(!(got.stls_capa as string[]).includes('STLS'), 'no STLS under TLS');
  for (const key of ['login', 'stls_login', 'ssl_login', 'pass_hashed']) assert.match((got[key] as string[])[1]!, /^\+OK/, key);
  assert.match(got.stls as string, /^\+OK/);

  const sizes = [M1, M2, M3].map((m) => asRetr(m).length + 2);
  const total = sizes.reduce((a, b) => a + b, 0);
  for (const key of ['stat', 'stls_stat', 'ssl_stat', 'apop_stat']) assert.deepEqual(got[key], [3, total], key);

  const [status, lines] = got.uidl as [string, string[]];
  assert.match(status, /^\+OK/);
  assert.equal(lines.length, 3);
  const validity = lines[0]!.slice(10);
  assert.match(validity, /^[0-9a-fA-F]{8}$/);
  assert.deepEqual(lines, [1, 2, 3].map((n) => `${n} 0000000${n}${validity}`), 'UIDs in delivery order, %08Xu%08Xv');
  assert.deepEqual(got.stls_uidl, got.uidl);

  assert.deepEqual(got.bodies, [M1, M2, M3].map(asRetr));
  assert.equal(got.ssl_retr3, asRetr(M3));

  assert.match(got.apop as string, /^\+OK/);
  assert.match(got.apop_wrong as string, /^EXC -ERR/);
  assert.match(got.apop_hashed as string, /^EXC -ERR/, 'APOP needs the plaintext password');

  assert.match(got.dele as string, /^\+OK/);
  assert.equal(d.count(USER), 2, 'DELE then QUIT removed the file');
  d.clear(USER);
  assert.equal(d.count(USER), 0);
  d.deliver(USER, M1);
  const again = await python(
    String.raw`
p = poplib.POP3(H, PORT, timeout=10)
p.user('collector@isp.test'); p.pass_('secret')
out['uidl'] = r(p.uidl)
p.quit()
`,
    { PORT: d.port },
  );
  assert.deepEqual((again.uidl as [string, string[]])[1], [`1 00000004${validity}`], 'UIDs go on after clear()');
  assert.match(d.log(), /Login: user=<collector@isp\.test>, method=APOP/);
});

test('no-UIDL proxy: UIDL is an unknown command, CAPA lacks it, the rest passes; STLS in the proxy; pipelining keeps the order', async () => {
  const user = 'old@isp.test';
  d.addUser(user, 'secret');
  d.deliver(user, M1);
  d.deliver(user, M2);
  const proxy = await startNoUidlProxy(d.port, { tls: { certFile: d.certFile, keyFile: d.keyFile } });
  const bare = await startNoUidlProxy(d.port);
  try {
    const got = await python(
      String.raw`
p = poplib.POP3(H, PORT, timeout=10)
out['greeting'] = t(p.getwelcome())
out['capa'] = sorted(p.capa().keys())
out['login'] = [r(p.user, 'old@isp.test'), r(p.pass_, 'secret')]
out['uidl'] = r(p.uidl)
out['uidl1'] = r(p.uidl, 1)
out['stat'] = list(p.stat())
out['list'] = r(p.list)
out['retr2'] = body(p, 2)
out['top'] = r(p.top, 1, 0)
out['capa_after'] = sorted(p.capa().keys())
p.quit()

p = poplib.POP3(H, PORT, timeout=10)
out['stls'] = r(p.stls, unverified())
out['stls_capa'] = sorted(p.capa().keys())
out['stls_login'] = [r(p.user, 'old@isp.test'), r(p.pass_, 'secret')]
out['stls_uidl'] = r(p.uidl)
out['stls_retr1'] = body(p, 1)
p.quit()

p = poplib.POP3(H, int(os.environ['BARE']), timeout=10)
out['bare_capa'] = sorted(p.capa().keys())
try:
    p._shortcmd('STLS')
    out['bare_stls'] = 'accepted'
except poplib.error_proto as e:
    out['bare_stls'] = 'EXC ' + t(e.args[0])
out['bare_login'] = [r(p.user, 'old@isp.test'), r(p.pass_, 'secret')]
p.quit()
`,
      { PORT: proxy.port, BARE: bare.port },
    );
    assert.match(got.greeting as string, /<[^>]+>/, 'the server greeting passes through');
    assert.ok(!(got.capa as string[]).includes('UIDL'));
    assert.ok((got.capa as string[]).includes('TOP') && (got.capa as string[]).includes('STLS'), String(got.capa));
    assert.match((got.login as string[])[1]!, /^\+OK/);
    assert.equal(got.uidl, 'EXC -ERR unknown command');
    assert.equal(got.uidl1, 'EXC -ERR unknown command');
    assert.deepEqual(got.stat, [2, asRetr(M1).length + 2 + asRetr(M2).length + 2]);
    assert.equal((got.list as [string, string[]])[1].length, 2);
    assert.equal(got.retr2, asRetr(M2));
    assert.deepEqual((got.top as [string, string[]])[1], ['From: a@example.com', 'Subject: one', '']);
    assert.ok(!(got.capa_after as string[]).includes('UIDL'));

    assert.match(got.stls as string, /^\+OK/);
    assert.ok(!(got.stls_capa as string[]).includes('UIDL') && !(got.stls_capa as string[]).includes('STLS'), String(got.stls_capa));
    assert.match((got.stls_login as string[])[1]!, /^\+OK/);
    assert.equal(got.stls_uidl, 'EXC -ERR unknown command');
    assert.equal(got.stls_retr1, asRetr(M1));

    assert.ok(!(got.bare_capa as string[]).includes('STLS') && !(got.bare_capa as string[]).includes('UIDL'));
    assert.equal(got.bare_stls, 'EXC -ERR unknown command');
    assert.match((got.bare_login as string[])[1]!, /^\+OK/);

    // Pipelined: the proxy's own answer to UIDL comes between the server's answers, in order.
    const replies = await new Promise<string>((res, rej) => {
      const s = connect(proxy.port, '127.0.0.1');
      let text = '';
      s.on('data', (b: Buffer) => {
        text += b.toString('latin1');
        if (text.includes('+OK Logging out')) s.end();
      });
      s.on('end', () => res(text));
      s.on('error', rej);
      s.once('data', () => s.write(`CAPA\r\nUIDL\r\nUSER ${user}\r\nPASS secret\r\nUIDL 1\r\nLIST\r\nSTAT\r\nQUIT\r\n`));
      setTimeout(() => rej(new Error(`no QUIT reply: ${text}`)), 5_000).unref();
    });
    const lines = replies.split('\r\n');
    const capaEnd = lines.indexOf('.');
    assert.ok(capaEnd > 0 && !lines.slice(0, capaEnd).includes('UIDL'), replies);
    assert.equal(lines[capaEnd + 1], '-ERR unknown command', replies);
    assert.match(lines[capaEnd + 2]!, /^\+OK/, replies);
    assert.match(lines[capaEnd + 3]!, /^\+OK Logged in/, replies);
    assert.equal(lines[capaEnd + 4], '-ERR unknown command', replies);
    assert.match(lines[capaEnd + 5]!, /^\+OK 2 messages/, replies);
    assert.match(lines[capaEnd + 9]!, /^\+OK 2 \d+$/, replies);
    assert.match(lines[capaEnd + 10]!, /^\+OK Logging out/, replies);
  } finally {
    await proxy.close();
    await bare.close();
  }
});
