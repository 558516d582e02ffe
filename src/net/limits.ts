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
