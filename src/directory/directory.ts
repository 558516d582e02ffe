/**
 * The directory service: domains, accounts, aliases and authentication, with the validation
 * and the policy (which folders a new account gets, how passwords are hashed) that the store
 * itself does not know.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Account, Alias, DirectoryStore, DkimKey, Domain, NewMailbox } from '../store/types.js';
import { AlreadyExists, InvalidInput, NotFound } from '../util/errors.js';
import { normalizeAddress, normalizeAliasKey, normalizeDomain, normalizeTarget } from './names.js';
import { hashPassword, verifyPassword } from './passwords.js';

/** The folders every new account gets (RFC 6154 special-use). */
export const DEFAULT_MAILBOXES: readonly NewMailbox[] = [
  { name: 'INBOX', specialUse: null },
  { name: 'Sent', specialUse: '\\Sent' },
  { name: 'Drafts', specialUse: '\\Drafts' },
  { name: 'Trash', specialUse: '\\Trash' },
  { name: 'Junk', specialUse: '\\Junk' },
  { name: 'Archive', specialUse: '\\Archive' },
];

const AUTH_CACHE_KEY = randomBytes(32);
const AUTH_CACHE_MAX = 10_000;

export class Directory {
  private readonly authCache = new Map<string, { tag: Buffer; expires: number }>();

  constructor(private readonly store: DirectoryStore) {}

  async addDomain(name: string): Promise<Domain> {
    return this.store.addDomain(normalizeDomain(name));
  }

  async removeDomain(name: string, force = false): Promise<void> {
    return this.store.removeDomain(normalizeDomain(name), { force });
  }

  async listDomains(): Promise<Domain[]> {
    return this.store.listDomains();
  }

  async getDomain(name: string): Promise<Domain | null> {
    let normal: string;
    try {
      normal = normalizeDomain(name);
    } catch {
      return null;
    }
    return this.store.getDomain(normal);
  }

  async isLocalDomain(name: string): Promise<boolean> {
    return (await this.getDomain(name)) !== null;
  }

  async setDomainMaxMessageSize(name: string, bytes: number | null): Promise<void> {
    return this.store.setDomainMaxMessageSize(normalizeDomain(name), bytes);
  }

  async addUser(address: string, password: string, options: { quotaBytes?: number | null; realName?: string | null } = {}): Promise<Account> {
    const a = normalizeAddress(address);
    if (password.length === 0) throw new InvalidInput('the password must not be empty');
    if (!(await this.store.getDomain(a.domain))) {
      throw new InvalidInput(`${a.domain} is not a local domain; add it first with: fulmar domain add ${a.domain}`);
    }
    if (await this.store.getAccount(a.address)) throw new AlreadyExists(`account ${a.address} already exists`);
    const passwordHash = await hashPassword(password);
    return this.store.createAccount(
      { address: a.address, passwordHash, quotaBytes: options.quotaBytes ?? null, realName: options.realName ?? null },
      [...DEFAULT_MAILBOXES],
    );
  }

  async removeUser(address: string): Promise<void> {
    return this.store.removeAccount(normalizeAddress(address).address);
  }

  async listUsers(domain?: string): Promise<Account[]> {
    return this.store.listAccounts(domain === undefined ? undefined : normalizeDomain(domain));
  }

  async getUser(address: string): Promise<Account | null> {
    let normal: string;
    try {
      normal = normalizeAddress(address).address;
    } catch {
      return null;
    }
    return this.store.getAccount(normal);
  }

  async getUserById(id: number): Promise<Account | null> {
    return this.store.getAccountById(id);
  }

  async setPassword(address: string, password: string): Promise<void> {
    const a = normalizeAddress(address);
    if (password.length === 0) throw new InvalidInput('the password must not be empty');
    if (!(await this.store.getAccount(a.address))) throw new NotFound(`no account ${a.address}`);
    await this.store.setPassword(a.address, await hashPassword(password));
  }

  async setQuota(address: string, quotaBytes: number | null): Promise<void> {
    return this.store.setQuota(normalizeAddress(address).address, quotaBytes);
  }

  async setApopSecret(address: string, secret: string | null): Promise<void> {
    if (secret !== null && (secret.length < 8 || /[\s\x00-\x1f]/.test(secret))) {
      throw new InvalidInput('an APOP secret needs at least 8 characters and no spaces');
    }
    return this.store.setApopSecret(normalizeAddress(address).address, secret);
  }

  /** The domain's DKIM signing key, or null to remove it; NotFound for an unknown domain. */
  async setDkimKey(domain: string, key: DkimKey | null): Promise<void> {
    return this.store.setDkimKey(normalizeDomain(domain), key);
  }

  /** Null when the domain has no key (or is not a local domain). */
  async getDkimKey(domain: string): Promise<DkimKey | null> {
    let normal: string;
    try {
      normal = normalizeDomain(domain);
    } catch {
      return null;
    }
    return this.store.getDkimKey(normal);
  }

  /** Extra sender addresses for an account: exact addresses or `@domain`; [] for none. */
  async setSendAs(address: string, patterns: string[]): Promise<void> {
    const normal = patterns.map((p) => normalizeAliasKey(p).key);
    return this.store.setSendAs(normalizeAddress(address).address, [...new Set(normal)]);
  }

  /**
   * Checks an APOP login (RFC 1939 7): digest = MD5(greeting timestamp + secret), for an account
   * that has an APOP secret. Null when the account is unknown, disabled, has no secret or the
   * digest is wrong.
   */
  async authenticateApop(address: string, timestamp: string, digest: string): Promise<Account | null> {
    const account = await this.getUser(address);
    if (!account || account.disabled) return null;
    const secret = await this.store.getApopSecret(account.id);
    if (secret === null) return null;
    const expected = createHash('md5').update(timestamp + secret).digest();
    const given = Buffer.from(digest, 'hex');
    return given.length === expected.length && timingSafeEqual(given, expected) ? account : null;
  }

  /**
   * Checks a login; null when the account is unknown, disabled or the password is wrong.
   *
   * With `cacheTtlMs`, a successful check is remembered for that long (as Dovecot's auth cache),
   * so a client that polls every few minutes does not pay for argon2 each time. The cache keeps
   * only an HMAC of the password under a key that never leaves this process, bound to the stored
   * hash: a password change invalidates it at once. Failures are never cached.
   */
  async authenticate(address: string, password: string, options: { cacheTtlMs?: number } = {}): Promise<Account | null> {
    const account = await this.getUser(address);
    if (!account || account.disabled) {
      // Spend comparable time on unknown accounts, so timing does not reveal which exist.
      await verifyPassword(UNKNOWN_ACCOUNT_HASH, password);
      return null;
    }
    const ttl = options.cacheTtlMs ?? 0;
    const tag = ttl > 0 ? createHmac('sha256', AUTH_CACHE_KEY).update(`${account.passwordHash}\0${password}`).digest() : null;
    if (tag) {
      const hit = this.authCache.get(account.address);
      if (hit && hit.expires > Date.now() && timingSafeEqual(hit.tag, tag)) return account;
    }
    if (!(await verifyPassword(account.passwordHash, password))) return null;
    if (tag) {
      this.authCache.delete(account.address);
      if (this.authCache.size >= AUTH_CACHE_MAX) this.authCache.delete(this.authCache.keys().next().value!);
      this.authCache.set(account.address, { tag, expires: Date.now() + ttl });
    }
    return account;
  }

  async addAlias(address: string, targets: string[]): Promise<Alias> {
    const key = normalizeAliasKey(address);
    if (targets.length === 0) throw new InvalidInput('an alias needs at least one target address');
    if (!(await this.store.getDomain(key.domain))) {
      throw new InvalidInput(`${key.domain} is not a local domain; an alias must be in one (fulmar domain add ${key.domain})`);
    }
    const normalTargets = targets.map((t) => normalizeTarget(t));
    return this.store.addAlias(key.key, normalTargets);
  }

  async removeAlias(address: string): Promise<void> {
    return this.store.removeAlias(normalizeAliasKey(address).key);
  }

  async listAliases(): Promise<Alias[]> {
    return this.store.listAliases();
  }

  async getAlias(key: string): Promise<Alias | null> {
    return this.store.getAlias(key);
  }
}

// A valid argon2id hash of a random password, verified against when the account does not exist.
const UNKNOWN_ACCOUNT_HASH = '$argon2id$v=19$m=19456,t=2,p=1$AejnuNieD2F4lNf0lMFNAA$vIGCgQKuqzl4SLLbUuxfeemqrvofxF7sBGPsy6cQE5c';
