/**
 * The behaviour every store backend must show, run against real files and a real database in a
 * temporary folder (no mocks). A backend's test file calls `runStoreContract` with a factory.
 *
 * Backend-neutral: the suite talks to the Store interface only. Checks that need to look under
 * the hood (files on disk, transaction counts) or a second process use the optional hooks of
 * StoreHarness and are skipped when a backend does not provide them.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Readable } from 'node:stream';
import type { DeliveryCommit, LocalDelivery, MailEvent, StagedBlob, Store } from '../../src/store/types.js';
import { describeCollectContract } from './contract-collect.js';
import { describeImapContract } from './contract-imap.js';
import { describeLocksContract } from './contract-locks.js';
import { describeQueueContract } from './contract-queue.js';
import { describeSearchContract } from './contract-search.js';

export interface StoreHarness {
  store: Store;
  cleanup(): Promise<void>;
  /**
   * An ESM expression that evaluates, in a child `node --import tsx` process started in the
   * repository root, to a Promise<Store> on the same data as `store`.
   */
  childStoreExpression?: string;
  /** Number of distinct blobs currently stored, wherever the backend keeps them. */
  storedBlobCount?(): Promise<number>;
  /** Number of staged (not yet persisted) blob files. */
  stagingFileCount?(): Promise<number>;
  /** Number of delivery transactions run so far (group commit). */
  deliveryTransactions?(): number;
}

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export function runStoreContract(name: string, openStore: () => Promise<StoreHarness>): void {
  describe(`store contract: ${name}`, () => {
    let h: StoreHarness;
    let store: Store;

    beforeEach(async () => {
      h = await openStore();
      store = h.store;
    });
    afterEach(async () => {
      await h.cleanup();
    });

    async function stage(bytes: Buffer | string): Promise<StagedBlob> {
      const writer = await store.blobs.createWriter();
      await writer.write(Buffer.from(bytes));
      return writer.finish();
    }

    async function account(address: string, quotaBytes: number | null = null): Promise<number> {
      const domain = address.slice(address.indexOf('@') + 1);
      if (!(await store.directory.getDomain(domain))) await store.directory.addDomain(domain);
      const created = await store.directory.createAccount({ address, passwordHash: 'hash', quotaBytes }, [
        { name: 'Sent', specialUse: '\\Sent' },
        { name: 'Junk', specialUse: '\\Junk' },
      ]);
      return created.id;
    }

    function local(accountId: number, prefix = '', mailbox = 'INBOX', flags: string[] = []): LocalDelivery {
      return { accountId, mailbox, prefix: Buffer.from(prefix), flags };
    }

    function commit(blob: StagedBlob, deliveries: LocalDelivery[], outbound: DeliveryCommit['outbound'] = null): DeliveryCommit {
      return { blob, internalDate: new Date('2030-01-02T03:04:05.678Z'), local: deliveries, outbound };
    }

    async function inbox(accountId: number) {
      const box = await store.mail.getMailbox(accountId, 'INBOX');
      assert.ok(box);
      return box;
    }

    describe('domains', () => {
      it('adds, finds (case-insensitively), lists, limits and removes domains', async () => {
        const added = await store.directory.addDomain('Example.ORG');
        assert.equal(added.name, 'example.org');
        assert.equal(added.maxMessageSize, null);
        assert.ok(added.createdAt instanceof Date);
        await store.directory.addDomain('b.example');
        assert.equal((await store.directory.getDomain('EXAMPLE.org'))?.id, added.id);
        assert.deepEqual(
          (await store.directory.listDomains()).map((d) => d.name),
          ['b.example', 'example.org'],
        );
        await store.directory.setDomainMaxMessageSize('example.org', 1024);
        assert.equal((await store.directory.getDomain('example.org'))?.maxMessageSize, 1024);
        await store.directory.setDomainMaxMessageSize('example.org', null);
        assert.equal((await store.directory.getDomain('example.org'))?.maxMessageSize, null);
        await store.directory.removeDomain('b.example');
        assert.equal(await store.directory.getDomain('b.example'), null);
      });

      it('rejects duplicates, bad names and unknown domains with typed errors', async () => {
        await store.directory.addDomain('example.org');
        await assert.rejects(store.directory.addDomain('EXAMPLE.org'), { kind: 'exists', message: /example\.org/ });
        await assert.rejects(store.directory.addDomain('not a domain'), { kind: 'invalid' });
        await assert.rejects(store.directory.removeDomain('nowhere.example'), { kind: 'not-found' });
        await assert.rejects(store.directory.setDomainMaxMessageSize('nowhere.example', 1), { kind: 'not-found' });
      });

      it('refuses to remove a domain in use unless forced, then removes its accounts and aliases', async () => {
        const id = await account('ann@example.org');
        await store.directory.addAlias('info@example.org', ['ann@example.org']);
        const blob = await stage('Subject: x\r\n\r\nx\r\n');
        await store.mail.commitDelivery(commit(blob, [local(id)]));
        await assert.rejects(store.directory.removeDomain('example.org'), { kind: 'invalid', message: /account/ });
        await store.directory.removeDomain('example.org', { force: true });
        assert.equal(await store.directory.getDomain('example.org'), null);
        assert.equal(await store.directory.getAccount('ann@example.org'), null);
        assert.equal(await store.directory.getAlias('info@example.org'), null);
        assert.equal(await store.blobs.exists(blob.hash), false);
      });
    });

    describe('accounts', () => {
      it('keeps an APOP secret per account, off (null) by default', async () => {
        const id = await account('apop@example.org');
        assert.equal(await store.directory.getApopSecret(id), null);
        await store.directory.setApopSecret('APOP@example.org', 'tanstaafl');
        assert.equal(await store.directory.getApopSecret(id), 'tanstaafl');
        await store.directory.setApopSecret('apop@example.org', null);
        assert.equal(await store.directory.getApopSecret(id), null);
        await assert.rejects(store.directory.setApopSecret('nobody@example.org', 'x'), { kind: 'not-found' });
      });

      it('creates an account lower-cased, with INBOX and the given mailboxes', async () => {
        await store.directory.addDomain('example.org');
        const created = await store.directory.createAccount(
          { address: 'Alice.Smith@Example.ORG', passwordHash: 'h1', quotaBytes: 5000, realName: 'Alice Smith' },
          [{ name: 'Drafts', specialUse: '\\Drafts' }, { name: 'Archive/2024', specialUse: null }],
        );
        assert.equal(created.address, 'alice.smith@example.org');
        assert.equal(created.localPart, 'alice.smith');
        assert.equal(created.domain, 'example.org');
        assert.equal(created.quotaBytes, 5000);
        assert.equal(created.usedBytes, 0);
        assert.equal(created.realName, 'Alice Smith');
        assert.equal(created.disabled, false);
        assert.deepEqual(await store.directory.getAccount('ALICE.smith@example.org'), created);
        assert.deepEqual(await store.directory.getAccountById(created.id), created);

        const boxes = await store.mail.listMailboxes(created.id);
        assert.deepEqual(
          boxes.map((b) => [b.name, b.specialUse]),
          [
            ['INBOX', null],
            ['Archive/2024', null],
            ['Drafts', '\\Drafts'],
          ],
        );
        for (const box of boxes) {
          assert.equal(box.uidNext, 1);
          assert.ok(box.highestModSeq >= 1);
          assert.ok(box.uidValidity > 0 && box.uidValidity < 2 ** 32);
          assert.equal(box.messageCount, 0);
        }
        assert.equal(new Set(boxes.map((b) => b.uidValidity)).size, boxes.length, 'UIDVALIDITY unique per mailbox');
        assert.equal((await store.mail.getMailbox(created.id, 'inbox'))?.name, 'INBOX');
      });

      it('rejects unknown domains, duplicates and bad addresses', async () => {
        await assert.rejects(
          store.directory.createAccount({ address: 'a@nowhere.example', passwordHash: 'h', quotaBytes: null }, []),
          { kind: 'invalid', message: /nowhere\.example is not a local domain.*fulmar domain add nowhere\.example/ },
        );
        await account('a@example.org');
        await assert.rejects(
          store.directory.createAccount({ address: 'A@example.org', passwordHash: 'h', quotaBytes: null }, []),
          { kind: 'exists', message: /a@example\.org already exists/ },
        );
        await assert.rejects(
          store.directory.createAccount({ address: 'no-at-sign', passwordHash: 'h', quotaBytes: null }, []),
          { kind: 'invalid' },
        );
      });

      it('lists, updates and removes accounts', async () => {
        await account('b@example.org');
        await account('a@example.org');
        await account('c@other.example');
        assert.deepEqual(
          (await store.directory.listAccounts()).map((a) => a.address),
          ['a@example.org', 'b@example.org', 'c@other.example'],
        );
        assert.deepEqual(
          (await store.directory.listAccounts('Example.org')).map((a) => a.address),
          ['a@example.org', 'b@example.org'],
        );
        await store.directory.setPassword('A@example.org', 'new-hash');
        await store.directory.setQuota('a@example.org', 123);
        const a = await store.directory.getAccount('a@example.org');
        assert.equal(a?.passwordHash, 'new-hash');
        assert.equal(a?.quotaBytes, 123);
        await store.directory.setQuota('a@example.org', null);
        assert.equal((await store.directory.getAccount('a@example.org'))?.quotaBytes, null);

        await store.directory.removeAccount('A@EXAMPLE.ORG');
        assert.equal(await store.directory.getAccount('a@example.org'), null);
        await assert.rejects(store.directory.removeAccount('a@example.org'), { kind: 'not-found' });
        await assert.rejects(store.directory.setPassword('a@example.org', 'x'), { kind: 'not-found' });
        await assert.rejects(store.directory.setQuota('a@example.org', 1), { kind: 'not-found' });
      });
    });

    describe('aliases', () => {
      it('adds targets (ignoring duplicates), supports catch-alls, lists and removes', async () => {
        await store.directory.addDomain('example.org');
        const first = await store.directory.addAlias('Sales@Example.org', ['Ann@example.org', 'bob@remote.example']);
        assert.deepEqual(first, { address: 'sales@example.org', targets: ['ann@example.org', 'bob@remote.example'] });
        const more = await store.directory.addAlias('sales@example.org', ['bob@remote.example', 'cy@example.org']);
        assert.deepEqual(more.targets, ['ann@example.org', 'bob@remote.example', 'cy@example.org']);
        await store.directory.addAlias('@example.org', ['postmaster@example.org']);
        assert.deepEqual(await store.directory.getAlias('@EXAMPLE.org'), {
          address: '@example.org',
          targets: ['postmaster@example.org'],
        });
        assert.deepEqual(
          (await store.directory.listAliases()).map((a) => a.address),
          ['@example.org', 'sales@example.org'],
        );
        await store.directory.removeAlias('SALES@example.org');
        assert.equal(await store.directory.getAlias('sales@example.org'), null);
        await assert.rejects(store.directory.removeAlias('sales@example.org'), { kind: 'not-found' });
      });

      it('rejects aliases of non-local domains and empty target lists', async () => {
        await assert.rejects(store.directory.addAlias('x@nowhere.example', ['a@b.example']), {
          kind: 'invalid',
          message: /not a local domain/,
        });
        await store.directory.addDomain('example.org');
        await assert.rejects(store.directory.addAlias('x@example.org', []), { kind: 'invalid' });
        await assert.rejects(store.directory.addAlias('x@example.org', ['not an address']), { kind: 'invalid' });
      });
    });

    describe('settings', () => {
      it('sets, gets, lists and deletes', async () => {
        assert.equal(await store.settings.get('smtp.banner'), null);
        await store.settings.set('smtp.banner', 'hello');
        await store.settings.set('a.first', '1');
        await store.settings.set('smtp.banner', 'hello again');
        assert.equal(await store.settings.get('smtp.banner'), 'hello again');
        assert.deepEqual(await store.settings.list(), [
          { key: 'a.first', value: '1' },
          { key: 'smtp.banner', value: 'hello again' },
        ]);
        await store.settings.delete('smtp.banner');
        assert.equal(await store.settings.get('smtp.banner'), null);
      });
    });

    describe('blobs', () => {
      it('stages, persists, opens ranges and removes content-addressed blobs', async () => {
        // Larger than the inline limit: staged as a file, made durable by persist.
        const body = Buffer.alloc(store.blobs.inlineLimit + 16);
        for (let i = 0; i < body.length; i++) body[i] = 48 + (i % 10);
        const blob = await stage(body);
        assert.equal(blob.inline, null);
        assert.equal(blob.hash, createHash('sha256').update(body).digest('hex'));
        assert.equal(blob.size, body.length);
        assert.equal(await store.blobs.exists(blob.hash), false);
        await store.blobs.persist([blob]);
        await store.blobs.persist([blob]); // idempotent
        assert.equal(await store.blobs.exists(blob.hash), true);
        assert.deepEqual(await readAll(store.blobs.open(blob.hash)), body);
        assert.equal((await readAll(store.blobs.open(blob.hash, { start: 3, end: 7 }))).toString(), '3456');
        assert.equal((await readAll(store.blobs.open(blob.hash, { start: body.length - 6 }))).toString(), body.subarray(-6).toString());
        assert.equal((await readAll(store.blobs.open(blob.hash, { start: 4, end: 4 }))).length, 0);
        await store.blobs.remove(blob.hash);
        assert.equal(await store.blobs.exists(blob.hash), false);
        await assert.rejects(readAll(store.blobs.open(blob.hash)), { kind: 'not-found' });
      });

      it('keeps small bodies inline: stored by the delivery itself, readable by range, gone with the last reference', async () => {
        const body = Buffer.from('0123456789abcdef');
        const blob = await stage(body);
        if (store.blobs.inlineLimit < body.length) return;
        assert.ok(blob.inline);
        assert.equal(blob.stagingPath, null);
        await store.blobs.persist([blob]); // nothing to do for inline blobs
        assert.equal(await store.blobs.exists(blob.hash), false);
        const id = await account('inline@example.org');
        await store.mail.commitDelivery(commit(blob, [local(id)]));
        assert.equal(await store.blobs.exists(blob.hash), true);
        assert.deepEqual(await readAll(store.blobs.open(blob.hash)), body);
        assert.equal((await readAll(store.blobs.open(blob.hash, { start: 3, end: 7 }))).toString(), '3456');
        if (h.stagingFileCount) assert.equal(await h.stagingFileCount(), 0);
        await store.directory.removeAccount('inline@example.org');
        assert.equal(await store.blobs.exists(blob.hash), false);
      });

      it('sweeps stored bytes nothing references, and only those', async () => {
        const big = (fill: number): Buffer => Buffer.alloc(store.blobs.inlineLimit + 100, fill);
        const orphan = await stage(big(1));
        await store.blobs.persist([orphan]); // placed, but its delivery never committed (a crash)
        const kept = await stage(big(2));
        const id = await account('sweep@example.org');
        await store.mail.commitDelivery(commit(kept, [local(id)]));
        assert.equal(await store.sweepOrphans(60_000), 0, 'too young to be a crash leftover');
        assert.equal(await store.sweepOrphans(0), 1);
        assert.equal(await store.blobs.exists(orphan.hash), false);
        assert.equal(await store.blobs.exists(kept.hash), true);
      });

      it('discards staged blobs and aborted writers leave nothing behind', async () => {
        const blob = await stage(Buffer.alloc(store.blobs.inlineLimit + 1, 7));
        await store.blobs.discard(blob);
        await store.blobs.discard(blob); // twice is fine
        await assert.rejects(store.blobs.persist([blob]));
        const writer = await store.blobs.createWriter();
        await writer.write(Buffer.alloc(300 * 1024, 1)); // past the in-memory buffer
        await writer.abort();
        await writer.abort();
        await assert.rejects(writer.write(Buffer.from('x')));
        if (h.storedBlobCount) assert.equal(await h.storedBlobCount(), 0);
        if (h.stagingFileCount) assert.equal(await h.stagingFileCount(), 0);
      });

      it('writes a 20 MB blob in 64 KB chunks with bounded memory', async () => {
        const chunk = Buffer.alloc(64 * 1024);
        const expected = createHash('sha256');
        const writer = await store.blobs.createWriter();
        const base = process.memoryUsage().arrayBuffers;
        let peak = 0;
        for (let i = 0; i < 320; i++) {
          chunk.fill(i % 251);
          chunk.writeUInt32BE(i, 0);
          expected.update(chunk);
          await writer.write(chunk);
          peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
        }
        const blob = await writer.finish();
        assert.equal(blob.size, 20 * 1024 * 1024);
        assert.equal(writer.bytesWritten, blob.size);
        assert.equal(blob.hash, expected.digest('hex'));
        assert.ok(peak < 4 * 1024 * 1024, `writer memory grew by ${peak} bytes while writing 20 MB`);

        const id = await account('big@example.org');
        const prefix = 'Delivered-To: big@example.org\r\n';
        const outcome = await store.mail.commitDelivery(commit(blob, [local(id, prefix)]));
        const record = await store.mail.getMessage(outcome.delivered[0]!.mailboxId, outcome.delivered[0]!.uid);
        assert.ok(record);
        assert.equal(record.size, prefix.length + blob.size);
        const read = createHash('sha256');
        let length = 0;
        for await (const part of store.mail.openMessage(record) as AsyncIterable<Buffer>) {
          read.update(part);
          length += part.length;
        }
        assert.equal(length, record.size);
        const whole = createHash('sha256').update(prefix);
        for (let i = 0; i < 320; i++) {
          chunk.fill(i % 251);
          chunk.writeUInt32BE(i, 0);
          whole.update(chunk);
        }
        assert.equal(read.digest('hex'), whole.digest('hex'));
      });
    });

    describe('commitDelivery', () => {
      it('assigns increasing UIDs and updates uidnext, modseq and used bytes', async () => {
        const id = await account('u@example.org');
        const before = await inbox(id);
        const uids: number[] = [];
        let used = 0;
        for (let i = 0; i < 3; i++) {
          const blob = await stage(`Subject: ${i}\r\n\r\nmessage ${i}\r\n`);
          const prefix = `Delivered-To: u@example.org\r\n`;
          const outcome = await store.mail.commitDelivery(commit(blob, [local(id, prefix, 'INBOX', ['\\Recent', '\\seen', 'Work'])]));
          assert.equal(outcome.queueId, null);
          assert.equal(outcome.delivered.length, 1);
          assert.equal(outcome.delivered[0]!.mailboxId, before.id);
          uids.push(outcome.delivered[0]!.uid);
          used += prefix.length + blob.size;
        }
        assert.deepEqual(uids, [1, 2, 3]);
        const after = await inbox(id);
        assert.equal(after.uidNext, 4);
        assert.equal(after.messageCount, 3);
        assert.equal(after.uidValidity, before.uidValidity);
        assert.ok(after.highestModSeq >= before.highestModSeq + 3);
        assert.equal((await store.directory.getAccountById(id))?.usedBytes, used);

        const messages = await store.mail.listMessages(after.id);
        assert.deepEqual(
          messages.map((m) => m.uid),
          [1, 2, 3],
        );
        const modSeqs = messages.map((m) => m.modSeq);
        assert.ok(modSeqs[0]! < modSeqs[1]! && modSeqs[1]! < modSeqs[2]!);
        assert.equal(modSeqs[2], after.highestModSeq);
        // System flags are stored spelled canonically; \Recent belongs to sessions, never stored.
        assert.deepEqual(messages[0]!.flags, ['\\Seen', 'Work']);
        assert.equal(messages[0]!.internalDate.toISOString(), '2030-01-02T03:04:05.678Z');
      });

      it('stores one blob for many recipients, each with its own prefix', async () => {
        const ids = [await account('a@example.org'), await account('b@example.org'), await account('c@other.example')];
        const body = 'Subject: shared\r\n\r\nonce on disk\r\n';
        const blob = await stage(body);
        const outcome = await store.mail.commitDelivery(
          commit(
            blob,
            ids.map((id, i) => local(id, `X-Rcpt-To: rcpt-${i}\r\n`)),
          ),
        );
        assert.equal(outcome.delivered.length, 3);
        if (h.storedBlobCount) assert.equal(await h.storedBlobCount(), 1);
        for (const [i, d] of outcome.delivered.entries()) {
          const record = await store.mail.getMessage(d.mailboxId, d.uid);
          assert.ok(record);
          assert.equal(record.blobHash, blob.hash);
          assert.equal(record.prefix.toString(), `X-Rcpt-To: rcpt-${i}\r\n`);
          assert.equal(record.size, record.prefix.length + blob.size);
          assert.equal((await readAll(store.mail.openMessage(record))).toString(), `X-Rcpt-To: rcpt-${i}\r\n${body}`);
        }
        // The same bytes again, in a later commit, still make one file.
        const again = await stage(body);
        await store.mail.commitDelivery(commit(again, [local(ids[0]!)]));
        if (h.storedBlobCount) assert.equal(await h.storedBlobCount(), 1);
      });

      it('reads back an empty prefix and an empty body exactly', async () => {
        const id = await account('e@example.org');
        const empty = await stage('');
        const outcome = await store.mail.commitDelivery(commit(empty, [local(id), local(id, 'P: 1\r\n')]));
        const [bare, prefixed] = await Promise.all(
          outcome.delivered.map((d) => store.mail.getMessage(d.mailboxId, d.uid)),
        );
        assert.ok(bare && prefixed);
        assert.equal(bare.prefix.length, 0);
        assert.equal(bare.size, 0);
        assert.equal((await readAll(store.mail.openMessage(bare))).length, 0);
        assert.equal((await readAll(store.mail.openMessage(prefixed))).toString(), 'P: 1\r\n');
      });

      it('rejects malformed commits alone', async () => {
        const id = await account('m@example.org');
        const good = store.mail.commitDelivery(commit(await stage('good'), [local(id)]));
        await assert.rejects(store.mail.commitDelivery(commit(await stage('none'), [])), { kind: 'invalid' });
        const bogus = { hash: 'not-a-hash', size: 1, stagingPath: '/nonexistent', inline: null };
        await assert.rejects(store.mail.commitDelivery(commit(bogus, [local(id)])), { kind: 'invalid' });
        assert.equal((await good).delivered.length, 1);
      });

      it('delivers to the named mailbox, falling back to INBOX when it is missing', async () => {
        const id = await account('f@example.org');
        const junk = await store.mail.commitDelivery(commit(await stage('spam'), [local(id, '', 'Junk')]));
        assert.equal(junk.delivered[0]!.mailboxId, (await store.mail.getMailbox(id, 'Junk'))?.id);
        const missing = await store.mail.commitDelivery(commit(await stage('ham'), [local(id, '', 'No/Such/Box')]));
        assert.equal(missing.delivered[0]!.mailboxId, (await inbox(id)).id);
      });

      it('gives 200 concurrent commits distinct UIDs in few transactions', async () => {
        const ids = [await account('p@example.org'), await account('q@example.org')];
        const blobs = await Promise.all(Array.from({ length: 200 }, (_, i) => stage(`Subject: ${i}\r\n\r\n${i}\r\n`)));
        const before = h.deliveryTransactions?.() ?? 0;
        const outcomes = await Promise.all(
          blobs.map((blob, i) => store.mail.commitDelivery(commit(blob, [local(ids[i % 2]!, `N: ${i}\r\n`)]))),
        );
        for (const id of ids) {
          const uids = outcomes.flatMap((o) => o.delivered).filter((d) => d.accountId === id).map((d) => d.uid);
          assert.deepEqual(
            [...uids].sort((x, y) => x - y),
            Array.from({ length: 100 }, (_, i) => i + 1),
          );
          const box = await inbox(id);
          assert.equal(box.uidNext, 101);
          assert.equal(box.messageCount, 100);
        }
        if (h.deliveryTransactions) {
          const used = h.deliveryTransactions() - before;
          assert.ok(used >= 1 && used <= 3, `200 concurrent commits took ${used} transactions`);
        }
      });

      it('queues outbound recipients with the envelope and DSN parameters', async () => {
        const id = await account('s@example.org');
        const blob = await stage('Subject: out\r\n\r\nbye\r\n');
        const outcome = await store.mail.commitDelivery(
          commit(blob, [local(id)], {
            mailFrom: 's@example.org',
            envId: 'env-1',
            ret: 'HDRS',
            recipients: [
              { address: 'Far@Remote.EXAMPLE', orcpt: 'rfc822;Far@Remote.example', notify: 'FAILURE,DELAY' },
              { address: 'near@remote.example' },
            ],
          }),
        );
        assert.ok(outcome.queueId !== null);
        const queued = await store.queue.getQueued(outcome.queueId);
        assert.ok(queued);
        assert.equal(queued.blobHash, blob.hash);
        assert.equal(queued.size, blob.size);
        assert.equal(queued.mailFrom, 's@example.org');
        assert.equal(queued.envId, 'env-1');
        assert.equal(queued.ret, 'HDRS');
        assert.deepEqual(
          queued.recipients.map((r) => [r.address, r.orcpt, r.notify, r.status, r.attempts, r.lastError]),
          [
            ['Far@remote.example', 'rfc822;Far@Remote.example', 'FAILURE,DELAY', 'queued', 0, null],
            ['near@remote.example', null, null, 'queued', 0, null],
          ],
        );
        assert.ok(queued.recipients.every((r) => r.nextAttemptAt instanceof Date));
        assert.deepEqual(
          (await store.queue.listQueued()).map((q) => q.id),
          [outcome.queueId],
        );
        assert.equal(await store.queue.getQueued(outcome.queueId + 1000), null);

        // The queue entry holds its own reference: removing the only local copy keeps the blob.
        await store.directory.removeAccount('s@example.org');
        assert.equal(await store.blobs.exists(blob.hash), true);
      });

      it('fails only the commit whose account is gone, and publishes exists events for the rest', async () => {
        const keep = await account('keep@example.org');
        const gone = await account('gone@example.org');
        const events: MailEvent[] = [];
        await store.directory.removeAccount('gone@example.org');
        const unsubscribe = store.events.subscribe(keep, (e) => events.push(e));
        const unsubscribeBroken = store.events.subscribe(keep, () => {
          throw new Error('expected: a broken listener must not stop the others');
        });
        const orphan = await stage('for nobody');
        const [ok, failed] = await Promise.allSettled([
          store.mail.commitDelivery(commit(await stage('for keep'), [local(keep)])),
          store.mail.commitDelivery(commit(orphan, [local(gone)])),
        ]);
        assert.equal(ok.status, 'fulfilled');
        assert.equal(failed.status, 'rejected');
        assert.equal(await store.blobs.exists(orphan.hash), false, 'the failed commit left no blob');
        assert.equal(events.length, 1);
        assert.deepEqual(events[0], {
          type: 'exists',
          accountId: keep,
          mailboxId: (await inbox(keep)).id,
          uid: 1,
          modSeq: (await inbox(keep)).highestModSeq,
        });
        unsubscribe();
        unsubscribeBroken();
        await store.mail.commitDelivery(commit(await stage('unseen'), [local(keep)]));
        assert.equal(events.length, 1, 'no events after unsubscribe');
      });
    });

    describe('expunging', () => {
      it('removes messages by UID durably, releasing quota, blob references and emitting expunge events', async () => {
        const a = await account('x@example.org');
        const b = await account('y@example.org');
        const shared = await stage('Subject: shared\r\n\r\nboth\r\n');
        await store.mail.commitDelivery(commit(shared, [local(a, 'P: a\r\n'), local(b)]));
        const own = await stage('Subject: own\r\n\r\nmine\r\n');
        await store.mail.commitDelivery(commit(own, [local(a)]));
        const box = (await store.mail.getMailbox(a, 'INBOX'))!;
        const events: MailEvent[] = [];
        const unsubscribe = store.events.subscribe(a, (e) => events.push(e));
        const removed = await store.mail.expungeMessages(box.id, [1, 2, 99, 2]);
        unsubscribe();
        assert.deepEqual(removed.sort(), [1, 2]);
        assert.deepEqual(await store.mail.listMessages(box.id), []);
        assert.equal((await store.directory.getAccountById(a))!.usedBytes, 0);
        assert.ok((await store.mail.getMailbox(a, 'INBOX'))!.highestModSeq > box.highestModSeq);
        assert.deepEqual(events.map((e) => [e.type, 'uid' in e ? e.uid : 0]).sort(), [['expunge', 1], ['expunge', 2]]);
        assert.equal(await store.blobs.exists(shared.hash), true, 'the other account still references it');
        assert.equal(await store.blobs.exists(own.hash), false);
        assert.deepEqual(await store.mail.expungeMessages(box.id, [1]), [], 'twice is harmless');
        const next = await store.mail.commitDelivery(commit(await stage('later'), [local(a)]));
        assert.equal(next.delivered[0]!.uid, 3, 'UIDs are never reused');
      });
    });

    describe('removing accounts', () => {
      it('releases the blob only when its last reference goes', async () => {
        const a = await account('a@example.org');
        const b = await account('b@example.org');
        const blob = await stage('Subject: shared\r\n\r\nshared\r\n');
        await store.mail.commitDelivery(commit(blob, [local(a), local(a, '', 'Junk'), local(b)]));
        await store.directory.removeAccount('a@example.org');
        assert.equal(await store.blobs.exists(blob.hash), true, 'b still references the blob');
        await store.directory.removeAccount('b@example.org');
        assert.equal(await store.blobs.exists(blob.hash), false, 'the last reference released the blob');
        if (h.storedBlobCount) assert.equal(await h.storedBlobCount(), 0);
        // The same bytes can come back afterwards.
        const c = await account('c@example.org');
        const again = await stage('Subject: shared\r\n\r\nshared\r\n');
        await store.mail.commitDelivery(commit(again, [local(c)]));
        assert.equal(await store.blobs.exists(blob.hash), true);
      });

      it('removes the mailboxes and messages of the account', async () => {
        const a = await account('a@example.org');
        await store.mail.commitDelivery(commit(await stage('m'), [local(a)]));
        const box = await inbox(a);
        await store.directory.removeAccount('a@example.org');
        assert.deepEqual(await store.mail.listMailboxes(a), []);
        assert.deepEqual(await store.mail.listMessages(box.id), []);
        // A re-created account gets new mailboxes with a new UIDVALIDITY.
        const again = await account('a@example.org');
        assert.notEqual((await inbox(again)).uidValidity, box.uidValidity);
      });
    });

    describeImapContract(() => store);
    describeSearchContract(() => store);
    describeQueueContract(() => h);
    describeCollectContract(() => store);
    describeLocksContract(() => store);

    describe('sharing with another process', () => {
      it('sees an account added by a second process at once', async (t) => {
        if (!h.childStoreExpression) {
          t.skip('the backend provides no child-process hook');
          return;
        }
        await store.directory.addDomain('example.org');
        assert.equal(await store.directory.getAccount('child@example.org'), null); // read before the change
        const script = `
          const store = await (${h.childStoreExpression});
          await store.directory.createAccount({ address: 'Child@example.org', passwordHash: 'c', quotaBytes: null }, []);
          await store.close();
        `;
        await runChild(script);
        const seen = await store.directory.getAccount('child@example.org');
        assert.equal(seen?.address, 'child@example.org');
        assert.equal((await store.mail.listMailboxes(seen.id)).length, 1);
      });
    });
  });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream as AsyncIterable<Buffer>) parts.push(part);
  return Buffer.concat(parts);
}

function runChild(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'inherit', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`child exited ${code}: ${stderr}`))));
  });
}
