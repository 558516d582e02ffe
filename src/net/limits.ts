/**
 * Connection limits: a total and a per-IP count of open connections for one service family.
 * Limits are read at each accept, so a changed setting applies to the next connection.
 */
export class ConnectionCounter {
  private total = 0;
  private readonly perIp = new Map<string, number>();

  /** Reserves a slot; returns the release function, or the reason the connection is refused. */
  acquire(ip: string, maxTotal: number, maxPerIp: number): { ok: true; release: () => void } | { ok: false; reason: 'total' | 'per-ip' } {
    if (this.total >= maxTotal) return { ok: false, reason: 'total' };
    const n = this.perIp.get(ip) ?? 0;
    if (n >= maxPerIp) return { ok: false, reason: 'per-ip' };
    this.total++;
    this.perIp.set(ip, n + 1);
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        const left = (this.perIp.get(ip) ?? 1) - 1;
        if (left <= 0) this.perIp.delete(ip);
        else this.perIp.set(ip, left);
      },
    };
  }

  get open(): number {
    return this.total;
  }
}

/**
 * Failed logins per IP address in a sliding window, shared by every protocol: past the limit, an
 * address's further logins are refused without checking the password until the window moves on.
 */
export class LoginFailures {
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly windowMs = 15 * 60_000) {}

  record(ip: string, now = Date.now()): void {
    const list = this.recent(ip, now);
    list.push(now);
    this.failures.set(ip, list);
    if (this.failures.size > 100_000) this.prune(now);
  }

  blocked(ip: string, limit: number, now = Date.now()): boolean {
    return this.recent(ip, now).length >= limit;
  }

  clear(ip: string): void {
    this.failures.delete(ip);
  }

  private recent(ip: string, now: number): number[] {
    const list = (this.failures.get(ip) ?? []).filter((t) => now - t < this.windowMs);
    if (list.length === 0) this.failures.delete(ip);
    return list;
  }

  private prune(now: number): void {
    for (const ip of [...this.failures.keys()]) this.recent(ip, now);
  }
}
