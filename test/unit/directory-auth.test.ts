// Directory.authenticate and its cache, on a real SQLite store in a temporary folder.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Directory } from '../../src/directory/directory.js';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/types.js';

let dir: string;
let store: Store;
let directory: Directory;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fulmar-auth-'));
  store = await openSqliteStore({ dataDir: dir });
  directory = new Directory(store.directory);
  await directory.addDomain('auth.test');
  await directory.addUser('ann@auth.test', 'first-password');
});

after(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

test('the cache remembers a success, never a failure, and forgets it when the password changes', async () => {
  const ttl = { cacheTtlMs: 60_000 };
  assert.equal(await directory.authenticate('ann@auth.test', 'wrong', ttl), null);
  assert.equal((await directory.authenticate('Ann@Auth.Test', 'first-password', ttl))?.address, 'ann@auth.test');

  const started = process.hrtime.bigint();
  assert.ok(await directory.authenticate('ann@auth.test', 'first-password', ttl));
  const cachedMs = Number(process.hrtime.bigint() - started) / 1e6;
  assert.ok(cachedMs < 5, `a cached login skips argon2 (took ${cachedMs} ms)`);

  assert.equal(await directory.authenticate('ann@auth.test', 'wrong', ttl), null, 'a wrong password is not let through');
  await directory.setPassword('ann@auth.test', 'second-password');
  assert.equal(await directory.authenticate('ann@auth.test', 'first-password', ttl), null, 'the old password is gone at once');
  assert.ok(await directory.authenticate('ann@auth.test', 'second-password', ttl));
  assert.ok(await directory.authenticate('ann@auth.test', 'second-password'), 'works without the cache too');
});

test('unknown and removed accounts fail', async () => {
  assert.equal(await directory.authenticate('nobody@auth.test', 'x', { cacheTtlMs: 60_000 }), null);
  await directory.addUser('gone@auth.test', 'pw-gone');
  assert.ok(await directory.authenticate('gone@auth.test', 'pw-gone', { cacheTtlMs: 60_000 }));
  await directory.removeUser('gone@auth.test');
  assert.equal(await directory.authenticate('gone@auth.test', 'pw-gone', { cacheTtlMs: 60_000 }), null);
});
