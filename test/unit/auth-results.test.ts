/**
 * Sender and message authentication, without a network: the DNS adapter mailauth calls, the
 * DMARC verdicts, the Authentication-Results header, DKIM keys and signing checked against a
 * zone held in memory, and the submission sender rule.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import {
  authenticationResultsHeader,
  checkMessageAuth,
  dmarcAction,
  type InboundClient,
} from '../../src/filters/auth-results.js';
import {
  checkSelector,
  defaultSelector,
  dkimDnsRecord,
  dkimTxtValue,
  generateDkimKey,
  parseKeyType,
  publicKeyValue,
  txtStrings,
} from '../../src/filters/dkim-keys.js';
import { dkimSignatureFor, signingKeyFor } from '../../src/filters/dkim-sign.js';
import { dnsError, mailauthResolver, type DnsLookup } from '../../src/filters/mailauth-resolver.js';
import { checkSender, senderAllowed } from '../../src/filters/sender-policy.js';
import type { Account, Alias, DkimKey } from '../../src/store/types.js';

// ---- a zone in memory, answering as node:dns/promises' Resolver.resolve does

type Zone = Record<string, unknown[]>;

function zoneLookup(zone: Zone, log: string[] = []): DnsLookup {
  const names = new Set(Object.keys(zone).map((k) => k.split('/')[0]!));
  return {
    resolve: (async (name: string, type: string) => {
      log.push(`${name}/${type}`);
      const records = zone[`${name.toLowerCase()}/${type}`];
      if (records) return records;
      throw dnsError(names.has(name.toLowerCase()) ? 'ENODATA' : 'ENOTFOUND', `query${type} ${name}`);
    }) as DnsLookup['resolve'],
  };
}

describe('mailauthResolver (node:dns → mailauth)', () => {
  it('passes answers through, and node:dns error codes unchanged', async () => {
    const r = mailauthResolver(zoneLookup({ 'example.com/TXT': [['v=spf1 ', '-all']], 'example.com/MX': [{ exchange: 'mx.example.com', priority: 10 }] }), {
      budgetMs: 1000,
    });
    assert.deepEqual(await r('example.com', 'TXT'), [['v=spf1 ', '-all']]);
    assert.deepEqual(await r('example.com', 'MX'), [{ exchange: 'mx.example.com', priority: 10 }]);
    await assert.rejects(r('example.com', 'A'), { code: 'ENODATA' });
    await assert.rejects(r('nowhere.example', 'TXT'), { code: 'ENOTFOUND' });
  });

  it('asks once per name and type, whatever the case or a trailing dot', async () => {
    const log: string[] = [];
    const r = mailauthResolver(zoneLookup({ 'example.com/TXT': [['x']] }, log), { budgetMs: 1000 });
    await Promise.all([r('example.com', 'TXT'), r('EXAMPLE.com.', 'txt'), r('example.com', 'TXT')]);
    await assert.rejects(r('nx.example', 'TXT'));
    await assert.rejects(r('nx.example', 'TXT'));
    assert.deepEqual(log, ['example.com/TXT', 'nx.example/TXT']);
  });

  it('fails a lookup that outlives the budget with ETIMEOUT, and every later one at once', async () => {
    const stalled: DnsLookup = { resolve: (() => new Promise(() => {})) as unknown as DnsLookup['resolve'] };
    const r = mailauthResolver(stalled, { budgetMs: 50 });
    const started = Date.now();
    await assert.rejects(r('slow.example', 'TXT'), { code: 'ETIMEOUT' });
    assert.ok(Date.now() - started < 1000);
    const again = Date.now();
    await assert.rejects(r('other.example', 'TXT'), { code: 'ETIMEOUT' });
    assert.ok(Date.now() - again < 20, 'after the deadline a lookup fails without waiting');
  });

  it('caps the lookups of one message', async () => {
    const r = mailauthResolver(zoneLookup({}), { budgetMs: 1000, maxLookups: 3 });
    for (const n of ['a', 'b', 'c']) await assert.rejects(r(`${n}.example`, 'TXT'), { code: 'ENOTFOUND' });
    await assert.rejects(r('d.example', 'TXT'), { code: 'ETIMEOUT' });
    // Names already asked keep their answer.
    await assert.rejects(r('a.example', 'TXT'), { code: 'ENOTFOUND' });
  });

  it('refuses what cannot be a DNS query, without asking', async () => {
    const log: string[] = [];
    const r = mailauthResolver(zoneLookup({}, log), { budgetMs: 1000 });
    await assert.rejects(r('bad name.example', 'TXT'), { code: 'ENOTFOUND' });
    await assert.rejects(r('', 'TXT'), { code: 'ENOTFOUND' });
    await assert.rejects(r('example.com', 'BOGUS'), { code: 'ENODATA' });
    await assert.rejects(r('x'.repeat(300), 'TXT'), { code: 'ENOTFOUND' });
    assert.deepEqual(log, []);
  });

  it('turns a synchronous throw of the resolver into a rejection', async () => {
    const throwing: DnsLookup = {
      resolve: (() => {
        throw dnsError('ESERVFAIL', 'boom');
      }) as unknown as DnsLookup['resolve'],
    };
    await assert.rejects(mailauthResolver(throwing, { budgetMs: 1000 })('example.com', 'TXT'), { code: 'ESERVFAIL' });
  });
});

describe('dmarcAction (RFC 7489 6.6.4)', () => {
  const on = { rejectEnabled: true };
  it('acts only on a failure', () => {
    for (const result of ['pass', 'none', 'temperror', 'permerror', 'neutral']) {
      assert.equal(dmarcAction({ result, policy: 'reject' }, on), 'deliver', result);
    }
    assert.equal(dmarcAction(null, on), 'deliver');
  });
  it('p=reject refuses, or goes to Junk when refusing is off; quarantine is Junk; none delivers', () => {
    assert.equal(dmarcAction({ result: 'fail', policy: 'reject' }, on), 'reject');
    assert.equal(dmarcAction({ result: 'fail', policy: 'REJECT' }, { rejectEnabled: false }), 'junk');
    assert.equal(dmarcAction({ result: 'fail', policy: 'quarantine' }, on), 'junk');
    assert.equal(dmarcAction({ result: 'fail', policy: 'none' }, on), 'deliver');
    assert.equal(dmarcAction({ result: 'fail', policy: null }, on), 'deliver');
  });
  it('pct applies the policy to a share and the next milder one to the rest', () => {
    assert.equal(dmarcAction({ result: 'fail', policy: 'reject', pct: 30 }, { ...on, random: () => 0.1 }), 'reject');
    assert.equal(dmarcAction({ result: 'fail', policy: 'reject', pct: 30 }, { ...on, random: () => 0.5 }), 'junk');
    assert.equal(dmarcAction({ result: 'fail', policy: 'quarantine', pct: 0 }, { ...on, random: () => 0 }), 'deliver');
    assert.equal(dmarcAction({ result: 'fail', policy: 'reject', pct: 100 }, { ...on, random: () => 0.999 }), 'reject');
  });
});

describe('Authentication-Results header (RFC 8601)', () => {
  it('puts one method per line after the authserv-id', () => {
    assert.equal(
      authenticationResultsHeader('mx.example', ['spf=pass smtp.mailfrom=a@b', 'dkim=none', 'dmarc=pass header.from=b', 'arc=none']),
      'Authentication-Results: mx.example;\r\n spf=pass smtp.mailfrom=a@b;\r\n dkim=none;\r\n dmarc=pass header.from=b;\r\n arc=none\r\n',
    );
    assert.equal(authenticationResultsHeader('mx.example', []), 'Authentication-Results: mx.example; none\r\n');
  });
  it('lets no line break or control through from message data', () => {
    const h = authenticationResultsHeader('mx.example\r\nX: y', ['dmarc=fail header.from=evil\r\nX-Injected: yes\0']);
    assert.ok(!h.includes('\r\nX'), JSON.stringify(h));
    assert.ok(!h.includes('\0'));
    assert.equal(h.split('\r\n').filter((l) => l !== '' && !/^[ \t]/.test(l)).length, 1, 'one header field');
  });
});

// ---- DKIM keys, signing and verification against the zone

const MESSAGE = Buffer.from(
  'Received: from client.example ([127.0.0.1]) by mx.test\r\n' +
    'From: Ann <ann@signed.test>\r\n' +
    'To: bob@example.net\r\n' +
    'Subject:   Hello   there\r\n' +
    'Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n' +
    'Message-ID: <1@signed.test>\r\n' +
    'X-Not-Signed: whatever\r\n' +
    '\r\n' +
    'Body line one.  \r\n' +
    '\r\n\r\n',
);

const CLIENT: InboundClient = { ip: '127.0.0.1', helo: 'client.example', hostname: 'mx.test' };

function zoneFor(key: DkimKey, extra: Zone = {}): Zone {
  return {
    [`${key.selector}._domainkey.signed.test/TXT`]: [txtStrings(dkimTxtValue(key))],
    'signed.test/TXT': [['v=spf1 ip4:127.0.0.1 -all']],
    '_dmarc.signed.test/TXT': [['v=DMARC1; p=reject']],
    ...extra,
  };
}

describe('DKIM keys and records', () => {
  it('names selectors by month, checks them, and reads algorithms', () => {
    assert.equal(defaultSelector(new Date(Date.UTC(2026, 10, 3))), 'fulmar202611');
    assert.equal(checkSelector('Fulmar202611'), 'fulmar202611');
    assert.equal(checkSelector('s1.mail'), 's1.mail');
    for (const bad of ['', 'a b', '-x', 'x_y', 'a..b', 'é']) assert.throws(() => checkSelector(bad), /not a valid DKIM selector/, bad);
    assert.equal(parseKeyType('RSA'), 'rsa');
    assert.equal(parseKeyType('ed25519'), 'ed25519');
    assert.throws(() => parseKeyType('dsa'), /use rsa .* or ed25519/);
  });

  it('publishes RSA keys as SPKI in 255-octet strings and Ed25519 keys as 32 raw bytes', () => {
    const rsa = generateDkimKey('rsa', 'r1');
    assert.equal(rsa.algorithm, 'rsa-sha256');
    assert.match(rsa.privateKeyPem, /^-----BEGIN PRIVATE KEY-----/);
    assert.equal(publicKeyValue(rsa.privateKeyPem), rsa.publicKey);
    const record = dkimDnsRecord('example.com', rsa);
    assert.match(record, /^r1\._domainkey\.example\.com\. IN TXT "v=DKIM1; k=rsa; p=[A-Za-z0-9+/]+" "[A-Za-z0-9+/=]+"$/);
    const strings = [...record.matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
    assert.ok(strings.every((s) => s.length <= 255));
    assert.equal(strings.join(''), dkimTxtValue(rsa));

    const ed = generateDkimKey('ed25519', 'e1');
    assert.equal(ed.algorithm, 'ed25519-sha256');
    assert.equal(Buffer.from(ed.publicKey, 'base64').length, 32);
    assert.equal(publicKeyValue(ed.privateKeyPem), ed.publicKey);
    assert.equal(dkimDnsRecord('example.com', ed), `e1._domainkey.example.com. IN TXT "v=DKIM1; k=ed25519; p=${ed.publicKey}"`);
  });

  for (const type of ['rsa', 'ed25519'] as const) {
    it(`signs (${type}) relaxed/relaxed so that mailauth verifies dkim=pass, from a Buffer and from a stream`, async () => {
      const key = generateDkimKey(type, `sel-${type}`);
      const signature = await dkimSignatureFor(MESSAGE, { domain: 'signed.test', key });
      assert.match(signature, /^DKIM-Signature: v=1; a=[a-z0-9]+-sha256; c=relaxed\/relaxed; d=signed\.test;/);
      assert.ok(signature.endsWith('\r\n') && !signature.endsWith('\r\n\r\n'));
      const h = /h=([^;]+);/.exec(signature.replace(/\r\n\s+/g, ' '))![1]!.split(':').map((s) => s.trim().toLowerCase());
      assert.deepEqual(h.sort(), ['date', 'from', 'message-id', 'subject', 'to']);
      const streamed = await dkimSignatureFor(Readable.from([MESSAGE.subarray(0, 50), MESSAGE.subarray(50)]), { domain: 'signed.test', key });
      assert.equal(/bh=([^;]+);/.exec(streamed)![1], /bh=([^;]+);/.exec(signature)![1]);

      const verdict = await checkMessageAuth(Buffer.concat([Buffer.from(signature), MESSAGE]), {
        client: CLIENT,
        mailFrom: 'ann@signed.test',
        resolver: mailauthResolver(zoneLookup(zoneFor(key)), { budgetMs: 2000 }),
        dmarcReject: true,
      });
      assert.deepEqual(verdict.results, { spf: 'pass', dkim: 'pass', dmarc: 'pass', arc: 'none' });
      assert.equal(verdict.action, 'deliver');
      const header = verdict.header.toString();
      assert.match(header, /^Authentication-Results: mx\.test;\r\n spf=pass /);
      assert.match(header, new RegExp(`dkim=pass header\\.i=@signed\\.test header\\.s=sel-${type}`));
      assert.match(header, /dmarc=pass .*header\.from=signed\.test/);
      assert.match(header, /arc=none\r\n$/);
    });
  }

  it('fails with a clear error on a broken key', async () => {
    const key: DkimKey = { ...generateDkimKey('ed25519', 'x'), privateKeyPem: 'not a key' };
    await assert.rejects(dkimSignatureFor(MESSAGE, { domain: 'signed.test', key }), /DKIM signing for signed\.test \(selector x\) failed/);
  });

  it('picks the From domain key, else the envelope sender domain key', async () => {
    const key = generateDkimKey('ed25519', 'k');
    const asked: string[] = [];
    const directory = {
      getDkimKey: async (domain: string) => {
        asked.push(domain);
        return domain === 'signed.test' ? key : null;
      },
    };
    assert.equal((await signingKeyFor('Ann <ann@Signed.Test>', directory))?.domain, 'signed.test');
    assert.equal((await signingKeyFor('ann@signed.test', directory))?.key, key);
    assert.equal((await signingKeyFor('"Ann, B" <ann@other.test>', directory, 'bounce@signed.test'))?.domain, 'signed.test');
    assert.equal(await signingKeyFor('ann@other.test', directory), null);
    assert.equal(await signingKeyFor('', directory, ''), null);
    assert.ok(asked.includes('other.test'));
  });
});

describe('DMARC verdicts of whole messages', () => {
  const forged = Buffer.from('From: Boss <boss@signed.test>\r\nTo: bob@example.net\r\nSubject: pay\r\n\r\nnow\r\n');

  it('a forged From under p=reject is refused, or sent to Junk when refusing is off', async () => {
    const key = generateDkimKey('ed25519', 's');
    const ask = (dmarcReject: boolean) =>
      checkMessageAuth(forged, {
        client: { ...CLIENT, ip: '192.0.2.7' },
        mailFrom: 'someone@elsewhere.test',
        resolver: mailauthResolver(zoneLookup(zoneFor(key, { 'elsewhere.test/TXT': [['v=spf1 ip4:192.0.2.0/24 -all']] })), { budgetMs: 2000 }),
        dmarcReject,
      });
    const refused = await ask(true);
    assert.equal(refused.action, 'reject');
    assert.equal(refused.policyDomain, 'signed.test');
    assert.deepEqual(refused.results, { spf: 'pass', dkim: 'none', dmarc: 'fail', arc: 'none' });
    assert.equal((await ask(false)).action, 'junk');
  });

  it('a second From address cannot hide a p=reject domain', async () => {
    const key = generateDkimKey('ed25519', 's');
    const twoFrom = Buffer.from('From: boss@signed.test, me@elsewhere.test\r\nTo: bob@example.net\r\nSubject: pay\r\n\r\nnow\r\n');
    const verdict = await checkMessageAuth(twoFrom, {
      client: CLIENT,
      mailFrom: 'me@elsewhere.test',
      resolver: mailauthResolver(zoneLookup(zoneFor(key, { 'elsewhere.test/TXT': [['v=spf1 ip4:127.0.0.1 -all']] })), { budgetMs: 2000 }),
      dmarcReject: true,
    });
    assert.equal(verdict.action, 'reject');
    assert.equal(verdict.policyDomain, 'signed.test');
  });

  it('DNS failures give temperror and never refuse', async () => {
    const failing: DnsLookup = { resolve: (async () => Promise.reject(dnsError('ETIMEOUT', 'timeout'))) as unknown as DnsLookup['resolve'] };
    const key = generateDkimKey('ed25519', 's');
    const signature = await dkimSignatureFor(forged, { domain: 'signed.test', key });
    const verdict = await checkMessageAuth(Buffer.concat([Buffer.from(signature), forged]), {
      client: CLIENT,
      mailFrom: 'boss@signed.test',
      resolver: mailauthResolver(failing, { budgetMs: 2000 }),
      dmarcReject: true,
    });
    assert.equal(verdict.action, 'deliver');
    assert.deepEqual(verdict.results, { spf: 'temperror', dkim: 'temperror', dmarc: 'temperror', arc: 'none' });
    assert.match(verdict.header.toString(), /spf=temperror[^\r]*;\r\n dkim=temperror[^\r]*;\r\n dmarc=temperror/);
  });
});

// ---- submission senders

const ACCOUNT: Pick<Account, 'address' | 'sendAs'> = { address: 'joe@example.com', sendAs: ['boss@example.org', '@shared.example'] };

describe('senderAllowed (submission.enforce_sender)', () => {
  const aliases: Alias[] = [{ address: 'info@example.com', targets: ['ann@example.com', 'joe@example.com'] }];
  const ok = (from: string, a: readonly Alias[] = aliases) => {
    const v = senderAllowed(from, ACCOUNT, a);
    return v.ok ? v.via : 'refused';
  };

  it('allows the null sender, the own address in any case, aliases that reach the account, and send-as patterns', () => {
    assert.equal(ok(''), 'null-sender');
    assert.equal(ok('joe@example.com'), 'own-address');
    assert.equal(ok('JOE@Example.COM'), 'own-address');
    assert.equal(ok('info@example.com'), 'alias');
    assert.equal(ok('Boss@example.org'), 'send-as');
    assert.equal(ok('anyone@shared.example'), 'send-as');
  });

  it('refuses everything else', () => {
    assert.equal(ok('ann@example.com'), 'refused');
    assert.equal(ok('info@example.com', [{ address: 'info@example.com', targets: ['ann@example.com'] }]), 'refused');
    assert.equal(ok('info@example.com', [{ address: 'other@example.com', targets: ['joe@example.com'] }]), 'refused');
    assert.equal(ok('boss2@example.org'), 'refused');
    assert.equal(ok('x@sub.shared.example'), 'refused');
    assert.equal(ok('joe@example.com.evil.test'), 'refused');
    assert.equal(ok('not an address'), 'refused');
    assert.equal(ok('joe'), 'refused');
  });

  it('compares IDN domains in their punycode form, as the directory stores them', () => {
    const v = senderAllowed('joe@bücher.example', { address: 'joe@xn--bcher-kva.example', sendAs: [] });
    assert.deepEqual(v, { ok: true, via: 'own-address' });
  });

  it('checkSender reads the account afresh and looks up only the alias of the sender', async () => {
    const asked: string[] = [];
    const stale = { ...ACCOUNT, id: 7, sendAs: [] } as unknown as Account;
    const directory = {
      getUserById: async (id: number) => ({ ...stale, id, sendAs: ['@fresh.example'] }) as Account,
      getAlias: async (address: string) => {
        asked.push(address);
        return address === 'info@example.com' ? aliases[0]! : null;
      },
    };
    assert.equal((await checkSender(directory, stale, 'x@fresh.example')).ok, true);
    assert.equal((await checkSender(directory, stale, 'Info@Example.com')).ok, true);
    assert.equal((await checkSender(directory, stale, 'joe@example.com')).ok, true);
    assert.equal((await checkSender(directory, stale, 'ann@example.com')).ok, false);
    assert.deepEqual(asked, ['x@fresh.example', 'info@example.com', 'ann@example.com']);
  });
});
