/**
 * Sender and message authentication on the wire, with a real DNS server on loopback (dns2)
 * serving the SPF, DKIM and DMARC records of made-up sender domains:
 * - port 25: SPF, DKIM, DMARC and ARC checked, Authentication-Results in each delivered copy
 *   (the stored blob unchanged); DMARC p=reject refused with 550 5.7.1 and nothing stored, or
 *   delivered to Junk when smtp.dmarc_reject is off; p=quarantine to Junk; a dead DNS server
 *   delays but never refuses (temperror); smtp.auth_checks off skips it all;
 * - submission (587, smtplib): MAIL FROM must be an address the user owns (own address, an
 *   alias that reaches them, the send-as list), else 553 5.7.1.
 *
 * One server for the file; each test has its own accounts and its own sender domain.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { generateDkimKey, dkimTxtValue } from '../../src/filters/dkim-keys.js';
import { dkimSignatureFor } from '../../src/filters/dkim-sign.js';
import type { Store } from '../../src/store/types.js';
import { TestDnsServer } from './dns-server.js';
import { FulmarProcess, readMailbox } from './harness.js';
import { Admin, codes, python3, SmtpWire, unique } from './smtp-wire.js';

const DOMAIN = 'authchecks.test';
let f: FulmarProcess;
let admin: Admin;
let dns: TestDnsServer;

before(async () => {
  dns = await new TestDnsServer().start();
  f = await FulmarProcess.create();
  admin = await Admin.open(f);
  await admin.addDomain(DOMAIN);
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

async function mailboxes(address: string): Promise<{ inbox: string[]; junk: string[] }> {
  return withStore(async (store) => ({ inbox: await readMailbox(store, address), junk: await readMailbox(store, address, 'Junk') }));
}

/** A new local account. */
async function newUser(label: string): Promise<string> {
  const address = `${unique(label)}@${DOMAIN}`;
  await admin.addUsers([address]);
  return address;
}

/** Sets the TXT record of a name; values longer than 255 octets become several strings. */
function txt(name: string, value: string): void {
  const strings: string[] = [];
  for (let i = 0; i < value.length; i += 255) strings.push(value.slice(i, i + 255));
  dns.set(name, { txt: [strings] });
}

/** A sender domain of its own in the test DNS: SPF for 127.0.0.1, and the given DMARC policy. */
function senderDomain(label: string, dmarc: string | null, spf = 'v=spf1 ip4:127.0.0.1 -all'): string {
  const domain = `${unique(label)}.example`;
  txt(domain, spf);
  if (dmarc !== null) txt(`_dmarc.${domain}`, dmarc);
  return domain;
}

/** Sends one message on port 25 and returns the reply to the end of data. */
async function send25(options: { helo?: string; mailFrom: string; rcpt: string; message: Buffer | string; timeoutMs?: number }): Promise<string> {
  const w = await SmtpWire.greeted(f.ports.smtp);
  try {
    await w.ehlo(options.helo ?? 'client.example');
    const mail = await w.cmd(`MAIL FROM:<${options.mailFrom}>`);
    assert.equal(mail.code, 250, mail.raw);
    const rcpt = await w.cmd(`RCPT TO:<${options.rcpt}>`);
    assert.equal(rcpt.code, 250, rcpt.raw);
    const data = await w.cmd('DATA');
    assert.equal(data.code, 354, data.raw);
    const body = Buffer.isBuffer(options.message) ? options.message : Buffer.from(options.message);
    w.write(Buffer.concat([body, Buffer.from('.\r\n')]));
    const reply = await w.read(options.timeoutMs ?? 20_000);
    await w.cmd('QUIT').catch(() => null);
    return `${codes(reply)} ${reply.lines.join(' ')}`;
  } finally {
    w.close();
  }
}

function message(from: string, to: string, subject: string): Buffer {
  return Buffer.from(
    `From: Sender <${from}>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n` +
      `Message-ID: <${unique('m')}@${from.split('@')[1]}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n` +
      `Hello,\r\n\r\nthis is ${subject}.\r\n`,
  );
}

/** The Authentication-Results field of a stored copy, unfolded. */
function authResults(stored: string): string {
  const m = /^Authentication-Results:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*/m.exec(stored);
  assert.ok(m, `no Authentication-Results in:\n${stored.slice(0, 600)}`);
  return m[0].replace(/\r\n[ \t]+/g, ' ');
}

test('port 25: DKIM-signed mail from an SPF-listed IP passes SPF, DKIM and DMARC; the header is in the delivered copy, not the blob', async () => {
  const rcpt = await newUser('pass');
  const domain = senderDomain('signer', 'v=DMARC1; p=reject');
  const key = generateDkimKey('rsa', 'sel1');
  txt(`sel1._domainkey.${domain}`, dkimTxtValue(key));
  const original = message(`ann@${domain}`, rcpt, 'signed mail');
  const signed = Buffer.concat([Buffer.from(await dkimSignatureFor(original, { domain, key })), original]);

  const reply = await send25({ helo: `mail.${domain}`, mailFrom: `ann@${domain}`, rcpt, message: signed });
  assert.match(reply, /^250 2\.0\.0/);

  const { inbox, junk } = await mailboxes(rcpt);
  assert.equal(inbox.length, 1);
  assert.equal(junk.length, 0);
  const stored = inbox[0]!;
  const ar = authResults(stored);
  assert.match(ar, /^Authentication-Results: mx\.fulmar\.test; /);
  assert.match(ar, new RegExp(`spf=pass .*smtp\\.mailfrom=ann@${domain.replace(/\./g, '\\.')}`));
  assert.match(ar, new RegExp(`dkim=pass header\\.i=@${domain.replace(/\./g, '\\.')} header\\.s=sel1 header\\.a=rsa-sha256`));
  assert.match(ar, new RegExp(`dmarc=pass .*header\\.from=${domain.replace(/\./g, '\\.')}`));
  assert.match(ar, /arc=none/);
  // Order of the copy: Return-Path & co., Authentication-Results, then the blob (Received first).
  const names = stored.split('\r\n\r\n')[0]!.split('\r\n').filter((l) => /^[A-Za-z-]+:/.test(l)).map((l) => l.split(':')[0]);
  assert.deepEqual(names.slice(0, 5), ['Return-Path', 'Delivered-To', 'X-Rcpt-To', 'Authentication-Results', 'Received']);
  assert.ok(stored.endsWith(signed.toString()), 'the signed message is stored byte for byte after our headers');

  // The shared blob itself has no Authentication-Results: it is in the per-delivery prefix.
  await withStore(async (store) => {
    const account = await store.directory.getAccount(rcpt);
    const box = await store.mail.getMailbox(account!.id, 'INBOX');
    const [record] = await store.mail.listMessages(box!.id);
    const chunks: Buffer[] = [];
    for await (const c of store.blobs.open(record!.blobHash)) chunks.push(c as Buffer);
    assert.ok(!Buffer.concat(chunks).toString().includes('Authentication-Results'));
  });
  const asked = dns.queries.map((q) => `${q.name}/${q.type}`);
  assert.ok(asked.includes(`sel1._domainkey.${domain}/TXT`) && asked.includes(`_dmarc.${domain}/TXT`));
});

test('port 25: Ed25519-signed mail with a null sender: SPF checks the HELO name, DKIM and DMARC pass', async () => {
  const rcpt = await newUser('ed');
  const domain = senderDomain('edsigner', 'v=DMARC1; p=quarantine');
  txt(`mail.${domain}`, 'v=spf1 ip4:127.0.0.1 -all');
  const key = generateDkimKey('ed25519', 'ed1');
  txt(`ed1._domainkey.${domain}`, dkimTxtValue(key));
  const original = message(`notify@${domain}`, rcpt, 'a bounce');
  const signed = Buffer.concat([Buffer.from(await dkimSignatureFor(original, { domain, key })), original]);
  assert.match(await send25({ helo: `mail.${domain}`, mailFrom: '', rcpt, message: signed }), /^250 /);
  const { inbox } = await mailboxes(rcpt);
  const ar = authResults(inbox[0]!);
  assert.match(ar, /spf=pass .*smtp\.mailfrom=postmaster@mail\./);
  assert.match(ar, /dkim=pass .*header\.a=ed25519-sha256/);
  assert.match(ar, /dmarc=pass/);
});

test('port 25: a forged From under p=reject is refused with 550 5.7.1 and nothing is stored', async () => {
  const rcpt = await newUser('forged');
  const bank = senderDomain('bank', 'v=DMARC1; p=reject', 'v=spf1 ip4:192.0.2.1 -all');
  const spammer = senderDomain('spammer', null);
  const reply = await send25({ mailFrom: `x@${spammer}`, rcpt, message: message(`ceo@${bank}`, rcpt, 'wire the money') });
  assert.equal(reply, `550 5.7.1 Email rejected per DMARC policy for ${bank}`);
  const { inbox, junk } = await mailboxes(rcpt);
  assert.deepEqual([inbox.length, junk.length], [0, 0]);
  const refused = f.events('smtp.refused').find((e) => e.reason === 'dmarc-reject' && e.from === `x@${spammer}`);
  assert.ok(refused, 'the refusal is logged');
});

test('port 25: with smtp.dmarc_reject off the p=reject failure goes to Junk; p=quarantine goes to Junk anyway', async () => {
  const rcpt = await newUser('junk');
  const bank = senderDomain('bank2', 'v=DMARC1; p=reject', 'v=spf1 -all');
  await admin.withSettings({ 'smtp.dmarc_reject': 'false' }, async () => {
    assert.match(await send25({ mailFrom: `x@${bank}`, rcpt, message: message(`ceo@${bank}`, rcpt, 'rejected one') }), /^250 /);
  });
  const shop = senderDomain('shop', 'v=DMARC1; p=quarantine', 'v=spf1 -all');
  assert.match(await send25({ mailFrom: `x@${shop}`, rcpt, message: message(`news@${shop}`, rcpt, 'quarantined one') }), /^250 /);
  const { inbox, junk } = await mailboxes(rcpt);
  assert.equal(inbox.length, 0);
  assert.equal(junk.length, 2);
  assert.match(authResults(junk[0]!), /spf=fail .*dmarc=fail \(p=REJECT/);
  assert.match(authResults(junk[1]!), /dmarc=fail \(p=QUARANTINE/);
  assert.match(junk[0]!, /Subject: rejected one/);
});

test('port 25: a DNS server that never answers delays the message but delivers it, with temperror results', async () => {
  const rcpt = await newUser('dnsdown');
  const domain = `${unique('unreachable')}.example`;
  // The server reads these queries and never answers them: every lookup times out.
  for (const name of [domain, `_dmarc.${domain}`, `client.example`]) dns.silent.add(name);
  const started = Date.now();
  const reply = await send25({ mailFrom: `ann@${domain}`, rcpt, message: message(`ann@${domain}`, rcpt, 'dns down'), timeoutMs: 60_000 });
  const ms = Date.now() - started;
  assert.match(reply, /^250 /);
  assert.ok(ms < 20_000, `the checks gave up within their budget (${ms} ms)`);
  const { inbox } = await mailboxes(rcpt);
  assert.equal(inbox.length, 1);
  const ar = authResults(inbox[0]!);
  assert.match(ar, /spf=temperror/);
  assert.match(ar, /dmarc=temperror/);
});

test('port 25: smtp.auth_checks off adds no header and refuses nothing', async () => {
  const rcpt = await newUser('off');
  const bank = senderDomain('bank3', 'v=DMARC1; p=reject', 'v=spf1 -all');
  const before = dns.queries.length;
  await admin.set('smtp.auth_checks', 'false');
  try {
    assert.match(await send25({ mailFrom: `x@${bank}`, rcpt, message: message(`ceo@${bank}`, rcpt, 'unchecked') }), /^250 /);
  } finally {
    await admin.set('smtp.auth_checks', 'true');
  }
  const { inbox } = await mailboxes(rcpt);
  assert.equal(inbox.length, 1);
  assert.ok(!inbox[0]!.includes('Authentication-Results'));
  assert.equal(dns.queries.slice(before).filter((q) => q.name.includes(bank)).length, 0, 'no DNS lookups');
});

// ---- submission: whose addresses an authenticated user may send from

const PY = `
import smtplib, ssl, json, os
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def r(t):
    code, msg = t
    return [code, msg.decode('utf-8', 'replace') if isinstance(msg, bytes) else msg]
s = smtplib.SMTP('127.0.0.1', int(os.environ['P587']), timeout=30)
s.ehlo('client.example'); s.starttls(context=ctx); s.ehlo('client.example')
s.login(os.environ['U'], 'secret')
out = {}
for sender in json.loads(os.environ['SENDERS']):
    res = r(s.mail(sender))
    if res[0] == 250:
        rc = r(s.rcpt(os.environ['RCPT']))
        d = r(s.data(('From: <%s>\\r\\nSubject: as %s\\r\\n\\r\\nhi\\r\\n' % (sender or os.environ['U'], sender)).encode()))
        res = res + [rc[0], d[0]]
    else:
        s.rset()
    out[sender] = res
s.quit()
print(json.dumps(out))
`;

test('submission: own address, aliases that reach the user, send-as addresses and domains, and <> are allowed; others get 553 5.7.1', async () => {
  const user = await newUser('sub');
  const other = await newUser('other');
  const rcpt = await newUser('subrcpt');
  const alias = `${unique('team')}@${DOMAIN}`;
  const foreignAlias = `${unique('notmine')}@${DOMAIN}`;
  await admin.addAlias(alias, [user, other]);
  await admin.addAlias(foreignAlias, [other]);
  // The send-as list through the CLI, as an administrator sets it.
  const shown = f.cli('user', 'sendas', user, 'boss@partner.example', '@brand.example');
  assert.match(shown, /may also send as: boss@partner\.example @brand\.example/);

  const senders = [user, user.toUpperCase(), alias, 'boss@partner.example', 'anyone@brand.example', '', other, foreignAlias, 'boss2@partner.example', 'x@evil.example'];
  const out = JSON.parse(python3(PY, { P587: String(f.ports.submission), U: user, RCPT: rcpt, SENDERS: JSON.stringify(senders) }).trim().split('\n').pop()!) as Record<string, [number, string, number?, number?]>;
  for (const ok of [user, user.toUpperCase(), alias, 'boss@partner.example', 'anyone@brand.example', '']) {
    assert.deepEqual([out[ok]![0], out[ok]![2], out[ok]![3]], [250, 250, 250], `${ok || '<>'}: ${JSON.stringify(out[ok])}`);
  }
  for (const refused of [other, foreignAlias, 'boss2@partner.example', 'x@evil.example']) {
    const [code, text] = out[refused]!;
    assert.equal(code, 553, `${refused}: ${JSON.stringify(out[refused])}`);
    assert.equal(text, `5.7.1 Sender address <${refused}> not owned by user ${user}`);
  }
  // Submitted mail is not checked as port-25 mail is.
  const { inbox } = await mailboxes(rcpt);
  assert.equal(inbox.length, 6);
  assert.ok(inbox.every((m) => !m.includes('Authentication-Results')));

  // --clear empties the list; the next session no longer may use it.
  assert.match(f.cli('user', 'sendas', user, '--clear'), /no extra sender addresses/);
  const after = JSON.parse(python3(PY, { P587: String(f.ports.submission), U: user, RCPT: rcpt, SENDERS: JSON.stringify(['anyone@brand.example']) }).trim().split('\n').pop()!) as Record<string, [number, string]>;
  assert.equal(after['anyone@brand.example']![0], 553);
});

test('submission: with submission.enforce_sender off any sender is accepted', async () => {
  const user = await newUser('free');
  const rcpt = await newUser('freercpt');
  await admin.withSettings({ 'submission.enforce_sender': 'false' }, async () => {
    const out = JSON.parse(python3(PY, { P587: String(f.ports.submission), U: user, RCPT: rcpt, SENDERS: JSON.stringify(['x@evil.example']) }).trim().split('\n').pop()!) as Record<string, number[]>;
    assert.deepEqual(out['x@evil.example']!.filter((v) => typeof v === 'number'), [250, 250, 250]);
  });
});

test('user sendas: errors say what is wrong and how to fix it', async () => {
  const user = await newUser('cli');
  const missing = f.cliResult('user', 'sendas', `nobody@${DOMAIN}`, '@x.example');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /no account nobody@authchecks\.test; add it with: fulmar user add/);
  const both = f.cliResult('user', 'sendas', user, '--clear', 'a@b.example');
  assert.equal(both.status, 1);
  assert.match(both.stderr, /either patterns or --clear/);
  const invalid = f.cliResult('user', 'sendas', user, 'not an address');
  assert.equal(invalid.status, 1);
  assert.match(invalid.stderr, /not a valid address/);
  assert.match(f.cli('user', 'sendas', user), /sends only as itself and its aliases/);
});
