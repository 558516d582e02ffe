/**
 * The store contract, continued: named locks with an expiry (LockStore), which the POP3
 * maildrop lock uses so that it holds across every process sharing the store.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Store } from '../../src/store/types.js';

export function describeLocksContract(current: () => Store): void {
  describe('locks', () => {
    it('one owner at a time; the owner renews; release frees; an expired lock is taken over', async () => {
      const locks = current().locks;
      assert.equal(await locks.acquire('pop3:1', 'a', 60_000), true);
      assert.equal(await locks.acquire('pop3:1', 'b', 60_000), false);
      assert.equal(await locks.acquire('pop3:1', 'a', 60_000), true, 'renewed by its owner');
      assert.equal(await locks.acquire('pop3:2', 'b', 60_000), true, 'another name is free');
      await locks.release('pop3:1', 'b');
      assert.equal(await locks.acquire('pop3:1', 'b', 60_000), false, 'only the owner releases');
      await locks.release('pop3:1', 'a');
      assert.equal(await locks.acquire('pop3:1', 'b', 50), true);
      await new Promise((r) => setTimeout(r, 80));
      assert.equal(await locks.acquire('pop3:1', 'c', 60_000), true, 'expired: taken over');
    });
  });
}
