/**
 * The queue survives a crash in the middle of a delivery: one message for two destination
 * domains, one of which takes it at once while the other stalls after the end of data (no reply
 * to the final dot). The server is killed with SIGKILL, started again on the same data folder,
 * and must then deliver to the stalled domain (now answering) without sending the message again
 * to the recipient that already had its 250.
 *
 * A file of its own: it kills and restarts its server.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TestDnsServer } from './dns-server.js';
import { FulmarProcess, readMailbox } from './harness.js';
import { queueIdOf, submit, textMessage, until } from './queue-helpers.js';
import { Admin } from './smtp-wire.js';
import { SmtpSink, unstuff } from './smtp-sink.js';

const LOCAL = 'crash.fulmar.test';
const PASSWORD = 'crash-secret';
const dns = new TestDnsServer();
let f: FulmarProcess;
let admin: Admin;
let sink: SmtpSink;

before(async () => {
  await dns.start();
  f = await FulmarProcess.create({ hostname: 'mx.crash.fulmar.test' });
  admin = await Admin.open(f);
  await admin.addDomain(LOCAL);
  await admin.set('dns.servers', dns.address);
  await admin.set('queue.retry_schedule', '1s');
});

after(async () => {
  await admin?.close();
  await sink?.stop();
  const running = f?.child != null;
  const code = await f?.stop();
  f?.cleanup();
  await dns.stop();
  if (running) assert.equal(code, 0, 'the restarted server exits cleanly on SIGTERM');
});

function mx(domain: string, address: string): void {
  dns.set(domain, { mx: [{ exchange: `mx.${domain}`, preference: 10 }] });
  dns.set(`mx.${domain}`, { a: [address] });
}

test('kill -9 while a remote server sits on the end of data: after the restart the stalled domain gets the mail, the other is not sent it again', async () => {
  const fastDomain = 'fast.crash.test';
  const slowDomain = 'slow.crash.test';
  mx(fastDomain, '127.0.0.2');
  mx(slowDomain, '127.0.0.3');
  sink = await SmtpSink.start([
    { address: '127.0.0.2', name: 'fast' },
    { address: '127.0.0.3', name: 'stall', stall: 'dataEnd' },
    { address: '127.0.0.4', name: 'recovered' },
  ]);
  await admin.set('delivery.remote_port', String(sink.port));
  const from = `sender@${LOCAL}`;
  await admin.addUsers([from], PASSWORD);
  await f.start();

  const to = [`one@${fastDomain}`, `two@${slowDomain}`];
  const body = textMessage(from, to.join(', '), 'survives a crash', 'Crash-proof body.\r\n');
  const r = await submit({ port: f.ports.submission, user: from, password: PASSWORD, from, to, body });
  const id = await queueIdOf(f, r.data);

  await sink.waitFor((e) => e.event === 'message' && e.server === 'fast', 20_000);
  await sink.waitFor((e) => e.event === 'message' && e.server === 'stall', 20_000);
  // The fast domain's 250 is in; give the server a moment to make it durable, then crash.
  await new Promise((res) => setTimeout(res, 1000));
  await f.kill();

  // Whatever the store says now is what a restart starts from (checked at the end, so that a
  // failure here still shows what the restart does).
  const store = await f.openStore();
  let afterCrash: Record<string, string>;
  try {
    const m = await store.queue.getQueued(id);
    assert.ok(m, 'the message is still queued after the crash');
    afterCrash = Object.fromEntries(m.recipients.map((x) => [x.address, x.status]));
  } finally {
    await store.close();
  }
  assert.notEqual(afterCrash[`two@${slowDomain}`], 'delivered');

  // The slow domain's server is back to normal (a new MX); the server restarts on the same data.
  mx(slowDomain, '127.0.0.4');
  await f.start();
  const recovered = await sink.waitFor((e) => e.event === 'message' && e.server === 'recovered', 30_000);
  assert.equal(recovered.answered, true);
  const [m] = sink.messages('recovered');
  assert.deepEqual(m!.rcpts.map((x) => x.replace(/> .*$/, '>')), [`RCPT TO:<two@${slowDomain}>`]);
  assert.ok(unstuff(m!.raw).toString('utf8').endsWith(body));

  const store2 = await f.openStore();
  try {
    await until('the message to leave the queue', async () => (await store2.queue.getQueued(id)) === null, 20_000);
    // Let any duplicate attempt show itself before counting.
    await new Promise((res) => setTimeout(res, 2500));
    assert.equal(afterCrash[`one@${fastDomain}`], 'delivered', `the 250 from the fast domain was recorded before the crash: ${JSON.stringify(afterCrash)}; the fast domain's server got the message ${sink.messages('fast').length} time(s)`);
    assert.equal(sink.messages('fast').length, 1, 'the recipient that had its 250 before the crash is not sent the message again');
    assert.deepEqual(await readMailbox(store2, from), [], 'no bounce or warning for the sender');
  } finally {
    await store2.close();
  }
});
