/**
 * DKIM keys and signatures end to end:
 * - `fulmar domain dkim NAME` makes a key (RSA 2048 by default, Ed25519 with --algorithm), stores
 *   it and prints the TXT record; `--show` prints it again; mistakes are explained;
 * - a message signed by dkimSignatureFor with the stored key verifies with the printed record:
 *   by mailauth (through our own port 25 and a DNS server on loopback serving that record) and
 *   by an independent verifier, dkimpy (Debian's python3-dkim, run by /usr/bin/python3);
 * - signingKeyFor picks the key of the From domain, else of the envelope sender's domain.
 *
 * One server for the file; each test has its own domain.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { defaultSelector } from '../../src/filters/dkim-keys.js';
import { dkimSignatureFor, signingKeyFor } from '../../src/filters/dkim-sign.js';
import type { DkimKey, Store } from '../../src/store/types.js';
import { TestDnsServer } from './dns-server.js';
import { FulmarProcess, readMailbox } from './harness.js';
import { Admin, codes, SmtpWire, unique } from './smtp-wire.js';

const LOCAL = 'dkimrcpt.test';
let f: FulmarProcess;
let admin: Admin;
let dns: TestDnsServer;
let scratch: string;

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'fulmar-dkim-'));
  dns = await new TestDnsServer().start();
  f = await FulmarProcess.create();
  admin = await Admin.open(f);
  await admin.addDomain(LOCAL);
  await admin.set('dns.servers', dns.address);
  // The harness turns the checks off for other tests; here they are the subject.
  await admin.set('smtp.auth_checks', 'true');
  await f.start();
});

after(async () => {
  await admin.close();
  const code = await f.stop();
  f.cleanup();
  await dns.stop();
  rmSync(scratch, { recursive: true, force: true });
  assert.equal(code, 0, 'the server exits cleanly on SIGTERM');
});

async function withStore<T>(fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await f.openStore();
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

async function storedKey(domain: string): Promise<DkimKey> {
  const key = await withStore((store) => store.directory.getDkimKey(domain));
  assert.ok(key, `a key is stored for ${domain}`);
  return key;
}

/** A zone-file line `name. IN TXT "a" "b"` → the name and its character-strings. */
function parseRecord(line: string): { name: string; strings: string[] } {
  const m = /^(\S+)\. IN TXT ((?:"[^"]*" ?)+)$/.exec(line.trim());
  assert.ok(m, `a zone-file TXT line: ${line}`);
  return { name: m[1]!, strings: [...m[2]!.matchAll(/"([^"]*)"/g)].map((x) => x[1]!) };
}

function message(from: string, to: string, subject: string): Buffer {
  return Buffer.from(
    `From: "Ann Example" <${from}>\r\nTo: Bob <${to}>\r\nCc: carol@elsewhere.example\r\nSubject: ${subject}\r\n` +
      `Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <${unique('m')}@${from.split('@')[1]}>\r\n` +
      `MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n` +
      `X-Mailer: not signed\r\n\r\n` +
      `Grüße,\r\n\r\n  trailing spaces and   inner runs   \r\n.leading dot\r\n\r\n\r\n`,
  );
}

/** dkimpy's verdict on a message, with the TXT records it may look up given as a table. */
function dkimpyVerify(signed: Buffer, records: Record<string, string>): { ok: boolean; log: string } {
  const file = join(scratch, `${unique('msg')}.eml`);
  writeFileSync(file, signed);
  const script = `
import dkim, json, logging, os, sys, io
records = json.loads(os.environ['RECORDS'])
def dnsfunc(name, timeout=5):
    value = records.get(name.decode('ascii').rstrip('.').lower())
    return value.encode('ascii') if value is not None else None
stream = io.StringIO()
logger = logging.getLogger('dkim'); logger.addHandler(logging.StreamHandler(stream)); logger.setLevel(logging.DEBUG)
msg = open(os.environ['MSG'], 'rb').read()
ok = dkim.verify(msg, logger=logger, dnsfunc=dnsfunc)
print(json.dumps({'ok': bool(ok), 'log': stream.getvalue()}))
`;
  const r = spawnSync('/usr/bin/python3', ['-c', script], { encoding: 'utf8', env: { ...process.env, RECORDS: JSON.stringify(records), MSG: file }, timeout: 60_000 });
  assert.equal(r.status, 0, `dkimpy ran (apt-get install python3-dkim): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { ok: boolean; log: string };
}

/** Sends a message to our own port 25 and returns the stored copy's Authentication-Results. */
async function receiveOn25(mailFrom: string, rcpt: string, bytes: Buffer): Promise<string> {
  const w = await SmtpWire.greeted(f.ports.smtp);
  try {
    await w.ehlo('client.example');
    assert.equal((await w.cmd(`MAIL FROM:<${mailFrom}>`)).code, 250);
    assert.equal((await w.cmd(`RCPT TO:<${rcpt}>`)).code, 250);
    assert.equal((await w.cmd('DATA')).code, 354);
    // rfc5321 4.5.2: lines that begin with a dot are sent with one more.
    const stuffed = Buffer.from(bytes.toString('latin1').replace(/(^|\r\n)\./g, '$1..'), 'latin1');
    w.write(Buffer.concat([stuffed, Buffer.from('.\r\n')]));
    const reply = await w.read(20_000);
    assert.equal(codes(reply), '250 2.0.0', reply.raw);
  } finally {
    w.close();
  }
  const [stored] = await withStore((store) => readMailbox(store, rcpt));
  const m = /^Authentication-Results:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*/m.exec(stored!);
  assert.ok(m, 'the copy has an Authentication-Results header');
  return m[0].replace(/\r\n[ \t]+/g, ' ');
}

for (const algorithm of ['rsa', 'ed25519'] as const) {
  test(`domain dkim (${algorithm}): the printed record verifies our signatures in mailauth and in dkimpy`, async () => {
    const domain = `${unique(`signer${algorithm}`)}.example`;
    await admin.addDomain(domain);
    const args = algorithm === 'rsa' ? [] : ['--algorithm', 'ed25519', '--selector', 'ed2026'];
    const made = f.cliResult('domain', 'dkim', domain, ...args);
    assert.equal(made.status, 0, made.stderr);
    assert.match(made.stderr, new RegExp(`created a ${algorithm === 'rsa' ? 'RSA 2048' : 'Ed25519'} DKIM key for ${domain.replace(/\./g, '\\.')}`));
    const line = made.stdout.trim();
    const selector = algorithm === 'rsa' ? defaultSelector() : 'ed2026';
    const record = parseRecord(line);
    assert.equal(record.name, `${selector}._domainkey.${domain}`);
    const value = record.strings.join('');
    assert.match(value, new RegExp(`^v=DKIM1; k=${algorithm}; p=[A-Za-z0-9+/]+=*$`));
    assert.ok(record.strings.every((s) => s.length <= 255));
    if (algorithm === 'rsa') {
      assert.ok(record.strings.length >= 2, 'a 2048-bit key needs more than one 255-octet string');
      assert.ok(Buffer.from(value.split('p=')[1]!, 'base64').length > 256, 'a 2048-bit SPKI');
    } else {
      assert.equal(Buffer.from(value.split('p=')[1]!, 'base64').length, 32);
    }
    // --show prints the same record without making a new key.
    assert.equal(f.cli('domain', 'dkim', domain, '--show').trim(), line);

    const key = await storedKey(domain);
    assert.equal(key.selector, selector);
    assert.equal(key.algorithm, `${algorithm}-sha256`);

    // The queue worker's view: the From domain's key.
    const signing = await withStore((store) => signingKeyFor(`"Ann Example" <ann@${domain}>`, store.directory));
    assert.equal(signing?.domain, domain);
    assert.equal(signing?.key.selector, selector);

    const rcpt = `${unique('bob')}@${LOCAL}`;
    await admin.addUsers([rcpt]);
    const original = message(`ann@${domain}`, rcpt, `signed with ${algorithm}`);
    const signature = await dkimSignatureFor(original, signing!);
    const unfolded = signature.replace(/\r\n[ \t]+/g, ' ');
    assert.match(unfolded, new RegExp(`^DKIM-Signature: v=1; a=${algorithm}-sha256; c=relaxed/relaxed; d=${domain.replace(/\./g, '\\.')}; h=`));
    const signedHeaders = /h=([^;]+);/.exec(unfolded)![1]!.split(':').map((h) => h.trim().toLowerCase()).sort();
    assert.deepEqual(signedHeaders, ['cc', 'content-transfer-encoding', 'content-type', 'date', 'from', 'message-id', 'mime-version', 'subject', 'to']);
    const signed = Buffer.concat([Buffer.from(signature), original]);

    // mailauth, through our port 25 and the published record in a real DNS server.
    dns.set(record.name, { txt: [record.strings] });
    dns.set(domain, { txt: [['v=spf1 ip4:127.0.0.1 -all']] });
    dns.set(`_dmarc.${domain}`, { txt: [['v=DMARC1; p=reject; adkim=s']] });
    const ar = await receiveOn25(`ann@${domain}`, rcpt, signed);
    assert.match(ar, new RegExp(`dkim=pass header\\.i=@${domain.replace(/\./g, '\\.')} header\\.s=${selector} header\\.a=${algorithm}-sha256`));
    assert.match(ar, /dmarc=pass/);

    // dkimpy, given the same record.
    const verdict = dkimpyVerify(signed, { [record.name]: value });
    assert.equal(verdict.ok, true, verdict.log);
    // And it notices a change to a signed header.
    const tampered = Buffer.from(signed.toString('utf8').replace(`Subject: signed with ${algorithm}`, 'Subject: changed'), 'utf8');
    assert.equal(dkimpyVerify(tampered, { [record.name]: value }).ok, false);
    // Or to the body.
    const bodyChanged = Buffer.from(signed.toString('utf8').replace('.leading dot', '.leading dog'), 'utf8');
    assert.equal(dkimpyVerify(bodyChanged, { [record.name]: value }).ok, false);
  });
}

test('signingKeyFor falls back to the envelope sender domain, and signs nothing for a domain without a key', async () => {
  const withKey = `${unique('keyed')}.example`;
  const without = `${unique('plain')}.example`;
  await admin.addDomain(withKey);
  await admin.addDomain(without);
  f.cli('domain', 'dkim', withKey, '--algorithm', 'ed25519');
  await withStore(async (store) => {
    assert.equal((await signingKeyFor(`x@${without}`, store.directory, `bounce@${withKey}`))?.domain, withKey);
    assert.equal(await signingKeyFor(`x@${without}`, store.directory), null);
    assert.equal(await signingKeyFor('x@not-local.example', store.directory, 'y@other.example'), null);
  });
});

test('domain dkim: mistakes are explained with the way out', async () => {
  const domain = `${unique('errs')}.example`;
  const unknown = f.cliResult('domain', 'dkim', domain);
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, new RegExp(`${domain.replace(/\./g, '\\.')} is not a local domain; add it with: fulmar domain add ${domain.replace(/\./g, '\\.')}`));

  await admin.addDomain(domain);
  const noKey = f.cliResult('domain', 'dkim', domain, '--show');
  assert.equal(noKey.status, 1);
  assert.match(noKey.stderr, /has no DKIM key yet; create one with: fulmar domain dkim/);

  const badAlgorithm = f.cliResult('domain', 'dkim', domain, '--algorithm', 'dsa');
  assert.equal(badAlgorithm.status, 1);
  assert.match(badAlgorithm.stderr, /unknown DKIM algorithm "dsa"; use rsa .* or ed25519/);
  const badSelector = f.cliResult('domain', 'dkim', domain, '--selector', 'no good');
  assert.equal(badSelector.status, 1);
  assert.match(badSelector.stderr, /"no good" is not a valid DKIM selector/);

  const first = f.cli('domain', 'dkim', domain, '--algorithm', 'ed25519', '--selector', 'one');
  const again = f.cliResult('domain', 'dkim', domain);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already has a DKIM key \(selector one, created \d{4}-\d\d-\d\d\); print its record with: fulmar domain dkim .* --show, or replace it with --force/);
  assert.equal(f.cli('domain', 'dkim', domain, '--show'), first, 'the key was kept');

  const replaced = f.cliResult('domain', 'dkim', domain, '--algorithm', 'ed25519', '--selector', 'two', '--force');
  assert.equal(replaced.status, 0, replaced.stderr);
  assert.match(replaced.stderr, /replaced the Ed25519 DKIM key/);
  assert.match(replaced.stdout, /^two\._domainkey\./);
  assert.equal((await storedKey(domain)).selector, 'two');
});
