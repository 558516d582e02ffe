/**
 * The store contract, continued: the outbound queue's lease protocol (claimDue, recordResults),
 * its administration (nextDue, retryNow, hold, delete, delay warnings), and the directory's
 * sender data (DKIM keys, send-as). Called by runStoreContract inside its describe, so its
 * beforeEach/afterEach give each test a fresh store.
 *
 * Backend-neutral: talks to the Store interface and the harness hooks only. Times are passed to
 * claimDue explicitly; the store stamps new recipients with its own clock, so tests count from
 * a `t0` read after the delivery commit.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import type { DkimKey, LeasedMessage, OutboundRecipient, StagedBlob, Store } from '../../src/store/types.js';
import type { StoreHarness } from './contract.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MINUTE = 60_000;
const LEASE = 5 * MINUTE;

export function describeQueueContract(current: () => StoreHarness): void {
  const s = (): Store => current().store;

  async function stage(bytes: string | Buffer): Promise<StagedBlob> {
    const writer = await s().blobs.createWriter();
    await writer.write(Buffer.from(bytes));
    return writer.finish();
  }

  /** Queues one message (outbound only, unless `localAccount`) and returns its id and blob. */
  async function enqueue(
    recipients: Array<string | OutboundRecipient>,
    options: { body?: string | Buffer; localAccount?: number } = {},
  ): Promise<{ id: number; blob: StagedBlob }> {
    const blob = await stage(options.body ?? `Subject: out\r\nX-Nonce: ${Math.random()}\r\n\r\nbye\r\n`);
    const outcome = await s().mail.commitDelivery({
      blob,
      internalDate: new Date(),
      local: options.localAccount === undefined ? [] : [{ accountId: options.localAccount, mailbox: 'INBOX', prefix: Buffer.alloc(0), flags: [] }],
      outbound: {
        mailFrom: 'sender@example.org',
        recipients: recipients.map((r) => (typeof r === 'string' ? { address: r } : r)),
      },
    });
    assert.ok(outcome.queueId !== null);
    return { id: outcome.queueId, blob };
  }

  async function blobCount(): Promise<number | null> {
    const h = current();
    return h.storedBlobCount ? h.storedBlobCount() : null;
  }

  function ids(messages: LeasedMessage[]): number[] {
    return messages.map((m) => m.id).sort((a, b) => a - b);
  }

  const later = (t0: number, ms: number): Date => new Date(t0 + ms);

  describe('outbound queue: leases', () => {
    it('claims due messages with only their due recipients, and reports the new fields', async () => {
      const a = await enqueue(['one@remote.example', 'two@remote.example']);
      const t0 = Date.now();
      const fresh = await s().queue.getQueued(a.id);
      assert.equal(fresh?.held, false);
      assert.deepEqual(
        fresh?.recipients.map((r) => [r.remoteMta, r.delayWarned]),
        [
          [null, false],
          [null, false],
        ],
      );
      const [first] = await s().queue.claimDue('w1', later(t0, 0), 10, LEASE);
      assert.ok(first);
      const [one, two] = first.recipients;
      assert.ok(one && two);
      // one is deferred for 10 minutes, two gets nothing recorded (still due).
      assert.equal(
        await s().queue.recordResults(a.id, 'w1', [
          { recipientId: one.id, outcome: 'deferred', error: '451 4.3.0 try later', nextAttemptAt: later(t0, 10 * MINUTE), remoteMta: 'mx.remote.example' },
        ]),
        true,
      );
      const claimed = await s().queue.claimDue('w2', later(t0, MINUTE), 10, LEASE);
      assert.deepEqual(ids(claimed), [a.id]);
      assert.equal(claimed[0]!.leaseOwner, 'w2');
      assert.equal(claimed[0]!.held, false);
      assert.deepEqual(
        claimed[0]!.recipients.map((r) => r.address),
        ['two@remote.example'],
        'the deferred recipient is not due yet',
      );
      const shown = await s().queue.getQueued(a.id);
      const deferred = shown!.recipients.find((r) => r.id === one.id)!;
      assert.deepEqual(
        [deferred.status, deferred.attempts, deferred.lastError, deferred.remoteMta, deferred.nextAttemptAt.getTime()],
        ['deferred', 1, '451 4.3.0 try later', 'mx.remote.example', t0 + 10 * MINUTE],
      );
      assert.deepEqual((await s().queue.listQueued()).find((q) => q.id === a.id)?.recipients[0]?.remoteMta, 'mx.remote.example');
    });

    it('never leases a message to two owners: concurrent claims get disjoint sets', async () => {
      const queued: number[] = [];
      for (let i = 0; i < 30; i++) queued.push((await enqueue([`r${i}@remote.example`])).id);
      const now = later(Date.now(), 0);
      const [x, y, z] = await Promise.all([
        s().queue.claimDue('x', now, 12, LEASE),
        s().queue.claimDue('y', now, 12, LEASE),
        s().queue.claimDue('z', now, 12, LEASE),
      ]);
      const all = [...ids(x), ...ids(y), ...ids(z)];
      assert.equal(new Set(all).size, all.length, 'no message twice');
      assert.deepEqual(all.sort((p, q) => p - q), queued);
      assert.deepEqual(await s().queue.claimDue('w', now, 100, LEASE), [], 'every message is leased');
      // The oldest due come first.
      assert.deepEqual(ids(x).length + ids(y).length, 24);
    });

    it('hands out the oldest due messages first, up to the limit', async () => {
      const first = await enqueue(['a@remote.example']);
      const second = await enqueue(['b@remote.example']);
      const third = await enqueue(['c@remote.example']);
      const t0 = Date.now();
      const claimed = await s().queue.claimDue('w', later(t0, 0), 2, LEASE);
      assert.deepEqual(ids(claimed), [first.id, second.id]);
      // Deferring the first puts it behind the third.
      await s().queue.recordResults(first.id, 'w', [
        { recipientId: claimed.find((m) => m.id === first.id)!.recipients[0]!.id, outcome: 'deferred', error: '421', nextAttemptAt: later(t0, 1) },
      ]);
      assert.deepEqual(ids(await s().queue.claimDue('w2', later(t0, 5), 1, LEASE)), [third.id]);
      assert.deepEqual(ids(await s().queue.claimDue('w2', later(t0, 5), 0, LEASE)), []);
      await assert.rejects(s().queue.claimDue('w2', later(t0, 5), -1, LEASE), { kind: 'invalid' });
      await assert.rejects(s().queue.claimDue('', later(t0, 5), 1, LEASE), { kind: 'invalid' });
      await assert.rejects(s().queue.claimDue('w2', later(t0, 5), 1, 0), { kind: 'invalid' });
    });

    it('lets another owner take over an expired lease, and ignores the stale owner afterwards', async () => {
      const { id } = await enqueue(['far@remote.example']);
      const t0 = Date.now();
      const [leased] = await s().queue.claimDue('dead', later(t0, 0), 10, 1000);
      assert.ok(leased);
      const rcpt = leased.recipients[0]!.id;
      assert.deepEqual(await s().queue.claimDue('alive', later(t0, 1000), 10, LEASE), [], 'live until lease_until');
      const [taken] = await s().queue.claimDue('alive', later(t0, 1001), 10, LEASE);
      assert.equal(taken?.id, id);
      assert.equal(taken?.leaseOwner, 'alive');
      assert.deepEqual(taken?.recipients.map((r) => r.id), [rcpt]);

      const stale = await s().queue.recordResults(id, 'dead', [{ recipientId: rcpt, outcome: 'delivered', error: null }]);
      assert.equal(stale, false);
      const unchanged = await s().queue.getQueued(id);
      assert.deepEqual(unchanged?.recipients.map((r) => [r.status, r.attempts]), [['queued', 0]], 'the stale result changed nothing');

      assert.equal(await s().queue.recordResults(id, 'alive', [{ recipientId: rcpt, outcome: 'delivered', error: '250 ok' }]), true);
      assert.equal(await s().queue.getQueued(id), null, 'delivered to everyone: it leaves the queue');
      assert.equal(await s().queue.recordResults(id, 'alive', []), false, 'a message no longer queued');
    });

    it('never hands a live lease out twice in one process, even to its owner; a restarted owner takes it back at once', async (t) => {
      const { id } = await enqueue(['far@remote.example']);
      const second = await enqueue(['other@remote.example']);
      const t0 = Date.now();
      assert.deepEqual(ids(await s().queue.claimDue('w', later(t0, 0), 1, LEASE)), [id]);
      // The worker claims more while it delivers: it gets new work, not its own message again.
      assert.deepEqual(ids(await s().queue.claimDue('w', later(t0, 1), 10, LEASE)), [second.id]);
      assert.deepEqual(await s().queue.claimDue('w', later(t0, 2), 10, LEASE), []);
      assert.deepEqual(await s().queue.claimDue('other', later(t0, 2), 10, LEASE), []);
      // After the lease, this process may take it again like anyone.
      assert.deepEqual(ids(await s().queue.claimDue('w', later(t0, LEASE + 1), 10, LEASE)), [id]);

      const h = current();
      if (!h.childStoreExpression) {
        t.skip('the backend provides no child-process hook');
        return;
      }
      const script = (owner: string) => `
        const store = await (${h.childStoreExpression});
        const got = await store.queue.claimDue(${JSON.stringify(owner)}, new Date(${t0 + LEASE + 1}), 10, ${LEASE});
        await store.close();
        process.stdout.write(JSON.stringify(got.map((m) => m.id).sort((a, b) => a - b)));
      `;
      assert.deepEqual(JSON.parse(await runChild(script('stranger'))), [], 'still leased to w');
      assert.deepEqual(JSON.parse(await runChild(script('w'))), [id, second.id], 'w restarted: it takes its leases back at once');
    });

    it('never hands out a delivered or failed recipient again; the message leaves with its last waiting recipient', async () => {
      const before = await blobCount();
      const { id, blob } = await enqueue(['ok@remote.example', 'later@remote.example', 'bad@remote.example']);
      const t0 = Date.now();
      const [leased] = await s().queue.claimDue('w', later(t0, 0), 10, LEASE);
      const [ok, wait, bad] = leased!.recipients;
      assert.equal(
        await s().queue.recordResults(id, 'w', [
          { recipientId: ok!.id, outcome: 'delivered', error: '250 2.0.0 queued as X', remoteMta: 'mx1.remote.example' },
          { recipientId: wait!.id, outcome: 'deferred', error: '452 4.2.2 mailbox full', nextAttemptAt: later(t0, MINUTE) },
          { recipientId: bad!.id, outcome: 'failed', error: '550 5.1.1 no such user', remoteMta: 'mx1.remote.example' },
        ]),
        true,
      );
      const after = await s().queue.getQueued(id);
      assert.deepEqual(
        after?.recipients.map((r) => [r.address, r.status, r.attempts, r.lastError]),
        [
          ['ok@remote.example', 'delivered', 1, '250 2.0.0 queued as X'],
          ['later@remote.example', 'deferred', 1, '452 4.2.2 mailbox full'],
          ['bad@remote.example', 'failed', 1, '550 5.1.1 no such user'],
        ],
      );
      assert.deepEqual(await s().queue.claimDue('w', later(t0, MINUTE - 1), 10, LEASE), []);
      const [again] = await s().queue.claimDue('w', later(t0, MINUTE), 10, LEASE);
      assert.deepEqual(again?.recipients.map((r) => r.address), ['later@remote.example']);
      // A late or confused result for the delivered recipient does not bring it back.
      await s().queue.recordResults(id, 'w', [{ recipientId: ok!.id, outcome: 'deferred', error: '421', nextAttemptAt: later(t0, MINUTE) }]);
      assert.equal((await s().queue.getQueued(id))?.recipients[0]?.status, 'delivered');
      assert.equal(await blobCount(), before === null ? null : before + 1);

      await s().queue.claimDue('w', later(t0, MINUTE), 10, LEASE);
      assert.equal(await s().queue.recordResults(id, 'w', [{ recipientId: wait!.id, outcome: 'delivered', error: null }]), true);
      assert.equal(await s().queue.getQueued(id), null);
      assert.equal(await s().blobs.exists(blob.hash), false, 'the queue held the only reference');
      assert.equal(await blobCount(), before);
    });

    it('keeps the blob while a mailbox still references it, and frees a file-sized blob with the last reference', async () => {
      await s().directory.addDomain('example.org');
      const account = await s().directory.createAccount({ address: 'me@example.org', passwordHash: 'h', quotaBytes: null }, []);
      const before = await blobCount();
      const shared = await enqueue(['x@remote.example'], { localAccount: account.id });
      const big = await enqueue(['y@remote.example'], { body: Buffer.alloc(200 * 1024, 'a') });
      assert.equal(await blobCount(), before === null ? null : before + 2);
      const now = later(Date.now(), 0);
      for (const m of await s().queue.claimDue('w', now, 10, LEASE)) {
        await s().queue.recordResults(m.id, 'w', m.recipients.map((r) => ({ recipientId: r.id, outcome: 'failed', error: '554' })));
      }
      assert.deepEqual(await s().queue.listQueued(), []);
      assert.equal(await s().blobs.exists(shared.blob.hash), true, 'the local copy still references it');
      assert.equal(await s().blobs.exists(big.blob.hash), false);
      assert.equal(await blobCount(), before === null ? null : before + 1);
    });

    it('keeps a blob that a concurrent delivery brings back while the queue releases it', async () => {
      await s().directory.addDomain('example.org');
      const account = await s().directory.createAccount({ address: 'me@example.org', passwordHash: 'h', quotaBytes: null }, []);
      const body = Buffer.alloc(150 * 1024, 'q');
      for (let round = 0; round < 5; round++) {
        body.write(`round ${round}`);
        const { blob } = await enqueue(['x@remote.example'], { body });
        const [m] = await s().queue.claimDue('w', later(Date.now(), 0), 1, LEASE);
        const again = await stage(body);
        assert.equal(again.hash, blob.hash);
        const [recorded, delivered] = await Promise.all([
          s().queue.recordResults(m!.id, 'w', [{ recipientId: m!.recipients[0]!.id, outcome: 'delivered', error: null }]),
          s().mail.commitDelivery({
            blob: again,
            internalDate: new Date(),
            local: [{ accountId: account.id, mailbox: 'INBOX', prefix: Buffer.alloc(0), flags: [] }],
            outbound: null,
          }),
        ]);
        assert.equal(recorded, true);
        assert.equal(await s().blobs.exists(blob.hash), true, `round ${round}: the mailbox copy keeps the blob`);
        const box = await s().mail.getMailbox(account.id, 'INBOX');
        const message = await s().mail.getMessage(box!.id, delivered.delivered[0]!.uid);
        assert.ok((await s().mail.readMessage(message!)).equals(body));
      }
    });

    it('records concurrent results of many messages, each alone (a bad call fails only itself)', async () => {
      const queued: Array<{ id: number }> = [];
      for (let i = 0; i < 20; i++) queued.push(await enqueue([`r${i}@remote.example`]));
      const leased = await s().queue.claimDue('w', later(Date.now(), 0), 100, LEASE);
      assert.equal(leased.length, 20);
      const results = await Promise.allSettled(
        leased.map((m, i) =>
          s().queue.recordResults(m.id, 'w', [
            // The 4th names a recipient of another message: rejected, and changes nothing.
            { recipientId: i === 3 ? leased[0]!.recipients[0]!.id : m.recipients[0]!.id, outcome: 'delivered', error: null },
          ]),
        ),
      );
      assert.deepEqual(
        results.map((r) => r.status),
        results.map((_, i) => (i === 3 ? 'rejected' : 'fulfilled')),
      );
      assert.equal((results[3] as PromiseRejectedResult).reason.kind, 'invalid');
      assert.deepEqual((await s().queue.listQueued()).map((q) => q.id), [leased[3]!.id]);
    });

    it('rejects malformed results before changing anything', async () => {
      const { id } = await enqueue(['a@remote.example']);
      const [m] = await s().queue.claimDue('w', later(Date.now(), 0), 1, LEASE);
      const rcpt = m!.recipients[0]!.id;
      await assert.rejects(s().queue.recordResults(id, 'w', [{ recipientId: rcpt, outcome: 'deferred', error: '421' }]), { kind: 'invalid' });
      await assert.rejects(
        s().queue.recordResults(id, 'w', [{ recipientId: rcpt, outcome: 'deferred', error: '421', nextAttemptAt: new Date(NaN) }]),
        { kind: 'invalid' },
      );
      await assert.rejects(
        s().queue.recordResults(id, 'w', [{ recipientId: rcpt, outcome: 'bounced' as 'failed', error: null }]),
        { kind: 'invalid' },
      );
      await assert.rejects(
        s().queue.recordResults(id, 'w', [
          { recipientId: rcpt, outcome: 'delivered', error: null },
          { recipientId: rcpt, outcome: 'failed', error: null },
        ]),
        { kind: 'invalid' },
      );
      await assert.rejects(s().queue.recordResults(id, 'w', [{ recipientId: rcpt + 999, outcome: 'delivered', error: null }]), {
        kind: 'invalid',
      });
      const still = await s().queue.getQueued(id);
      assert.deepEqual(still?.recipients.map((r) => [r.status, r.attempts]), [['queued', 0]]);
      // The lease survived the rejected calls: another owner still cannot claim it.
      assert.deepEqual(await s().queue.claimDue('other', later(Date.now(), 0), 1, LEASE), []);
      assert.equal(await s().queue.recordResults(id, 'w', []), true, 'no results: the lease just ends');
      assert.deepEqual(ids(await s().queue.claimDue('other', later(Date.now(), 0), 1, LEASE)), [id]);
    });

    it('never leases one message twice across processes', async (t) => {
      const h = current();
      if (!h.childStoreExpression) {
        t.skip('the backend provides no child-process hook');
        return;
      }
      const queued = (
        await Promise.all(Array.from({ length: 200 }, (_, i) => enqueue([`p${i}@remote.example`])))
      ).map((q) => q.id);
      queued.sort((a, b) => a - b);
      const now = Date.now() + 1;
      // Everyone starts claiming at the same moment, once the children are up.
      const startAt = Date.now() + 3000;
      const claimAll = `
        const got = [];
        await new Promise((r) => setTimeout(r, ${startAt} - Date.now()));
        for (;;) {
          const batch = await store.queue.claimDue(OWNER, new Date(${now}), 2, ${LEASE});
          if (batch.length === 0) break;
          got.push(...batch.map((m) => m.id));
          await new Promise((r) => setTimeout(r, 1));
        }`;
      const script = (owner: string) => `
        const store = await (${h.childStoreExpression});
        const OWNER = ${JSON.stringify(owner)};
        ${claimAll}
        await store.close();
        process.stdout.write(JSON.stringify(got));
      `;
      const children = Promise.all([runChild(script('c1')), runChild(script('c2'))]);
      await new Promise((r) => setTimeout(r, startAt - Date.now()));
      const parent: number[] = [];
      for (;;) {
        const batch = await s().queue.claimDue('parent', new Date(now), 2, LEASE);
        if (batch.length === 0) break;
        parent.push(...batch.map((m) => m.id));
        await new Promise((r) => setTimeout(r, 1));
      }
      const [c1, c2] = (await children).map((out) => JSON.parse(out) as number[]);
      t.diagnostic(`claims: parent ${parent.length}, c1 ${c1!.length}, c2 ${c2!.length}`);
      const all = [...parent, ...c1!, ...c2!];
      assert.equal(new Set(all).size, all.length, `a message leased twice: ${all.length - new Set(all).size}`);
      assert.deepEqual(all.sort((a, b) => a - b), queued);
    });

    it('never leases one message twice when two store instances claim the same 50 due messages at once', async (t) => {
      const h = current();
      if (!h.childStoreExpression) {
        t.skip('the backend provides no child-process hook');
        return;
      }
      const queued: number[] = [];
      for (let i = 0; i < 50; i++) queued.push((await enqueue([`i${i}@remote.example`])).id);
      queued.sort((a, b) => a - b);
      const now = Date.now() + 1;
      // Each instance fires a burst of concurrent claims (one owner each) at the same moment,
      // then claims until nothing is left. Returns every claim's ids, in claim order.
      const burst = `async (store, prefix) => {
        await new Promise((r) => setTimeout(r, ${Date.now() + 3000} - Date.now()));
        const claim = (owner) => store.queue.claimDue(owner, new Date(${now}), 10, ${LEASE}).then((got) => got.map((m) => m.id));
        const claims = await Promise.all([0, 1, 2, 3, 4].map((i) => claim(prefix + i)));
        for (let i = 5; ; i++) {
          const got = await claim(prefix + i);
          if (got.length === 0) break;
          claims.push(got);
        }
        return claims;
      }`;
      const child = runChild(`
        const store = await (${h.childStoreExpression});
        const claims = await (${burst})(store, 'child-');
        await store.close();
        process.stdout.write(JSON.stringify(claims));
      `);
      // The same source in this process: the two instances run the same claims.
      const run = new Function(`return ${burst}`)() as (store: Store, prefix: string) => Promise<number[][]>;
      const parent = await run(s(), 'parent-');
      const other = JSON.parse(await child) as number[][];
      const count = (claims: number[][]): number => claims.reduce((n, c) => n + c.length, 0);
      t.diagnostic(`claims: this instance ${count(parent)}, the other ${count(other)}`);
      const all = [...parent, ...other].flat();
      assert.equal(new Set(all).size, all.length, `a message leased twice: ${all.length - new Set(all).size}`);
      assert.deepEqual(all.sort((a, b) => a - b), queued, 'every due message leased once');
    });
  });

  describe('outbound queue: administration', () => {
    it('nextDue: null when empty, the earliest waiting recipient, after a live lease, skipping held messages', async () => {
      assert.equal(await s().queue.nextDue(), null);
      const a = await enqueue(['a@remote.example']);
      const b = await enqueue(['b@remote.example']);
      const t0 = Date.now();
      const due = await s().queue.nextDue();
      assert.ok(due && due.getTime() <= t0);
      const leased = await s().queue.claimDue('w', later(t0, 0), 10, LEASE);
      assert.equal((await s().queue.nextDue())?.getTime(), t0 + LEASE + 1, 'both leased: due when the leases run out');
      for (const m of leased) {
        await s().queue.recordResults(m.id, 'w', [
          { recipientId: m.recipients[0]!.id, outcome: 'deferred', error: '421', nextAttemptAt: later(t0, m.id === a.id ? 2 * MINUTE : 3 * MINUTE) },
        ]);
      }
      assert.equal((await s().queue.nextDue())?.getTime(), t0 + 2 * MINUTE);
      await s().queue.setHeld(a.id, true);
      assert.equal((await s().queue.nextDue())?.getTime(), t0 + 3 * MINUTE);
      await s().queue.setHeld(b.id, true);
      assert.equal(await s().queue.nextDue(), null, 'only held messages wait');
    });

    it('does not claim held messages until released; hold and release keep the schedule', async () => {
      const { id } = await enqueue(['a@remote.example']);
      await s().queue.setHeld(id, true);
      assert.equal((await s().queue.getQueued(id))?.held, true);
      assert.equal((await s().queue.listQueued())[0]?.held, true);
      assert.deepEqual(await s().queue.claimDue('w', later(Date.now(), MINUTE), 10, LEASE), []);
      await s().queue.setHeld(id, false);
      assert.deepEqual(ids(await s().queue.claimDue('w', later(Date.now(), 0), 10, LEASE)), [id]);
      await assert.rejects(s().queue.setHeld(id + 999, true), { kind: 'not-found' });
    });

    it('retryNow makes deferred recipients of non-held messages due now, one message or all', async () => {
      const a = await enqueue(['a1@remote.example', 'a2@remote.example']);
      const b = await enqueue(['b@remote.example']);
      const c = await enqueue(['c@remote.example']);
      const t0 = Date.now();
      for (const m of await s().queue.claimDue('w', later(t0, 0), 10, LEASE)) {
        await s().queue.recordResults(
          m.id,
          'w',
          m.recipients.map((r, i) =>
            m.id === a.id && i === 1
              ? { recipientId: r.id, outcome: 'delivered', error: null }
              : { recipientId: r.id, outcome: 'deferred', error: '421', nextAttemptAt: later(t0, 60 * MINUTE) },
          ),
        );
      }
      await s().queue.setHeld(c.id, true);
      assert.equal(await s().queue.retryNow(a.id), 1, 'the deferred recipient of a only');
      const now = later(Date.now(), 0);
      assert.deepEqual(ids(await s().queue.claimDue('w', now, 10, LEASE)), [a.id]);
      assert.equal(await s().queue.retryNow(), 1, 'b; c is held, a is due already');
      assert.deepEqual(ids(await s().queue.claimDue('w2', later(Date.now(), 0), 10, LEASE)), [b.id]);
      assert.equal((await s().queue.getQueued(c.id))?.recipients[0]?.nextAttemptAt.getTime(), t0 + 60 * MINUTE);
      assert.equal(await s().queue.retryNow(c.id), 0, 'a held message keeps its schedule');
      await assert.rejects(s().queue.retryNow(c.id + 999), { kind: 'not-found' });
    });

    it('deleteQueued removes a message and its blob reference; its worker is then ignored', async () => {
      const before = await blobCount();
      const { id, blob } = await enqueue(['a@remote.example'], { body: Buffer.alloc(100 * 1024, 'z') });
      const [m] = await s().queue.claimDue('w', later(Date.now(), 0), 10, LEASE);
      await s().queue.deleteQueued(id);
      assert.equal(await s().queue.getQueued(id), null);
      assert.equal(await s().blobs.exists(blob.hash), false);
      assert.equal(await blobCount(), before);
      assert.equal(await s().queue.recordResults(id, 'w', [{ recipientId: m!.recipients[0]!.id, outcome: 'delivered', error: null }]), false);
      await assert.rejects(s().queue.deleteQueued(id), { kind: 'not-found' });
    });

    it('markDelayWarned marks recipients once warned', async () => {
      const { id } = await enqueue(['a@remote.example', 'b@remote.example']);
      const rcpts = (await s().queue.getQueued(id))!.recipients;
      await s().queue.markDelayWarned([rcpts[1]!.id, rcpts[1]!.id + 999]);
      await s().queue.markDelayWarned([]);
      assert.deepEqual((await s().queue.getQueued(id))?.recipients.map((r) => r.delayWarned), [false, true]);
      const [leased] = await s().queue.claimDue('w', later(Date.now(), 0), 1, LEASE);
      assert.deepEqual(leased?.recipients.map((r) => r.delayWarned), [false, true]);
    });
  });

  describe('directory: DKIM keys and send-as', () => {
    const key = (selector: string, algorithm: DkimKey['algorithm'] = 'rsa-sha256'): DkimKey => ({
      selector,
      algorithm,
      privateKeyPem: '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n',
      publicKey: 'MCowBQYDK2VwAyEAabc+/def==',
      createdAt: new Date('2030-03-04T05:06:07.000Z'),
    });

    it('keeps one DKIM key per domain: round trip, replace, remove, gone with the domain', async () => {
      await s().directory.addDomain('example.org');
      assert.equal(await s().directory.getDkimKey('example.org'), null);
      await s().directory.setDkimKey('Example.ORG', key('fulmar2030'));
      assert.deepEqual(await s().directory.getDkimKey('example.org'), key('fulmar2030'));
      await s().directory.setDkimKey('example.org', key('ed', 'ed25519-sha256'));
      assert.deepEqual(await s().directory.getDkimKey('EXAMPLE.org'), key('ed', 'ed25519-sha256'));
      await s().directory.setDkimKey('example.org', null);
      assert.equal(await s().directory.getDkimKey('example.org'), null);
      await s().directory.setDkimKey('example.org', null); // removing twice is harmless

      await s().directory.setDkimKey('example.org', key('again'));
      await s().directory.removeDomain('example.org');
      await s().directory.addDomain('example.org');
      assert.equal(await s().directory.getDkimKey('example.org'), null, 'the key went with its domain');

      await assert.rejects(s().directory.setDkimKey('nowhere.example', key('x')), { kind: 'not-found' });
      assert.equal(await s().directory.getDkimKey('nowhere.example'), null);
      await assert.rejects(s().directory.setDkimKey('example.org', { ...key('x'), algorithm: 'rsa-sha1' as 'rsa-sha256' }), { kind: 'invalid' });
      await assert.rejects(s().directory.setDkimKey('example.org', key('bad selector')), { kind: 'invalid' });
    });

    it('keeps the send-as patterns of an account, normalized', async () => {
      await s().directory.addDomain('example.org');
      const created = await s().directory.createAccount({ address: 'ann@example.org', passwordHash: 'h', quotaBytes: null }, []);
      assert.deepEqual(created.sendAs, []);
      await s().directory.setSendAs('Ann@Example.org', ['Sales@Example.ORG', '@Other.EXAMPLE', 'sales@example.org']);
      assert.deepEqual((await s().directory.getAccount('ann@example.org'))?.sendAs, ['sales@example.org', '@other.example']);
      assert.deepEqual((await s().directory.getAccountById(created.id))?.sendAs, ['sales@example.org', '@other.example']);
      assert.deepEqual((await s().directory.listAccounts())[0]?.sendAs, ['sales@example.org', '@other.example']);
      await s().directory.setSendAs('ann@example.org', []);
      assert.deepEqual((await s().directory.getAccount('ann@example.org'))?.sendAs, []);
      await assert.rejects(s().directory.setSendAs('nobody@example.org', []), { kind: 'not-found' });
      await assert.rejects(s().directory.setSendAs('ann@example.org', ['not an address']), { kind: 'invalid' });
    });
  });
}

function runChild(script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`child exited ${code}: ${stderr}`))));
  });
}
