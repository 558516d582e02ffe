/**
 * The store contract, continued: what IMAP needs of MailStore (mailbox CREATE / DELETE / RENAME,
 * subscriptions, counts, UID maps, flags with MODSEQ and UNCHANGEDSINCE, COPY and MOVE, expunge
 * tombstones for QRESYNC, blob meta, APPEND's exact mailbox). Called by runStoreContract inside
 * its describe, so its beforeEach/afterEach give each test a fresh store.
 *
 * Backend-neutral: talks to the Store interface only.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeliveryCommit, LocalDelivery, MailEvent, StagedBlob, Store } from '../../src/store/types.js';

export function describeImapContract(current: () => Store): void {
  const s = (): Store => current();

  async function stage(bytes: string): Promise<StagedBlob> {
    const writer = await s().blobs.createWriter();
    await writer.write(Buffer.from(bytes));
    return writer.finish();
  }

  async function account(address: string, quotaBytes: number | null = null): Promise<number> {
    const domain = address.slice(address.indexOf('@') + 1);
    if (!(await s().directory.getDomain(domain))) await s().directory.addDomain(domain);
    const created = await s().directory.createAccount({ address, passwordHash: 'hash', quotaBytes }, [
      { name: 'Sent', specialUse: '\\Sent' },
      { name: 'Trash', specialUse: '\\Trash' },
    ]);
    return created.id;
  }

  function local(accountId: number, mailbox = 'INBOX', flags: string[] = [], prefix = ''): LocalDelivery {
    return { accountId, mailbox, prefix: Buffer.from(prefix), flags };
  }

  function commit(blob: StagedBlob, deliveries: LocalDelivery[], meta: DeliveryCommit['meta'] = null): DeliveryCommit {
    return { blob, meta, internalDate: new Date('2031-05-06T07:08:09.000Z'), local: deliveries, outbound: null };
  }

  /** Delivers `count` distinct messages to one mailbox; returns their UIDs. */
  async function deliver(accountId: number, count: number, mailbox = 'INBOX', flags: string[] = []): Promise<number[]> {
    const uids: number[] = [];
    for (let i = 0; i < count; i++) {
      const blob = await stage(`Subject: m${i}\r\nX-Nonce: ${Math.random()}\r\n\r\nbody ${i}\r\n`);
      const outcome = await s().mail.commitDelivery(commit(blob, [local(accountId, mailbox, flags, `P: ${i}\r\n`)]));
      uids.push(outcome.delivered[0]!.uid);
    }
    return uids;
  }

  async function box(accountId: number, name: string) {
    const found = await s().mail.getMailbox(accountId, name);
    assert.ok(found, `mailbox ${name} exists`);
    return found;
  }

  function record(accountId: number): { events: MailEvent[]; stop(): void } {
    const events: MailEvent[] = [];
    const stop = s().events.subscribe(accountId, (e) => events.push(e));
    return { events, stop };
  }

  async function names(accountId: number): Promise<string[]> {
    return (await s().mail.listMailboxes(accountId)).map((b) => b.name);
  }

  describe('IMAP: mailboxes', () => {
    it('creates a mailbox with its missing superiors, publishing events; refuses duplicates', async () => {
      const a = await account('c@example.org');
      const seen = record(a);
      const created = await s().mail.createMailbox(a, 'Projects/2031/Q1', '\\Archive');
      seen.stop();
      assert.equal(created.name, 'Projects/2031/Q1');
      assert.equal(created.specialUse, '\\Archive');
      assert.equal(created.uidNext, 1);
      assert.equal(created.messageCount, 0);
      assert.equal(created.subscribed, false, 'CREATE does not subscribe');
      assert.deepEqual(await s().mail.getMailboxById(created.id), created);
      assert.equal(await s().mail.getMailboxById(created.id + 1000), null);
      assert.deepEqual(await names(a), ['INBOX', 'Projects', 'Projects/2031', 'Projects/2031/Q1', 'Sent', 'Trash']);
      assert.equal((await box(a, 'Projects')).specialUse, null);
      assert.deepEqual(
        seen.events.map((e) => (e.type === 'mailbox' ? e.change : e.type)),
        ['created', 'created', 'created'],
      );
      assert.ok(seen.events.some((e) => e.mailboxId === created.id));

      await assert.rejects(s().mail.createMailbox(a, 'Projects/2031/Q1'), { kind: 'exists' });
      await assert.rejects(s().mail.createMailbox(a, 'inbox'), { kind: 'exists' });
      await assert.rejects(s().mail.createMailbox(a, 'Sent/'), { kind: 'exists' });
      await assert.rejects(s().mail.createMailbox(a, 'a//b'), { kind: 'invalid' });
      await assert.rejects(s().mail.createMailbox(a, ''), { kind: 'invalid' });
      await assert.rejects(s().mail.createMailbox(a + 1000, 'Nobody'), { kind: 'not-found' });
      // A trailing delimiter: the client means to create children under it later.
      assert.equal((await s().mail.createMailbox(a, 'Later/')).name, 'Later');
      // Names are case-sensitive except INBOX, whose children are spelled INBOX/ too.
      assert.equal((await s().mail.createMailbox(a, 'projects')).name, 'projects');
      assert.equal((await s().mail.createMailbox(a, 'inbox/Sub')).name, 'INBOX/Sub');
      const boxes = await s().mail.listMailboxes(a);
      assert.equal(new Set(boxes.map((b) => b.uidValidity)).size, boxes.length, 'UIDVALIDITY unique per mailbox');
    });

    it('subscribes an account’s initial mailboxes; subscriptions are names that outlive mailboxes', async () => {
      const a = await account('sub@example.org');
      assert.deepEqual(await s().mail.listSubscriptions(a), ['INBOX', 'Sent', 'Trash']);
      assert.ok((await s().mail.listMailboxes(a)).every((b) => b.subscribed));
      await s().mail.createMailbox(a, 'Lists');
      await s().mail.setSubscribed(a, 'Lists', true);
      await s().mail.setSubscribed(a, 'Lists', true); // twice is harmless
      await s().mail.setSubscribed(a, 'Not/There/Yet', true);
      await s().mail.setSubscribed(a, 'Trash', false);
      await s().mail.setSubscribed(a, 'Never', false);
      assert.deepEqual(await s().mail.listSubscriptions(a), ['INBOX', 'Lists', 'Not/There/Yet', 'Sent']);
      assert.equal((await box(a, 'Lists')).subscribed, true);
      assert.equal((await box(a, 'Trash')).subscribed, false);

      await s().mail.deleteMailbox(a, 'Lists');
      assert.deepEqual(await s().mail.listSubscriptions(a), ['INBOX', 'Lists', 'Not/There/Yet', 'Sent'], 'kept (RFC 3501 6.3.6)');
      const again = await s().mail.createMailbox(a, 'Lists');
      assert.equal(again.subscribed, true, 'a mailbox re-created under a subscribed name is subscribed');
      await assert.rejects(s().mail.setSubscribed(a + 1000, 'X', true), { kind: 'not-found' });
      await assert.rejects(s().mail.setSubscribed(a, 'bad//name', true), { kind: 'invalid' });
      // Subscriptions go with the account.
      await s().directory.removeAccount('sub@example.org');
      assert.deepEqual(await s().mail.listSubscriptions(a), []);
    });

    it('deletes a mailbox with its messages, releasing quota and blobs; refuses INBOX and parents', async () => {
      const a = await account('del@example.org');
      await s().mail.createMailbox(a, 'Old/Sub');
      const old = await box(a, 'Old');
      const blob = await stage('Subject: doomed\r\n\r\nbye\r\n');
      await s().mail.commitDelivery(commit(blob, [local(a, 'Old'), local(a, 'Old', ['\\Seen'])]));
      assert.ok((await s().directory.getAccountById(a))!.usedBytes > 0);

      await assert.rejects(s().mail.deleteMailbox(a, 'INBOX'), { kind: 'invalid', message: /INBOX/ });
      await assert.rejects(s().mail.deleteMailbox(a, 'inbox'), { kind: 'invalid' });
      await assert.rejects(s().mail.deleteMailbox(a, 'Old'), { kind: 'invalid', message: /children; delete them first/ });
      await assert.rejects(s().mail.deleteMailbox(a, 'Nope'), { kind: 'not-found' });

      await s().mail.deleteMailbox(a, 'Old/Sub');
      const seen = record(a);
      await s().mail.deleteMailbox(a, 'Old');
      seen.stop();
      assert.deepEqual(seen.events, [{ type: 'mailbox', accountId: a, mailboxId: old.id, change: 'deleted' }]);
      assert.deepEqual(await names(a), ['INBOX', 'Sent', 'Trash']);
      assert.deepEqual(await s().mail.listMessages(old.id), []);
      assert.equal(await s().mail.getMailboxById(old.id), null);
      assert.equal((await s().directory.getAccountById(a))!.usedBytes, 0);
      assert.equal(await s().blobs.exists(blob.hash), false, 'the last reference went with the mailbox');
      await assert.rejects(s().mail.mailboxCounts(old.id), { kind: 'not-found' });
      const again = await s().mail.createMailbox(a, 'Old');
      assert.notEqual(again.uidValidity, old.uidValidity);
      // A special-use mailbox may go too.
      await s().mail.deleteMailbox(a, 'Trash');
      assert.equal(await s().mail.getMailbox(a, 'Trash'), null);
    });

    it('renames a mailbox with its children, keeping ids, UIDVALIDITY, messages, special use, subscriptions', async () => {
      const a = await account('ren@example.org');
      await s().mail.createMailbox(a, 'Sent/2030');
      await s().mail.createMailbox(a, 'Sent/2030/Q4');
      await s().mail.createMailbox(a, 'Sentinel'); // shares the prefix "Sent", is no child
      await s().mail.setSubscribed(a, 'Sent/2030', true);
      await deliver(a, 2, 'Sent/2030');
      const before = await s().mail.listMailboxes(a);
      const byName = new Map(before.map((b) => [b.name, b]));
      const seen = record(a);
      await s().mail.renameMailbox(a, 'Sent', 'Archive/Outgoing');
      seen.stop();

      assert.deepEqual(await names(a), [
        'INBOX',
        'Archive',
        'Archive/Outgoing',
        'Archive/Outgoing/2030',
        'Archive/Outgoing/2030/Q4',
        'Sentinel',
        'Trash',
      ]);
      const moved = await box(a, 'Archive/Outgoing');
      assert.equal(moved.id, byName.get('Sent')!.id);
      assert.equal(moved.uidValidity, byName.get('Sent')!.uidValidity);
      assert.equal(moved.specialUse, '\\Sent', 'special use kept through a rename');
      const child = await box(a, 'Archive/Outgoing/2030');
      assert.equal(child.id, byName.get('Sent/2030')!.id);
      assert.equal(child.messageCount, 2);
      assert.equal(child.uidValidity, byName.get('Sent/2030')!.uidValidity);
      assert.equal((await box(a, 'Archive')).subscribed, false);
      assert.deepEqual(await s().mail.listSubscriptions(a), ['INBOX', 'Archive/Outgoing', 'Archive/Outgoing/2030', 'Trash']);
      const changes = seen.events.map((e) => (e.type === 'mailbox' ? `${e.change}:${e.mailboxId}` : e.type)).sort();
      assert.deepEqual(
        changes,
        [
          `created:${(await box(a, 'Archive')).id}`,
          `renamed:${moved.id}`,
          `renamed:${child.id}`,
          `renamed:${byName.get('Sent/2030/Q4')!.id}`,
        ].sort(),
      );

      await assert.rejects(s().mail.renameMailbox(a, 'Nope', 'Other'), { kind: 'not-found' });
      await assert.rejects(s().mail.renameMailbox(a, 'Trash', 'Sentinel'), { kind: 'exists' });
      await assert.rejects(s().mail.renameMailbox(a, 'Trash', 'inbox'), { kind: 'exists' });
      await assert.rejects(s().mail.renameMailbox(a, 'Archive', 'Archive/Deeper'), { kind: 'invalid', message: /inside itself/ });
      await s().mail.createMailbox(a, 'Elsewhere/2030');
      await s().mail.renameMailbox(a, 'Elsewhere', 'Tmp');
      assert.ok(await s().mail.getMailbox(a, 'Tmp/2030'));
    });

    it('renames around gaps in the hierarchy: a child name taken, names that overlap', async () => {
      // An account may be made with mailboxes whose superiors do not exist.
      await s().directory.addDomain('gaps.example');
      const { id: a } = await s().directory.createAccount({ address: 'gap@gaps.example', passwordHash: 'h', quotaBytes: null }, [
        { name: 'Src', specialUse: null },
        { name: 'Src/2030', specialUse: null },
        { name: 'Dst/2030', specialUse: null },
        { name: 'T/B', specialUse: null },
        { name: 'T/B/B/C', specialUse: null },
        { name: 'T/B/C', specialUse: null },
      ]);
      const before = await names(a);
      await assert.rejects(s().mail.renameMailbox(a, 'Src', 'Dst'), { kind: 'exists', message: /Dst\/2030/ });
      assert.deepEqual(await names(a), before, 'a refused rename changes nothing');
      // T/B -> T: T/B/B/C becomes T/B/C, the old name of a sibling that itself becomes T/C.
      const ids = new Map((await s().mail.listMailboxes(a)).map((b) => [b.name, b.id]));
      await s().mail.renameMailbox(a, 'T/B', 'T');
      assert.equal((await box(a, 'T')).id, ids.get('T/B'));
      assert.equal((await box(a, 'T/B/C')).id, ids.get('T/B/B/C'));
      assert.equal((await box(a, 'T/C')).id, ids.get('T/B/C'));
      assert.equal(await s().mail.getMailbox(a, 'T/B'), null);
      // The subscriptions move with the names: none is lost where an old and a new name meet.
      assert.deepEqual((await s().mail.listSubscriptions(a)).filter((n) => n.startsWith('T')).sort(), ['T', 'T/B/C', 'T/C']);
    });

    it('renames INBOX: a new mailbox takes its messages and UIDs; INBOX stays, empty, with its UIDVALIDITY', async () => {
      const a = await account('inbox@example.org');
      await s().mail.createMailbox(a, 'INBOX/Child');
      const uids = await deliver(a, 3);
      await s().mail.storeFlags((await box(a, 'INBOX')).id, { uids: [2], mode: 'add', flags: ['\\Seen'] });
      const inbox = await box(a, 'INBOX');
      const usedBefore = (await s().directory.getAccountById(a))!.usedBytes;
      const seen = record(a);
      await s().mail.renameMailbox(a, 'INBOX', 'Old Mail/2031');
      seen.stop();

      const after = await box(a, 'INBOX');
      assert.equal(after.id, inbox.id);
      assert.equal(after.uidValidity, inbox.uidValidity);
      assert.equal(after.uidNext, inbox.uidNext);
      assert.equal(after.messageCount, 0);
      assert.ok(after.highestModSeq > inbox.highestModSeq);
      const moved = await box(a, 'Old Mail/2031');
      assert.notEqual(moved.uidValidity, inbox.uidValidity);
      assert.equal(moved.uidNext, inbox.uidNext);
      assert.ok(moved.highestModSeq >= inbox.highestModSeq);
      assert.deepEqual(await s().mail.listUids(moved.id), uids);
      assert.deepEqual((await s().mail.listFlags(moved.id, uids)).map((f) => f.flags), [[], ['\\Seen'], []]);
      assert.ok(await s().mail.getMailbox(a, 'INBOX/Child'), 'children of INBOX are unaffected');
      assert.ok(await s().mail.getMailbox(a, 'Old Mail'));
      assert.equal((await s().directory.getAccountById(a))!.usedBytes, usedBefore);
      assert.deepEqual(
        seen.events.filter((e) => e.type === 'expunge').map((e) => [e.mailboxId, 'uid' in e ? e.uid : 0]),
        uids.map((u) => [inbox.id, u]),
      );
      assert.ok(seen.events.some((e) => e.type === 'mailbox' && e.change === 'created' && e.mailboxId === moved.id));
      assert.deepEqual(await s().mail.listVanished(inbox.id, inbox.highestModSeq), uids);
      // New mail goes on with INBOX's own UIDs.
      const [next] = await deliver(a, 1);
      assert.equal(next, inbox.uidNext);
      await assert.rejects(s().mail.renameMailbox(a, 'INBOX', 'Old Mail/2031'), { kind: 'exists' });
      // INBOX may be renamed to a child of its own.
      await s().mail.renameMailbox(a, 'INBOX', 'INBOX/Saved');
      assert.equal((await box(a, 'INBOX/Saved')).messageCount, 1);
    });
  });

  describe('IMAP: reading a mailbox', () => {
    it('lists UIDs, counts, flags and rows by UID set, skipping missing UIDs', async () => {
      const a = await account('read@example.org');
      const inbox = await box(a, 'INBOX');
      const blob = await stage('Subject: same\r\n\r\nsame body\r\n');
      const meta = { envelope: '{"subject":"same"}', structure: '{"type":"text/plain"}' };
      await s().mail.commitDelivery(commit(blob, [local(a, 'INBOX', [], 'A: 1\r\n'), local(a, 'INBOX', ['\\Seen'], 'A: 22\r\n')], meta));
      await deliver(a, 3, 'INBOX', ['\\Seen', '\\Deleted']);
      await deliver(a, 1);
      await s().mail.expungeMessages(inbox.id, [3]);
      assert.deepEqual(await s().mail.listUids(inbox.id), [1, 2, 4, 5, 6]);

      const counts = await s().mail.mailboxCounts(inbox.id);
      const rows = await s().mail.listMessages(inbox.id);
      assert.deepEqual(counts, {
        messages: 5,
        unseen: 2,
        deleted: 2,
        size: rows.reduce((sum, m) => sum + m.size, 0),
        firstUnseenUid: 1,
      });
      await s().mail.storeFlags(inbox.id, { uids: [1], mode: 'add', flags: ['\\seen'] });
      assert.equal((await s().mail.mailboxCounts(inbox.id)).firstUnseenUid, 6);
      await s().mail.storeFlags(inbox.id, { uids: [6], mode: 'add', flags: ['\\SEEN'] });
      assert.equal((await s().mail.mailboxCounts(inbox.id)).firstUnseenUid, null);
      const empty = await s().mail.mailboxCounts((await box(a, 'Trash')).id);
      assert.deepEqual(empty, { messages: 0, unseen: 0, deleted: 0, size: 0, firstUnseenUid: null });

      const flags = await s().mail.listFlags(inbox.id, [6, 3, 1, 99, 2, 2, 0, -1]);
      assert.deepEqual(
        flags.map((f) => [f.uid, f.flags]),
        [
          [1, ['\\Seen']],
          [2, ['\\Seen']],
          [6, ['\\Seen']],
        ],
      );
      assert.ok(flags.every((f) => f.modSeq >= 1));
      assert.deepEqual(await s().mail.listFlags(inbox.id, []), []);

      const full = await s().mail.listMessagesByUid(inbox.id, [5, 2, 1, 3, 1000]);
      assert.deepEqual(
        full.map((m) => m.uid),
        [1, 2, 5],
      );
      assert.deepEqual(full[0]!.meta, meta);
      assert.deepEqual(full[1]!.meta, meta);
      assert.equal(full[1]!.prefix.toString(), 'A: 22\r\n');
      assert.equal(full[1]!.size, full[1]!.prefix.length + blob.size);
      assert.equal(full[2]!.meta, null);
      assert.deepEqual(full[2]!.flags, ['\\Seen', '\\Deleted']);
      assert.equal(full[2]!.internalDate.toISOString(), '2031-05-06T07:08:09.000Z');
      const { meta: _meta, ...plain } = full[0]!;
      assert.deepEqual(plain, await s().mail.getMessage(inbox.id, 1));
    });

    it('keeps blob meta with the blob: first one wins at delivery, set later, gone with the last reference', async () => {
      const a = await account('meta@example.org');
      const inbox = await box(a, 'INBOX');
      const blob = await stage('Subject: meta\r\n\r\nmeta\r\n');
      const first = { envelope: '["first"]', structure: '["s1"]' };
      await s().mail.commitDelivery(commit(blob, [local(a)], first));
      assert.deepEqual(await s().mail.getBlobMeta(blob.hash), first);
      await s().mail.commitDelivery(commit(await stage('Subject: meta\r\n\r\nmeta\r\n'), [local(a)], { envelope: '["second"]', structure: '["s2"]' }));
      assert.deepEqual(await s().mail.getBlobMeta(blob.hash), first, 'kept if already there');

      const other = await stage('Subject: no meta\r\n\r\nlater\r\n');
      const [uid] = (await s().mail.commitDelivery(commit(other, [local(a)]))).delivered.map((d) => d.uid);
      assert.equal(await s().mail.getBlobMeta(other.hash), null);
      const computed = { envelope: '["lazy"]', structure: '["computed"]' };
      await s().mail.setBlobMeta(other.hash, computed);
      assert.deepEqual(await s().mail.getBlobMeta(other.hash), computed);
      assert.deepEqual((await s().mail.listMessagesByUid(inbox.id, [uid!]))[0]!.meta, computed);

      await s().mail.expungeMessages(inbox.id, await s().mail.listUids(inbox.id));
      assert.equal(await s().mail.getBlobMeta(blob.hash), null, 'meta goes with the last reference');
      assert.equal(await s().mail.getBlobMeta(other.hash), null);
      await s().mail.setBlobMeta(other.hash, computed);
      assert.equal(await s().mail.getBlobMeta(other.hash), null, 'no meta is kept for a blob nothing references');
    });

    it('answers for 100,000 UIDs at once (no parameter limit), correctly', async () => {
      const a = await account('big@example.org');
      const inbox = await box(a, 'INBOX');
      const blob = await stage('Subject: tiny\r\n\r\nx\r\n');
      const total = 100_000;
      const deliveries = Array.from({ length: total }, (_, i) => local(a, 'INBOX', i % 3 === 0 ? ['\\Seen'] : []));
      await s().mail.commitDelivery(commit(blob, deliveries));
      const expunged = Array.from({ length: total }, (_, i) => i + 1).filter((u) => u % 7 === 0);
      await s().mail.expungeMessages(inbox.id, expunged);
      const uids = await s().mail.listUids(inbox.id);
      assert.equal(uids.length, total - expunged.length);

      // Every UID asked for, plus missing ones: the expunged and some past the end.
      const asked = Array.from({ length: total + 50 }, (_, i) => total + 50 - i);
      const flags = await s().mail.listFlags(inbox.id, asked);
      assert.equal(flags.length, uids.length);
      assert.deepEqual(
        flags.map((f) => f.uid),
        uids,
      );
      for (const f of flags) assert.deepEqual(f.flags, (f.uid - 1) % 3 === 0 ? ['\\Seen'] : [], `flags of ${f.uid}`);
      const counts = await s().mail.mailboxCounts(inbox.id);
      assert.equal(counts.messages, uids.length);
      assert.equal(counts.unseen, uids.filter((u) => (u - 1) % 3 !== 0).length);
      assert.equal(counts.firstUnseenUid, 2);

      // A sparse set far apart, and every other UID.
      assert.deepEqual(
        (await s().mail.listFlags(inbox.id, [99_999, 1, 50_000, 7])).map((f) => f.uid),
        [1, 50_000, 99_999],
      );
      const everyOther = uids.filter((_, i) => i % 2 === 0);
      assert.deepEqual(
        (await s().mail.listFlags(inbox.id, everyOther)).map((f) => f.uid),
        everyOther,
      );
      const stored = await s().mail.storeFlags(inbox.id, { uids: asked, mode: 'add', flags: ['\\Seen'] });
      assert.equal(stored.updated.length, counts.unseen);
      assert.equal((await s().mail.mailboxCounts(inbox.id)).unseen, 0);
      const changed = await s().mail.listFlags(inbox.id, asked, stored.updated[0]!.modSeq - 1);
      assert.equal(changed.length, counts.unseen);
    });
  });

  describe('IMAP: flags and MODSEQ', () => {
    it('adds, removes and sets flags canonically, with a new MODSEQ and a flags event per changed message', async () => {
      const a = await account('flags@example.org');
      const inbox = await box(a, 'INBOX');
      await deliver(a, 3);
      const start = (await box(a, 'INBOX')).highestModSeq;
      const seen = record(a);

      const added = await s().mail.storeFlags(inbox.id, { uids: [1, 2, 3, 42], mode: 'add', flags: ['\\seen', '$Label1', '\\Recent'] });
      assert.deepEqual(added.modified, []);
      assert.deepEqual(
        added.updated.map((u) => [u.uid, u.flags]),
        [1, 2, 3].map((uid) => [uid, ['\\Seen', '$Label1']]),
      );
      const m1 = added.updated[0]!.modSeq;
      assert.ok(m1 > start);
      assert.ok(added.updated.every((u) => u.modSeq === m1), 'one MODSEQ per transaction');
      assert.equal((await box(a, 'INBOX')).highestModSeq, m1);

      // Nothing would change: nothing is touched, no MODSEQ spent.
      const again = await s().mail.storeFlags(inbox.id, { uids: [1, 2], mode: 'add', flags: ['\\SEEN', '$label1'] });
      assert.deepEqual(again, { updated: [], modified: [] });
      assert.equal((await box(a, 'INBOX')).highestModSeq, m1);

      const removed = await s().mail.storeFlags(inbox.id, { uids: [2], mode: 'remove', flags: ['\\SEEN', 'nothere'] });
      assert.deepEqual(removed.updated.map((u) => u.flags), [['$Label1']]);
      const m2 = removed.updated[0]!.modSeq;
      assert.ok(m2 > m1);
      const set = await s().mail.storeFlags(inbox.id, { uids: [3], mode: 'set', flags: ['\\Flagged', '$LABEL1', '\\Answered', '\\Draft', '\\Deleted'] });
      assert.deepEqual(set.updated[0]!.flags, ['\\Flagged', '$Label1', '\\Answered', '\\Draft', '\\Deleted'], 'a keyword keeps its first spelling');
      const m3 = set.updated[0]!.modSeq;
      assert.ok(m3 > m2);
      const cleared = await s().mail.storeFlags(inbox.id, { uids: [3], mode: 'set', flags: [] });
      assert.deepEqual(cleared.updated[0]!.flags, []);
      seen.stop();

      assert.deepEqual(
        seen.events.map((e) => (e.type === 'flags' ? [e.uid, e.modSeq, e.flags] : e.type)),
        [
          [1, m1, ['\\Seen', '$Label1']],
          [2, m1, ['\\Seen', '$Label1']],
          [3, m1, ['\\Seen', '$Label1']],
          [2, m2, ['$Label1']],
          [3, m3, ['\\Flagged', '$Label1', '\\Answered', '\\Draft', '\\Deleted']],
          [3, cleared.updated[0]!.modSeq, []],
        ],
      );
      const rows = await s().mail.listFlags(inbox.id, [1, 2, 3]);
      assert.deepEqual(rows.map((r) => r.modSeq), [m1, m2, cleared.updated[0]!.modSeq]);
      // CHANGEDSINCE keeps the messages changed after the given MODSEQ.
      assert.deepEqual((await s().mail.listFlags(inbox.id, [1, 2, 3], m1)).map((r) => r.uid), [2, 3]);
      assert.deepEqual((await s().mail.listFlags(inbox.id, [1, 2, 3], m2)).map((r) => r.uid), [3]);

      await assert.rejects(s().mail.storeFlags(inbox.id, { uids: [1], mode: 'add', flags: ['\\Bogus'] }), { kind: 'invalid' });
      await assert.rejects(s().mail.storeFlags(inbox.id, { uids: [1], mode: 'add', flags: ['two words'] }), { kind: 'invalid' });
      await assert.rejects(s().mail.storeFlags(inbox.id + 1000, { uids: [1], mode: 'add', flags: ['\\Seen'] }), { kind: 'not-found' });
      // New deliveries get MODSEQs above every flag change.
      const [uid] = await deliver(a, 1);
      assert.ok((await s().mail.listFlags(inbox.id, [uid!]))[0]!.modSeq > cleared.updated[0]!.modSeq);
    });

    it('UNCHANGEDSINCE: changes only messages not modified since, lists the others as modified', async () => {
      const a = await account('cond@example.org');
      const inbox = await box(a, 'INBOX');
      await deliver(a, 4);
      const base = (await box(a, 'INBOX')).highestModSeq;
      await s().mail.storeFlags(inbox.id, { uids: [3], mode: 'add', flags: ['\\Flagged'] });
      await s().mail.storeFlags(inbox.id, { uids: [4], mode: 'add', flags: ['\\Seen'] });

      const result = await s().mail.storeFlags(inbox.id, { uids: [1, 2, 3, 4, 9], mode: 'add', flags: ['\\Seen'], unchangedSince: base });
      assert.deepEqual(result.modified, [3, 4]);
      assert.deepEqual(result.updated.map((u) => [u.uid, u.flags]), [
        [1, ['\\Seen']],
        [2, ['\\Seen']],
      ]);
      assert.deepEqual(await s().mail.listFlags(inbox.id, [3, 4]).then((r) => r.map((f) => f.flags)), [['\\Flagged'], ['\\Seen']]);

      // Passing messages whose flags stay the same are reported, with their current MODSEQ.
      const now = (await box(a, 'INBOX')).highestModSeq;
      const same = await s().mail.storeFlags(inbox.id, { uids: [1, 4], mode: 'add', flags: ['\\Seen'], unchangedSince: now });
      assert.deepEqual(same.modified, []);
      const current = await s().mail.listFlags(inbox.id, [1, 4]);
      assert.deepEqual(same.updated, current);
      assert.equal((await box(a, 'INBOX')).highestModSeq, now, 'nothing changed, no MODSEQ spent');
      // UNCHANGEDSINCE 0 fails every message (RFC 7162 3.1.3).
      assert.deepEqual((await s().mail.storeFlags(inbox.id, { uids: [1, 2], mode: 'set', flags: [], unchangedSince: 0 })).modified, [1, 2]);
    });
  });

  describe('IMAP: copy, move, vanished', () => {
    it('copies with new UIDs in source order, flags, dates and prefixes kept, references and quota added', async () => {
      const a = await account('copy@example.org');
      const inbox = await box(a, 'INBOX');
      const trash = await box(a, 'Trash');
      await deliver(a, 1, 'Trash'); // the target's UIDs are its own
      const uids = await deliver(a, 3, 'INBOX', ['\\Seen']);
      await s().mail.storeFlags(inbox.id, { uids: [2], mode: 'add', flags: ['Work'] });
      const used = (await s().directory.getAccountById(a))!.usedBytes;
      const sourceRows = await s().mail.listMessages(inbox.id);
      const trashModSeq = (await box(a, 'Trash')).highestModSeq;
      const seen = record(a);

      const result = await s().mail.copyMessages(inbox.id, [3, 1, 77, 2], trash.id);
      seen.stop();
      assert.deepEqual(result, { uidValidity: trash.uidValidity, mapping: [[1, 2], [2, 3], [3, 4]] });
      const copies = await s().mail.listMessagesByUid(trash.id, [2, 3, 4]);
      copies.forEach((copy, i) => {
        const original = sourceRows[i]!;
        assert.deepEqual(copy.flags, original.flags);
        assert.equal(copy.internalDate.getTime(), original.internalDate.getTime());
        assert.deepEqual(copy.prefix, original.prefix);
        assert.equal(copy.blobHash, original.blobHash);
        assert.equal(copy.size, original.size);
        assert.ok(copy.modSeq > trashModSeq);
      });
      assert.deepEqual(await s().mail.listUids(inbox.id), uids, 'the source keeps its messages');
      assert.equal((await box(a, 'Trash')).uidNext, 5);
      assert.equal((await s().directory.getAccountById(a))!.usedBytes, used + sourceRows.reduce((n, m) => n + m.size, 0));
      assert.deepEqual(
        seen.events.map((e) => [e.type, e.mailboxId, 'uid' in e ? e.uid : 0]),
        [2, 3, 4].map((uid) => ['exists', trash.id, uid]),
      );
      // Each copy holds its own blob reference.
      await s().mail.expungeMessages(inbox.id, uids);
      for (const copy of copies) assert.equal(await s().blobs.exists(copy.blobHash), true);
      await s().mail.expungeMessages(trash.id, [2, 3, 4]);
      for (const copy of copies) assert.equal(await s().blobs.exists(copy.blobHash), false);

      assert.deepEqual(await s().mail.copyMessages(inbox.id, [999], trash.id), { uidValidity: trash.uidValidity, mapping: [] });
      // COPY into the same mailbox is allowed: new UIDs.
      const [single] = await deliver(a, 1);
      const self = await s().mail.copyMessages(inbox.id, [single!], inbox.id);
      assert.deepEqual(self.mapping, [[single, single! + 1]]);
    });

    it('refuses a copy past the quota, or to another account or a missing mailbox, changing nothing', async () => {
      const a = await account('quota@example.org', 10_000);
      const b = await account('other@example.org');
      const inbox = await box(a, 'INBOX');
      const trash = await box(a, 'Trash');
      const uids = await deliver(a, 2);
      const used = (await s().directory.getAccountById(a))!.usedBytes;
      await s().directory.setQuota('quota@example.org', used + 10); // room for no copy
      const seen = record(a);
      await assert.rejects(s().mail.copyMessages(inbox.id, uids, trash.id), { kind: 'no-quota' });
      seen.stop();
      assert.deepEqual(seen.events, []);
      assert.equal((await box(a, 'Trash')).messageCount, 0);
      assert.equal((await box(a, 'Trash')).uidNext, 1);
      assert.equal((await s().directory.getAccountById(a))!.usedBytes, used);
      // MOVE keeps the usage as it is: allowed at the quota.
      assert.equal((await s().mail.moveMessages(inbox.id, uids, trash.id)).mapping.length, 2);
      assert.equal((await s().directory.getAccountById(a))!.usedBytes, used);

      await assert.rejects(s().mail.copyMessages(trash.id, [1], (await box(b, 'INBOX')).id), { kind: 'invalid' });
      await assert.rejects(s().mail.moveMessages(trash.id, [1], (await box(b, 'INBOX')).id), { kind: 'invalid' });
      await assert.rejects(s().mail.copyMessages(trash.id, [1], trash.id + 1000), { kind: 'not-found' });
      await assert.rejects(s().mail.copyMessages(trash.id + 1000, [1], trash.id), { kind: 'not-found' });
      assert.deepEqual(await s().mail.listUids(trash.id), [1, 2]);
    });

    it('moves atomically: new UIDs in the target, expunged (with tombstones) from the source', async () => {
      const a = await account('move@example.org');
      const inbox = await box(a, 'INBOX');
      const sent = await box(a, 'Sent');
      const uids = await deliver(a, 4, 'INBOX', ['\\Seen']);
      const rows = await s().mail.listMessages(inbox.id);
      const used = (await s().directory.getAccountById(a))!.usedBytes;
      const before = (await box(a, 'INBOX')).highestModSeq;
      const seen = record(a);
      const result = await s().mail.moveMessages(inbox.id, [4, 2], sent.id);
      seen.stop();

      assert.deepEqual(result, { uidValidity: sent.uidValidity, mapping: [[2, 1], [4, 2]] });
      assert.deepEqual(await s().mail.listUids(inbox.id), [1, 3]);
      const moved = await s().mail.listMessages(sent.id);
      assert.deepEqual(moved.map((m) => [m.uid, m.blobHash, m.prefix.toString(), m.flags]), [
        [1, rows[1]!.blobHash, rows[1]!.prefix.toString(), ['\\Seen']],
        [2, rows[3]!.blobHash, rows[3]!.prefix.toString(), ['\\Seen']],
      ]);
      assert.equal((await s().directory.getAccountById(a))!.usedBytes, used);
      const after = await box(a, 'INBOX');
      assert.ok(after.highestModSeq > before);
      assert.deepEqual(await s().mail.listVanished(inbox.id, before), [2, 4]);
      assert.deepEqual(await s().mail.listVanished(inbox.id, after.highestModSeq), []);
      const kinds = seen.events.map((e) => [e.type, e.mailboxId, 'uid' in e ? e.uid : 0]);
      assert.deepEqual(
        kinds.filter((k) => k[0] === 'exists'),
        [
          ['exists', sent.id, 1],
          ['exists', sent.id, 2],
        ],
      );
      assert.deepEqual(
        kinds.filter((k) => k[0] === 'expunge'),
        [
          ['expunge', inbox.id, 2],
          ['expunge', inbox.id, 4],
        ],
      );
      assert.ok(seen.events.every((e) => e.type !== 'expunge' || e.modSeq === after.highestModSeq));

      // A failed move changes nothing: the target is gone.
      await s().mail.deleteMailbox(a, 'Trash');
      const trashGone = (await s().mail.listMailboxes(a)).length;
      await assert.rejects(s().mail.moveMessages(inbox.id, [1, 3], sent.id + 1000), { kind: 'not-found' });
      assert.deepEqual(await s().mail.listUids(inbox.id), [1, 3]);
      assert.equal((await s().mail.listMailboxes(a)).length, trashGone);
      assert.deepEqual(await s().mail.listUids(inbox.id), uids.filter((u) => u === 1 || u === 3));
    });

    it('remembers expunged UIDs with their MODSEQ for VANISHED', async () => {
      const a = await account('van@example.org');
      const inbox = await box(a, 'INBOX');
      await deliver(a, 5);
      const m0 = (await box(a, 'INBOX')).highestModSeq;
      assert.deepEqual(await s().mail.listVanished(inbox.id, 0), []);
      await s().mail.expungeMessages(inbox.id, [2, 4, 40]);
      const m1 = (await box(a, 'INBOX')).highestModSeq;
      await s().mail.expungeMessages(inbox.id, [5]);
      assert.deepEqual(await s().mail.listVanished(inbox.id, 0), [2, 4, 5]);
      assert.deepEqual(await s().mail.listVanished(inbox.id, m0), [2, 4, 5]);
      assert.deepEqual(await s().mail.listVanished(inbox.id, m1), [5]);
      assert.deepEqual(await s().mail.listVanished((await box(a, 'Sent')).id, 0), []);
    });
  });

  describe('IMAP: APPEND', () => {
    it('fails only the commit whose exact mailbox is missing', async () => {
      const a = await account('append@example.org');
      const missing = await stage('Subject: nowhere\r\n\r\nx\r\n');
      const [ok, failed, invalid] = await Promise.allSettled([
        s().mail.commitDelivery(commit(await stage('Subject: sent\r\n\r\ny\r\n'), [{ ...local(a, 'Sent', ['\\Seen']), exactMailbox: true }])),
        s().mail.commitDelivery(commit(missing, [{ ...local(a, 'No Such'), exactMailbox: true }])),
        s().mail.commitDelivery(commit(await stage('Subject: bad\r\n\r\nz\r\n'), [{ ...local(a, 'bad//name'), exactMailbox: true }])),
      ]);
      assert.equal(ok.status, 'fulfilled');
      assert.equal(ok.value.delivered[0]!.mailboxId, (await box(a, 'Sent')).id);
      assert.equal(failed.status, 'rejected');
      assert.equal((failed.reason as { kind: string }).kind, 'not-found');
      assert.equal(invalid.status, 'rejected');
      assert.equal(await s().blobs.exists(missing.hash), false, 'the failed commit left no blob');
      assert.equal((await box(a, 'INBOX')).messageCount, 0, 'no fallback to INBOX');
      await assert.rejects(
        s().mail.commitDelivery(commit(await stage('x'), [local(a, 'INBOX', ['\\Unknown'])])),
        { kind: 'invalid' },
      );
    });
  });
}
