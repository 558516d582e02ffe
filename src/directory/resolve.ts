/**
 * Recipient resolution: which accounts and which remote addresses one envelope recipient
 * stands for, after aliases and catch-alls.
 *
 * Order, as Postfix's virtual aliases behave: an exact alias wins over an account of the same
 * address; an account wins over the domain's catch-all (`@domain`). An alias may name its own
 * address among its targets to keep a copy in the account ("deliver and forward"). Expansion
 * follows aliases of aliases up to MAX_DEPTH and stops at loops.
 */
import type { Account, Domain } from '../store/types.js';
import type { Directory } from './directory.js';

export const MAX_DEPTH = 10;
export const MAX_EXPANSION = 1000;

export type Resolution =
  /** The domain is not ours: the address is remote. */
  | { kind: 'remote'; address: string }
  /** Our domain, but no account, alias or catch-all matches. */
  | { kind: 'unknown'; address: string }
  /** Our domain; delivers to these accounts and forwards to these remote addresses. */
  | { kind: 'local'; address: string; domain: Domain; accounts: Account[]; remote: string[] };

export async function resolveRecipient(directory: Directory, address: string): Promise<Resolution> {
  // Each domain is looked up once per resolution, however often expansion meets it.
  const domains = new Map<string, Domain | null>();
  const localDomain = async (name: string): Promise<Domain | null> => {
    const key = name.toLowerCase();
    if (!domains.has(key)) domains.set(key, await directory.getDomain(key));
    return domains.get(key)!;
  };
  const at = address.lastIndexOf('@');
  const domain = await localDomain(at < 0 ? '' : address.slice(at + 1));
  if (!domain) return { kind: 'remote', address };

  const accounts = new Map<number, Account>();
  const remote = new Set<string>();
  const visited = new Set<string>();

  const expand = async (addr: string, depth: number): Promise<boolean> => {
    const lower = addr.toLowerCase();
    const d = lower.slice(lower.lastIndexOf('@') + 1);
    if (!(await localDomain(d))) {
      remote.add(addr);
      return true;
    }
    if (visited.has(lower) || depth > MAX_DEPTH || accounts.size + remote.size >= MAX_EXPANSION) {
      // A loop: an alias that names itself delivers to the account of that name, if any.
      const account = await directory.getUser(lower);
      if (account) accounts.set(account.id, account);
      return account !== null;
    }
    visited.add(lower);
    const alias = await directory.getAlias(lower);
    if (alias) {
      let any = false;
      for (const target of alias.targets) {
        if (await expand(target, depth + 1)) any = true;
      }
      return any;
    }
    const account = await directory.getUser(lower);
    if (account) {
      accounts.set(account.id, account);
      return true;
    }
    const catchAll = await directory.getAlias(`@${d}`);
    if (catchAll) {
      let any = false;
      for (const target of catchAll.targets) {
        if (await expand(target, depth + 1)) any = true;
      }
      return any;
    }
    return false;
  };

  const found = await expand(address, 0);
  if (!found || (accounts.size === 0 && remote.size === 0)) return { kind: 'unknown', address };
  return { kind: 'local', address, domain, accounts: [...accounts.values()], remote: [...remote] };
}
