/**
 * DomainPOP with extra hosts: two sources (two ISP mailboxes) for one domain, collected in one
 * cycle (`collect run`), share their dedupe keys: a message found in both is delivered to each
 * recipient once, a different message with no Message-ID in both is delivered twice (never
 * dropped), and each source deletes its own copy.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type DovecotPop3, startDovecotPop3 } from './dovecot-pop3.js';
import { FulmarProcess, readMailbox } from './harness.js';

let d: DovecotPop3;
let f: FulmarProcess;

before(async () => {
  d = await startDovecotPop3();
  f = await FulmarProcess.create();
});

after(async () => {
  f?.cleanup();
  await d?.stop();
});

test('a message in the primary and an extra host of one domain reaches each recipient once', async () => {
  f.cli('domain', 'add', 'extra.test');
  for (const u of ['ann', 'ben', 'postmaster']) f.cli('user', 'add', `${u}@extra.test`, '--password', 'password-123');
  for (const [name, box] of [
    ['primary', 'one@isp.test'],
    ['extra', 'two@other-isp.test'],
  ] as const) {
    d.addUser(box, 'pw');
    d.deliver(box, 'From: a@remote.test\r\nTo: ann@extra.test, ben@extra.test\r\nSubject: both\r\nMessage-ID: <both@remote.test>\r\n\r\nx\r\n');
    d.deliver(box, 'From: a@remote.test\r\nTo: ann@extra.test\r\nSubject: no id\r\n\r\ny\r\n');
    f.cli('collect', 'domainpop', 'add', name, '--domain', 'extra.test', '--host', '127.0.0.1', '--port', String(d.port), '--user', box, '--password', 'pw', '--mode', 'headers');
  }
  const out = f.cli('collect', 'run');
  // Sources run in name order: `extra` first delivers both; `primary` finds `both` a duplicate.
  assert.match(out, /^domainpop extra: collected 2, deleted 2, left 0/m);
  assert.match(out, /^domainpop primary: collected 1, deleted 2, left 0/m);
  assert.match(out, /duplicate \(<both@remote\.test>\) for ann@extra\.test, ben@extra\.test/);
  const store = await f.openStore();
  try {
    const subjects = async (u: string) => (await readMailbox(store, `${u}@extra.test`)).map((t) => /^Subject: (.*)$/m.exec(t)![1]).sort();
    assert.deepEqual(await subjects('ann'), ['both', 'no id', 'no id']);
    assert.deepEqual(await subjects('ben'), ['both']);
  } finally {
    await store.close();
  }
  assert.equal(d.count('one@isp.test'), 0);
  assert.equal(d.count('two@other-isp.test'), 0);
});
