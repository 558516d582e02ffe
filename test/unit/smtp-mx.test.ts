/**
 * MX resolution (src/smtp/client/mx.ts) against a real DNS server on loopback (dns2): preference
 * order, shuffling among equal preferences, implicit MX, null MX, NXDOMAIN, SERVFAIL and
 * timeouts, address lookups of both families.
 */
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { after, before, test } from 'node:test';
import { resolveAddresses, resolveMx, normalizeHost } from '../../src/smtp/client/mx.js';
import { TestDnsServer } from '../integration/dns-server.js';

const dns = new TestDnsServer();

before(async () => {
  await dns.start();
  dns
    .set('ordered.test', {
      mx: [
        { exchange: 'mx30.ordered.test', preference: 30 },
        { exchange: 'MX10.Ordered.Test.', preference: 10 },
        { exchange: 'mx20.ordered.test', preference: 20 },
      ],
    })
    .set('equal.test', {
      mx: [
        { exchange: 'a.equal.test', preference: 10 },
        { exchange: 'b.equal.test', preference: 10 },
        { exchange: 'c.equal.test', preference: 10 },
        { exchange: 'backup.equal.test', preference: 20 },
      ],
    })
    .set('dup.test', {
      mx: [
        { exchange: 'mx.dup.test', preference: 20 },
        { exchange: 'mx.dup.test', preference: 5 },
      ],
    })
    .set('implicit.test', { a: ['192.0.2.7'] })
    .set('implicit6.test', { aaaa: ['2001:db8::7'] })
    .set('nothing.test', { txt: [['v=spf1 -all']] })
    .set('nullmx.test', { mx: [{ exchange: '', preference: 0 }] })
    .set('nullmix.test', {
      mx: [
        { exchange: '', preference: 0 },
        { exchange: 'mx.nullmix.test', preference: 10 },
      ],
    })
    .set('both.test', { a: ['192.0.2.1', '192.0.2.2'], aaaa: ['2001:db8::1'] })
    .set('half.test', { a: ['192.0.2.3'] })
    .set('xn--bcher-kva.test', { mx: [{ exchange: 'mx.xn--bcher-kva.test', preference: 1 }] });
  dns.servfail.add('broken.test');
  dns.silent.add('slow.test');
  dns.servfail.add('sixfail.test');
});

after(() => dns.stop());

test('MX hosts come sorted by preference, names normalised', async () => {
  const r = await resolveMx('ordered.test', dns.resolver());
  assert.deepEqual(r, {
    kind: 'hosts',
    implicit: false,
    hosts: [
      { host: 'mx10.ordered.test', preference: 10 },
      { host: 'mx20.ordered.test', preference: 20 },
      { host: 'mx30.ordered.test', preference: 30 },
    ],
  });
});

test('equal preferences are shuffled; lower preferences stay first', async () => {
  const orders = new Set<string>();
  for (let i = 0; i < 40; i++) {
    const r = await resolveMx('equal.test', dns.resolver());
    assert.equal(r.kind, 'hosts');
    if (r.kind !== 'hosts') return;
    assert.equal(r.hosts.length, 4);
    assert.deepEqual(r.hosts[3], { host: 'backup.equal.test', preference: 20 });
    assert.deepEqual(new Set(r.hosts.slice(0, 3).map((h) => h.host)), new Set(['a.equal.test', 'b.equal.test', 'c.equal.test']));
    orders.add(r.hosts.map((h) => h.host).join(','));
  }
  assert.ok(orders.size >= 2, `40 lookups gave only ${[...orders].join(' | ')}`);
  // With a fixed random source the order is deterministic (Fisher-Yates).
  const fixed = await resolveMx('equal.test', dns.resolver(), () => 0);
  const again = await resolveMx('equal.test', dns.resolver(), () => 0);
  assert.deepEqual(fixed, again);
});

test('a host listed twice keeps its best preference', async () => {
  const r = await resolveMx('dup.test', dns.resolver());
  assert.deepEqual(r, { kind: 'hosts', implicit: false, hosts: [{ host: 'mx.dup.test', preference: 5 }] });
});

test('no MX but an A or AAAA record: the domain is its own MX (implicit)', async () => {
  assert.deepEqual(await resolveMx('implicit.test', dns.resolver()), {
    kind: 'hosts',
    implicit: true,
    hosts: [{ host: 'implicit.test', preference: 0 }],
  });
  assert.deepEqual(await resolveMx('implicit6.test', dns.resolver()), {
    kind: 'hosts',
    implicit: true,
    hosts: [{ host: 'implicit6.test', preference: 0 }],
  });
});

test('a domain with no MX and no address takes no mail', async () => {
  const r = await resolveMx('nothing.test', dns.resolver());
  assert.equal(r.kind, 'no-domain');
});

test('null MX (rfc7505)', async () => {
  assert.deepEqual(await resolveMx('nullmx.test', dns.resolver()), { kind: 'null-mx' });
  // A "." among real MX records is ignored (rfc7505 4.1 calls that a misconfiguration).
  assert.deepEqual(await resolveMx('nullmix.test', dns.resolver()), {
    kind: 'hosts',
    implicit: false,
    hosts: [{ host: 'mx.nullmix.test', preference: 10 }],
  });
});

test('NXDOMAIN is a permanent no-domain', async () => {
  const r = await resolveMx('does-not-exist.test', dns.resolver());
  assert.equal(r.kind, 'no-domain');
  assert.match((r as { error: string }).error, /name=does-not-exist\.test type=MX: Host not found/);
});

test('SERVFAIL and timeouts are temporary', async () => {
  const broken = await resolveMx('broken.test', dns.resolver());
  assert.equal(broken.kind, 'temporary');
  assert.match((broken as { error: string }).error, /SERVFAIL/);
  const started = Date.now();
  const slow = await resolveMx('slow.test', dns.resolver(300, 1));
  assert.equal(slow.kind, 'temporary');
  assert.ok(Date.now() - started < 3000);
});

test('a resolver with no server to ask is temporary, not a bounce', async () => {
  const nobody = new Resolver({ timeout: 200, tries: 1 });
  nobody.setServers(['127.0.0.1:1']);
  const r = await resolveMx('ordered.test', nobody);
  assert.equal(r.kind, 'temporary');
});

test('IDN domains are looked up by their A-label', async () => {
  const r = await resolveMx('Bücher.test', dns.resolver());
  assert.deepEqual(r, { kind: 'hosts', implicit: false, hosts: [{ host: 'mx.xn--bcher-kva.test', preference: 1 }] });
  assert.equal(normalizeHost('BÜCHER.test.'), 'xn--bcher-kva.test');
});

test('addresses: both families, IPv4 first unless IPv6 is preferred', async () => {
  assert.deepEqual(await resolveAddresses('both.test', dns.resolver(), { preferIpv6: false }), {
    kind: 'addresses',
    addresses: ['192.0.2.1', '192.0.2.2', '2001:db8::1'],
  });
  assert.deepEqual(await resolveAddresses('both.test', dns.resolver(), { preferIpv6: true }), {
    kind: 'addresses',
    addresses: ['2001:db8::1', '192.0.2.1', '192.0.2.2'],
  });
  assert.deepEqual(await resolveAddresses('half.test', dns.resolver()), { kind: 'addresses', addresses: ['192.0.2.3'] });
});

test('addresses: literals as they are; none; temporary', async () => {
  assert.deepEqual(await resolveAddresses('127.0.0.1', dns.resolver()), { kind: 'addresses', addresses: ['127.0.0.1'] });
  assert.deepEqual(await resolveAddresses('[::1]', dns.resolver()), { kind: 'addresses', addresses: ['::1'] });
  assert.equal((await resolveAddresses('nowhere.test', dns.resolver())).kind, 'none');
  assert.equal((await resolveAddresses('nothing.test', dns.resolver())).kind, 'none');
  assert.equal((await resolveAddresses('sixfail.test', dns.resolver())).kind, 'temporary');
});
