/**
 * Which sources a collection covers, and the server's timer that runs one every
 * `collect.interval` minutes (read at each tick, so a change applies without a restart).
 */
import { parseDuration } from '../util/duration.js';
import type { CollectSource } from '../store/types.js';
import { collectSource, type CollectorServices, type SourceReport } from './collector.js';

/**
 * The collectors' clock. FULMAR_COLLECT_CLOCK_OFFSET (a duration such as `4d`) moves it forward:
 * a test hook, so tests of leave-on-server ages need not wait days.
 */
export function collectClock(): () => Date {
  const raw = process.env['FULMAR_COLLECT_CLOCK_OFFSET'];
  const offset = raw ? (parseDuration(raw) ?? 0) : 0;
  return () => new Date(Date.now() + offset);
}

/**
 * The sources of one collection: every enabled DomainPOP source, and the MultiPOP entries when
 * `collect.multipop.enabled` is on. `name` narrows it to a DomainPOP source of that name or the
 * MultiPOP entries of that account (an explicit name runs even with MultiPOP switched off).
 */
export async function sourcesToRun(services: CollectorServices, name?: string): Promise<CollectSource[]> {
  const all = (await services.store.collect.listSources()).filter((s) => s.enabled);
  if (name !== undefined) {
    const wanted = name.toLowerCase();
    return all.filter((s) => s.name.toLowerCase() === wanted || (s.kind === 'multipop' && s.name.toLowerCase().startsWith(`${wanted}/`)));
  }
  const multipop = (await services.settings.snapshot()).get('collect.multipop.enabled');
  return all.filter((s) => s.kind === 'domainpop' || multipop);
}

/**
 * Collects every source in turn; one failing source never stops the others. The DomainPOP
 * sources of one domain share their in-cycle dedupe keys (MDaemon's extra hosts).
 */
export async function collectAll(services: CollectorServices, name?: string): Promise<SourceReport[]> {
  const reports: SourceReport[] = [];
  const byDomain = new Map<string, Set<string>>();
  for (const source of await sourcesToRun(services, name)) {
    let keys: Set<string> | undefined;
    if (source.kind === 'domainpop') {
      const domain = domainOf(source.config);
      if (domain !== null) {
        keys = byDomain.get(domain) ?? new Set<string>();
        byDomain.set(domain, keys);
      }
    }
    reports.push(await collectSource(source, services, keys));
  }
  return reports;
}

function domainOf(config: string): string | null {
  try {
    const domain = (JSON.parse(config) as { domain?: unknown }).domain;
    return typeof domain === 'string' ? domain.toLowerCase() : null;
  } catch {
    return null;
  }
}

/** The server's collection timer. */
export class CollectSchedule {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private lastRun = 0;

  constructor(private readonly services: CollectorServices) {}

  start(): void {
    this.arm(5_000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private arm(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    this.timer = null;
    try {
      const minutes = (await this.services.settings.snapshot()).get('collect.interval');
      if (minutes > 0 && Date.now() - this.lastRun >= minutes * 60_000) {
        this.lastRun = Date.now();
        this.running = collectAll(this.services).then(
          () => {},
          (err: unknown) => this.services.log.warn({ event: 'collect.schedule_failed', err }, 'scheduled collection failed'),
        );
        await this.running;
        this.running = null;
      }
    } catch (err) {
      this.services.log.warn({ event: 'collect.schedule_failed', err }, 'scheduled collection failed');
    }
    this.arm(15_000);
  }
}
