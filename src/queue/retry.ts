/**
 * When a deferred recipient is tried again: a schedule of waits (a setting, Postfix-like by
 * default: 5m, 10m, 20m, 40m, then hourly), and a maximum time in the queue after which a
 * temporary failure becomes a bounce.
 */
import { parseDuration } from '../util/duration.js';

export const DEFAULT_SCHEDULE = [300_000, 600_000, 1_200_000, 2_400_000, 3_600_000];

/** `5m,10m,1h` → milliseconds; an invalid or empty text gives the default schedule. */
export function parseSchedule(text: string): number[] {
  const waits = text
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '')
    .map((t) => parseDuration(t));
  if (waits.length === 0 || waits.some((w) => w === null || w <= 0)) return DEFAULT_SCHEDULE;
  return waits as number[];
}

export type RetryDecision = { kind: 'retry'; at: Date } | { kind: 'expire' };

/**
 * After the `attempts`-th failed attempt (1 = the first), the next attempt time, or `expire`
 * when the message would be older than `maxAgeMs` by then.
 */
export function nextAttempt(attempts: number, createdAt: Date, now: Date, schedule: number[], maxAgeMs: number): RetryDecision {
  const wait = schedule[Math.min(Math.max(attempts, 1), schedule.length) - 1]!;
  const at = new Date(now.getTime() + wait);
  if (at.getTime() - createdAt.getTime() > maxAgeMs) {
    // One last try at the deadline itself, unless it has passed.
    const deadline = createdAt.getTime() + maxAgeMs;
    return deadline > now.getTime() ? { kind: 'retry', at: new Date(deadline) } : { kind: 'expire' };
  }
  return { kind: 'retry', at };
}
