/**
 * What the benchmarks share: sizes, percentiles, and the server's memory and CPU read from /proc.
 */
import { readFileSync } from 'node:fs';
import { parseSize as parseByteSize } from '../src/util/size.js';

const MB = 1024 * 1024;

export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

export function readStatus(pid: number): { rss: number; hwm: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return null;
  }
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** A --size option: 4096, 4KB, 5MB... (the same units as the CLI). */
export function parseSize(text: string): number {
  const bytes = parseByteSize(text);
  if (bytes === null) throw new Error(`--size takes 4096, 4KB, 5MB...; got ${text}`);
  return bytes;
}

export function machineBusySeconds(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0);
  return (cpu.reduce((a, b) => a + b, 0) - idle) / 100;
}

export function cpuSeconds(pid: number, path = `/proc/${pid}/stat`): number {
  const stat = readFileSync(path, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export const mb = (bytes: number): string => `${(bytes / MB).toFixed(1)} MB`;

export const mainThreadCpu = (pid: number): number => cpuSeconds(pid, `/proc/${pid}/task/${pid}/stat`);
