/**
 * The store contract, continued: IMAP header SEARCH (MailStore.searchHeaderField) over the
 * search text cached with each blob (BlobMeta.search), and that text kept in step with the
 * messages through every write: delivery (with meta, with meta cached by an earlier delivery,
 * without meta then setBlobMeta), COPY, MOVE, EXPUNGE, RENAME (INBOX and others), DELETE and
 * account removal. Called by runStoreContract inside its describe, so its beforeEach/afterEach
 * give each test a fresh store.
 *
 * Backend-neutral: talks to the Store interface only. The search text is written here by hand
 * (the store keeps it opaque but for its SearchFields shape); pipeline/message-meta.ts computes
 * it in the server.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BlobMeta, DeliveryCommit, LocalDelivery, SearchFields, StagedBlob, Store } from '../../src/store/types.js';

export function describeSearchContract(current: () => Store): void {
  const s = (): Store => current();

  async function stage(bytes: string): Promise<StagedBlob> {
    const writer = await s().blobs.createWriter();
    await writer.write(Buffer.from(bytes));
    return writer.finish();
  }

  async function account(address: string): Promise<number> {
    const domain = address.slice(address.indexOf('@') + 1);
    if (!(await s().directory.getDomain(domain))) await s().directory.addDomain(domain);
    const created = await s().directory.createAccount({ address, passwordHash: 'hash', quotaBytes: null }, [
      { name: 'Archive', specialUse: '\\Archive' },
    ]);
    return created.id;
  }

  function local(accountId: number, mailbox = 'INBOX'): LocalDelivery {
    return { accountId, mailbox, prefix: Buffer.from('X-P: 1\r\n'), flags: [] };
  }

  function meta(fields: Partial<SearchFields>): BlobMeta {
    const all: SearchFields = { subject: null, from: null, to: null, cc: null, bcc: null, ...fields };
    return { envelope: '{}', structure: '{}', search: JSON.stringify(all) };
  }

  function commit(blob: StagedBlob, deliveries: LocalDelivery[], m: DeliveryCommit['meta'] = null): DeliveryCommit {
    return { blob, meta: m, internalDate: new Date('2031-05-06T07:08:09.000Z'), local: deliveries, outbound: null };
  }

  /** Delivers one distinct message with `fields` as its search text to each of `deliveries`; returns the UIDs. */
  async function deliver(deliveries: LocalDelivery[], fields: Partial<SearchFields> | null): Promise<number[]> {
    const blob = await stage(`Subject: x\r\nX-Nonce: ${Math.random()}\r\n\r\nbody\r\n`);
    const outcome = await s().mail.commitDelivery(commit(blob, deliveries, fields ? meta(fields) : null));
    return outcome.delivered.map((d) => d.uid);
  }

  async function mailboxId(accountId: number, name: string): Promise<number> {
    const found = await s().mail.getMailbox(accountId, name);
    assert.ok(found, `mailbox ${name} exists`);
    return found.id;
  }

  const subject = (id: number, needle: string): Promise<number[]> => s().mail.searchHeaderField(id, 'subject', needle);

  describe('IMAP: header SEARCH index', () => {
    it('matches each field by substring of its text; a missing field never matches, "" matches every message that has it', async () => {
      const a = await account('search@example.org');
      const inbox = await mailboxId(a, 'INBOX');
      await deliver([local(a)], { subject: 'quarterly report', from: 'ann <ann@example.org>', to: 'bob <bob@example.org>' });
      await deliver([local(a)], { subject: 'café au lait', from: '<zoë@example.org>', cc: 'carol <carol@example.org>, dave <dave@example.org>' });
      await deliver([local(a)], { subject: '', bcc: 'eve <eve@example.org>' });
      await deliver([local(a)], {}); // no field at all
      await deliver([local(a)], { subject: 'report: 100% done_now', to: '' }); // LIKE wildcards are plain text

      assert.deepEqual(await subject(inbox, 'report'), [1, 5]);
      assert.deepEqual(await subject(inbox, 'quarterly report'), [1]);
      assert.deepEqual(await subject(inbox, 'café'), [2]);
      assert.deepEqual(await subject(inbox, 'é au'), [2]);
      assert.deepEqual(await subject(inbox, '%'), [5]);
      assert.deepEqual(await subject(inbox, '_'), [5]);
      assert.deepEqual(await subject(inbox, 'REPORT'), [], 'the caller lower-cases the needle');
      assert.deepEqual(await subject(inbox, ''), [1, 2, 3, 5], 'every message with a Subject, even an empty one');
      assert.deepEqual(await subject(inbox, 'nothing like it'), []);

      assert.deepEqual(await s().mail.searchHeaderField(inbox, 'from', 'example.org'), [1, 2]);
      assert.deepEqual(await s().mail.searchHeaderField(inbox, 'from', 'zoë@'), [2]);
      assert.deepEqual(await s().mail.searchHeaderField(inbox, 'to', 'bob'), [1]);
      assert.deepEqual(await s().mail.searchHeaderField(inbox, 'to', ''), [1, 5]);
      assert.deepEqual(await s().mail.searchHeaderField(inbox, 'cc', 'dave <dave@'), [2]);
      assert.deepEqual(await s().mail.searchHeaderField(inbox, 'cc', 'ann'), [], 'fields are not mixed up');
      assert.deepEqual(await s().mail.searchHeaderField(inbox, 'bcc', 'eve'), [3]);
      assert.deepEqual(await s().mail.searchHeaderField(inbox, 'bcc', ''), [3]);

      // Another mailbox, another account: their own rows only.
      assert.deepEqual(await subject(await mailboxId(a, 'Archive'), ''), []);
      const b = await account('other@example.org');
      await deliver([local(b)], { subject: 'report' });
      assert.deepEqual(await subject(await mailboxId(b, 'INBOX'), 'report'), [1]);
      assert.deepEqual(await subject(inbox, 'report'), [1, 5]);
      assert.deepEqual(await subject(inbox + 1000, 'report'), [], 'an unknown mailbox has no matches');
      await assert.rejects(s().mail.searchHeaderField(inbox, 'subject; DROP TABLE messages' as 'subject', 'x'), { kind: 'invalid' });
    });

    it('refuses a delivery whose search text is malformed, failing it alone', async () => {
      const a = await account('malformed@example.org');
      const bad = [
        { envelope: '{}', structure: '{}', search: 'not json' },
        { envelope: '{}', structure: '{}', search: '["subject"]' },
        { envelope: '{}', structure: '{}', search: '{"subject": 7}' },
      ];
      for (const m of bad) {
        await assert.rejects(s().mail.commitDelivery(commit(await stage(`Subject: bad ${m.search}\r\n\r\nx\r\n`), [local(a)], m)), { kind: 'invalid' });
      }
      await assert.rejects(s().mail.setBlobMeta('ab'.repeat(32), { envelope: '{}', structure: '{}', search: '[1]' }), { kind: 'invalid' });
      assert.equal((await s().mail.getMailbox(a, 'INBOX'))!.messageCount, 0);
    });

    it('indexes a blob delivered again without meta from the meta cached with it, and messages without meta once it is set', async () => {
      const a = await account('lazy@example.org');
      const inbox = await mailboxId(a, 'INBOX');
      const archive = await mailboxId(a, 'Archive');
      const bytes = 'Subject: twice\r\n\r\nsame bytes\r\n';
      await s().mail.commitDelivery(commit(await stage(bytes), [local(a)], meta({ subject: 'twice' })));
      await s().mail.commitDelivery(commit(await stage(bytes), [local(a), local(a, 'Archive')]));
      assert.deepEqual(await subject(inbox, 'twice'), [1, 2]);
      assert.deepEqual(await subject(archive, 'twice'), [1]);

      // Stored without meta: not found until its meta (with search text) is set.
      const blob = await stage('Subject: later\r\n\r\nlater\r\n');
      await s().mail.commitDelivery(commit(blob, [local(a), local(a, 'Archive')]));
      assert.deepEqual(await subject(inbox, 'later'), []);
      await s().mail.setBlobMeta(blob.hash, { envelope: '{}', structure: '{}' });
      assert.deepEqual(await subject(inbox, 'later'), [], 'meta without search text indexes nothing');
      await s().mail.setBlobMeta(blob.hash, meta({ subject: 'later', from: '<x@example.org>' }));
      assert.deepEqual(await subject(inbox, 'later'), [3]);
      assert.deepEqual(await subject(archive, 'later'), [2]);
      assert.deepEqual(await s().mail.searchHeaderField(archive, 'from', 'x@'), [2]);
      assert.equal((await s().mail.getBlobMeta(blob.hash))?.search, meta({ subject: 'later', from: '<x@example.org>' }).search);
      // Meta set again without search text keeps it.
      await s().mail.setBlobMeta(blob.hash, { envelope: '{"again":1}', structure: '{}' });
      assert.equal((await s().mail.getBlobMeta(blob.hash))?.search, meta({ subject: 'later', from: '<x@example.org>' }).search);
      assert.deepEqual(await subject(inbox, 'later'), [3]);
    });

    it('follows the messages through COPY, MOVE and EXPUNGE', async () => {
      const a = await account('moves@example.org');
      const inbox = await mailboxId(a, 'INBOX');
      const archive = await mailboxId(a, 'Archive');
      for (const word of ['alpha', 'beta', 'gamma', 'delta']) await deliver([local(a)], { subject: `${word} news` });
      await deliver([local(a)], null); // no search text: copied and moved without a row
      await deliver([local(a, 'Archive')], { subject: 'archived news' });

      const copied = await s().mail.copyMessages(inbox, [2, 3, 5], archive);
      assert.deepEqual(copied.mapping, [[2, 2], [3, 3], [5, 4]]);
      assert.deepEqual(await subject(archive, 'news'), [1, 2, 3]);
      assert.deepEqual(await subject(archive, 'gamma'), [3]);
      assert.deepEqual(await subject(inbox, 'news'), [1, 2, 3, 4], 'the source keeps its rows');

      const moved = await s().mail.moveMessages(inbox, [1, 3], archive);
      assert.deepEqual(moved.mapping, [[1, 5], [3, 6]]);
      assert.deepEqual(await subject(inbox, 'news'), [2, 4]);
      assert.deepEqual(await subject(archive, 'news'), [1, 2, 3, 5, 6]);
      assert.deepEqual(await subject(archive, 'alpha'), [5]);
      assert.deepEqual(await subject(archive, 'gamma'), [3, 6]);

      // MOVE within the mailbox: new UIDs, one row each.
      const again = await s().mail.moveMessages(archive, [6], archive);
      assert.deepEqual(again.mapping, [[6, 7]]);
      assert.deepEqual(await subject(archive, 'gamma'), [3, 7]);

      assert.deepEqual(await s().mail.expungeMessages(archive, [3, 5, 99]), [3, 5]);
      assert.deepEqual(await subject(archive, 'news'), [1, 2, 7]);
      assert.deepEqual(await s().mail.expungeMessages(inbox, await s().mail.listUids(inbox)), [2, 4, 5]);
      assert.deepEqual(await subject(inbox, ''), []);
      // New deliveries never meet a row left behind.
      await deliver([local(a)], { subject: 'fresh' });
      assert.deepEqual(await subject(inbox, ''), [6]);
    });

    it('follows the messages through RENAME (INBOX and others), DELETE and account removal', async () => {
      const a = await account('renames@example.org');
      const inbox = await mailboxId(a, 'INBOX');
      await deliver([local(a)], { subject: 'one' });
      await deliver([local(a)], { subject: 'two' });
      await deliver([local(a, 'Archive')], { subject: 'kept' });

      // RENAME INBOX: the messages move, with their UIDs, to a new mailbox; INBOX stays, empty.
      await s().mail.renameMailbox(a, 'INBOX', 'Old Inbox');
      const old = await mailboxId(a, 'Old Inbox');
      assert.notEqual(old, inbox);
      assert.deepEqual(await subject(old, ''), [1, 2]);
      assert.deepEqual(await subject(old, 'two'), [2]);
      assert.deepEqual(await subject(inbox, ''), []);
      await deliver([local(a)], { subject: 'three' });
      assert.deepEqual(await subject(inbox, ''), [3], 'INBOX keeps counting UIDs');

      // Any other rename keeps the mailbox, so its rows.
      const archive = await mailboxId(a, 'Archive');
      await s().mail.renameMailbox(a, 'Archive', 'Stored/Archive');
      assert.equal(await mailboxId(a, 'Stored/Archive'), archive);
      assert.deepEqual(await subject(archive, 'kept'), [1]);

      await s().mail.deleteMailbox(a, 'Old Inbox');
      assert.deepEqual(await subject(old, ''), []);
      const recreated = await s().mail.createMailbox(a, 'Old Inbox');
      assert.deepEqual(await subject(recreated.id, ''), []);

      await s().directory.removeAccount('renames@example.org');
      assert.deepEqual(await subject(archive, ''), []);
      assert.deepEqual(await subject(inbox, ''), []);
    });

    it('answers over 100,000 messages, in UID order', async () => {
      const a = await account('many@example.org');
      const inbox = await mailboxId(a, 'INBOX');
      const colours = ['red', 'green', 'blue'];
      // Three blobs, each delivered to a third of the mailbox, in interleaved runs.
      const blobs = await Promise.all(colours.map((c) => stage(`Subject: ${c}\r\n\r\n${c}\r\n`)));
      for (let round = 0; round < 10; round++) {
        for (const [k, blob] of blobs.entries()) {
          const deliveries = Array.from({ length: 3_334 }, () => local(a));
          await s().mail.commitDelivery(commit(blob, deliveries, meta({ subject: colours[k]! })));
        }
      }
      const uids = await s().mail.listUids(inbox);
      assert.equal(uids.length, 100_020);
      const all = await subject(inbox, '');
      assert.equal(all.length, uids.length);
      assert.deepEqual(all, uids);
      const red = await subject(inbox, 'red');
      assert.ok(red.length > 0 && red.length < uids.length);
      assert.ok(red.every((u, i) => i === 0 || u > red[i - 1]!), 'ascending');
      const green = await subject(inbox, 'green');
      const blue = await subject(inbox, 'blue');
      assert.equal(red.length + green.length + blue.length, uids.length);
    });
  });
}
