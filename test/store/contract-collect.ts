/**
 * The store contract, continued: the collectors' state (CollectStore): sources, run claims,
 * the UIDLs dealt with, dedupe keys, and the collected mark committed with a delivery (exactly
 * once). Called by runStoreContract inside its describe, so each test gets a fresh store.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFulmarError } from '../../src/util/errors.js';
import type { CollectedMark, StagedBlob, Store } from '../../src/store/types.js';

export function describeCollectContract(current: () => Store): void {
  const s = current;

  async function stage(text: string): Promise<StagedBlob> {
    const writer = await s().blobs.createWriter();
    await writer.write(Buffer.from(text));
    return writer.finish();
  }

  async function account(address: string): Promise<number> {
    const domain = address.slice(address.indexOf('@') + 1);
    if (!(await s().directory.getDomain(domain))) await s().directory.addDomain(domain);
    return (await s().directory.createAccount({ address, passwordHash: 'h', quotaBytes: null }, [])).id;
  }

  function mark(sourceId: number, uidl: string, extra: Partial<CollectedMark> = {}): CollectedMark {
    return { sourceId, uidl, state: 'collected', at: new Date('2030-01-01T00:00:00Z'), dedupe: [], ...extra };
  }

  async function inboxCount(accountId: number): Promise<number> {
    const box = await s().mail.getMailbox(accountId, 'INBOX');
    return (await s().mail.listMessages(box!.id)).length;
  }

  describe('collectors', () => {
    it('adds, lists, updates and removes sources; names are unique per kind', async () => {
      const a = await s().collect.addSource('domainpop', 'isp', null, '{"x":1}');
      assert.equal(a.kind, 'domainpop');
      assert.equal(a.enabled, true);
      assert.equal(a.lastRunAt, null);
      await assert.rejects(s().collect.addSource('domainpop', 'isp', null, '{}'), (e) => isFulmarError(e) && e.kind === 'exists');
      const owner = await account('m@example.org');
      const b = await s().collect.addSource('multipop', 'm@example.org/u@pop.example', owner, '{}');
      assert.equal(b.accountId, owner);
      assert.deepEqual((await s().collect.listSources()).map((x) => x.name).sort(), ['isp', 'm@example.org/u@pop.example']);
      assert.deepEqual((await s().collect.listSources('multipop')).map((x) => x.id), [b.id]);
      await s().collect.updateSource(a.id, '{"x":2}', false);
      const changed = await s().collect.getSource(a.id);
      assert.equal(changed?.config, '{"x":2}');
      assert.equal(changed?.enabled, false);
      await s().collect.removeSource(a.id);
      assert.equal(await s().collect.getSource(a.id), null);
      // A MultiPOP source goes with its account.
      await s().directory.removeAccount('m@example.org');
      assert.equal(await s().collect.getSource(b.id), null);
    });

    it('lets one collector at a time run a source, until the claim ends or expires', async () => {
      const src = await s().collect.addSource('domainpop', 'claimed', null, '{}');
      const t0 = new Date('2030-01-01T00:00:00Z');
      assert.equal(await s().collect.claimRun(src.id, 'node-a', t0, 60_000), true);
      assert.equal(await s().collect.claimRun(src.id, 'node-b', new Date(t0.getTime() + 1000), 60_000), false);
      // The holder may renew.
      assert.equal(await s().collect.claimRun(src.id, 'node-a', new Date(t0.getTime() + 2000), 60_000), true);
      await s().collect.finishRun(src.id, 'node-a', { at: new Date(t0.getTime() + 3000), error: null, collected: 5 });
      assert.equal(await s().collect.claimRun(src.id, 'node-b', new Date(t0.getTime() + 4000), 60_000), true);
      // Expired: another may take it.
      assert.equal(await s().collect.claimRun(src.id, 'node-c', new Date(t0.getTime() + 4000 + 60_001), 60_000), true);
      await s().collect.finishRun(src.id, 'node-c', { at: new Date(t0.getTime() + 70_000), error: 'login refused', collected: 0 });
      const after = (await s().collect.getSource(src.id))!;
      assert.equal(after.totalCollected, 5);
      assert.equal(after.lastCollected, 0);
      assert.equal(after.lastError, 'login refused');
      assert.equal(after.lastOkAt?.getTime(), t0.getTime() + 3000);
      assert.equal(after.lastRunAt?.getTime(), t0.getTime() + 70_000);
    });

    it('records a UIDL once; a large mark may become collected, never the reverse', async () => {
      const src = await s().collect.addSource('domainpop', 'seen', null, '{}');
      assert.equal(await s().collect.markSeen(mark(src.id, 'u1')), true);
      assert.equal(await s().collect.markSeen(mark(src.id, 'u1')), false);
      assert.equal(await s().collect.markSeen(mark(src.id, 'u2', { state: 'large' })), true);
      assert.equal(await s().collect.markSeen(mark(src.id, 'u2', { state: 'large' })), false);
      assert.equal(await s().collect.markSeen(mark(src.id, 'u2')), true);
      assert.equal(await s().collect.markSeen(mark(src.id, 'u1', { state: 'large' })), false);
      const seen = await s().collect.listSeen(src.id);
      assert.deepEqual(
        seen.map((x) => [x.uidl, x.state]).sort(),
        [
          ['u1', 'collected'],
          ['u2', 'collected'],
        ],
      );
      assert.equal(seen[0]!.firstSeen.toISOString(), '2030-01-01T00:00:00.000Z');
      await s().collect.forgetSeen(src.id, ['u1']);
      assert.deepEqual((await s().collect.listSeen(src.id)).map((x) => x.uidl), ['u2']);
    });

    it('commits the collected mark with the delivery, and refuses (delivering nothing) a UIDL collected before', async () => {
      const src = await s().collect.addSource('domainpop', 'once', null, '{}');
      const bob = await account('bob@example.org');
      const commit = async (uidl: string) =>
        s().mail.commitDelivery({
          blob: await stage(`Subject: ${uidl}\r\n\r\nbody\r\n`),
          internalDate: new Date(),
          local: [{ accountId: bob, mailbox: 'INBOX', prefix: Buffer.from('X-Rcpt-To: bob@example.org\r\n'), flags: [] }],
          outbound: null,
          collected: mark(src.id, uidl, { dedupe: [{ key: 'mid:<a@x>', recipient: 'bob@example.org' }] }),
        });
      await commit('uidl-1');
      assert.equal(await inboxCount(bob), 1);
      await assert.rejects(commit('uidl-1'), (e) => isFulmarError(e) && e.kind === 'exists');
      assert.equal(await inboxCount(bob), 1, 'the refused commit delivered nothing');
      assert.deepEqual(await s().collect.listSeen(src.id).then((x) => x.map((y) => y.uidl)), ['uidl-1']);
      const dupes = await s().collect.seenDedupe(src.id, [
        { key: 'mid:<a@x>', recipient: 'bob@example.org' },
        { key: 'mid:<a@x>', recipient: 'carol@example.org' },
      ]);
      assert.deepEqual([...dupes], ['mid:<a@x>\nbob@example.org']);
      // Other commits of the same batch are not hurt by the refused one.
      const [again, other] = await Promise.allSettled([commit('uidl-1'), commit('uidl-2')]);
      assert.equal(again.status, 'rejected');
      assert.equal(other.status, 'fulfilled');
      assert.equal(await inboxCount(bob), 2);
    });

    it('keeps dedupe keys while their message is on the server, and drops old ones after', async () => {
      const src = await s().collect.addSource('domainpop', 'dedupe', null, '{}');
      const pair = { key: 'mid:<k@x>', recipient: 'a@example.org' };
      await s().collect.markSeen(mark(src.id, 'u1', { dedupe: [pair], at: new Date('2030-01-01T00:00:00Z') }));
      const later = new Date('2030-02-01T00:00:00Z');
      assert.equal(await s().collect.pruneDedupe(src.id, later), 0, 'u1 is still on the server');
      await s().collect.forgetSeen(src.id, ['u1']);
      assert.equal(await s().collect.pruneDedupe(src.id, new Date('2029-12-31T00:00:00Z')), 0, 'too recent');
      assert.equal(await s().collect.pruneDedupe(src.id, later), 1);
      assert.equal((await s().collect.seenDedupe(src.id, [pair])).size, 0);
    });

    it('keeps a queued message\'s prefix (a collected message\'s Received line) before its bytes', async () => {
      const blob = await stage('Subject: relayed\r\n\r\nhi\r\n');
      const prefix = Buffer.from('Received: from pop.example by mx.example with POP3; Thu, 1 Jan 2030 00:00:00 +0000\r\n');
      const outcome = await s().mail.commitDelivery({
        blob,
        internalDate: new Date(),
        local: [],
        outbound: { mailFrom: 'a@remote.example', recipients: [{ address: 'x@far.example' }], prefix },
      });
      const queued = await s().queue.getQueued(outcome.queueId!);
      assert.deepEqual(queued?.prefix, prefix);
      assert.equal(queued?.size, blob.size);
      const plain = await s().mail.commitDelivery({
        blob: await stage('Subject: plain\r\n\r\nhi\r\n'),
        internalDate: new Date(),
        local: [],
        outbound: { mailFrom: 'a@remote.example', recipients: [{ address: 'x@far.example' }] },
      });
      assert.equal((await s().queue.getQueued(plain.queueId!))?.prefix.length, 0);
    });
  });
}
