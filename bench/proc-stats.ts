/**
 * What the benchmarks share: sizes, percentiles, the server's memory and CPU read from /proc
 * (summed over a process tree when the server is several processes, as Dovecot is), the other
 * load on the machine, and the CPU profile summary.
 */
import { readdirSync, readFileSync } from 'node:fs';
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

function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return [stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), ...stat.slice(stat.lastIndexOf(')') + 2).split(' ')];
  } catch {
    return null;
  }
}

/** `root` and every process below it. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (!f) continue;
    const ppid = Number(f[2]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

export interface TreeMemory {
  processes: number;
  /** Sum of VmRSS (shared pages counted in every process). */
  rss: number;
  /** Sum of Pss (shared pages divided among their users); null when not read. */
  pss: number | null;
}

/** Memory of a process tree; `pss` reads smaps_rollup of each process (slower: for before/after figures). */
export function treeMemory(root: number, pss = false): TreeMemory {
  const pids = processTree(root);
  let rss = 0;
  let pssSum = 0;
  let n = 0;
  for (const pid of pids) {
    try {
      const statm = readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ');
      rss += Number(statm[1]) * 4096;
      if (pss) {
        const roll = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
        pssSum += Number(/^Pss:\s+(\d+) kB/m.exec(roll)?.[1] ?? 0) * 1024;
      }
      n++;
    } catch {
      // gone meanwhile
    }
  }
  return { processes: n, rss, pss: pss ? pssSum : null };
}

/**
 * CPU seconds of a process tree: user+system of the live processes, plus what their reaped
 * children used (cutime+cstime), so short-lived Dovecot processes count once they have exited.
 */
export function treeCpu(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) {
    const f = statFields(pid);
    if (!f) continue;
    // f[0] is comm, f[2] ppid; stat fields 14..17 (utime, stime, cutime, cstime) are f[12..15].
    ticks += Number(f[12]) + Number(f[13]) + Number(f[14]) + Number(f[15]);
  }
  return ticks / 100;
}

/** CPU seconds (with reaped children) of every process on the machine, by pid. */
export function allProcessCpu(): Map<number, [string, number]> {
  const out = new Map<number, [string, number]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (!f) continue;
    out.set(Number(name), [f[0]!, (Number(f[12]) + Number(f[13]) + Number(f[14]) + Number(f[15])) / 100]);
  }
  return out;
}

/** The processes outside `exclude` that used at least `min` CPU seconds between two snapshots. */
export function otherLoad(before: Map<number, [string, number]>, exclude: Set<number>, min = 0.3): Array<[string, number]> {
  return [...allProcessCpu()]
    .filter(([p]) => !exclude.has(p))
    .map(([p, [comm, secs]]) => [`${comm}[${p}]`, secs - (before.get(p)?.[1] ?? 0)] as [string, number])
    .filter(([, secs]) => secs >= min)
    .sort((a, b) => b[1] - a[1]);
}

/** CPU profile summary: self time per file and per function, and inclusive time per function. */
export function summarizeProfile(path: string): string {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const label = (n: ProfileNode): { fn: string; file: string } => {
    const f = n.callFrame;
    const url = f.url.replace(/^file:\/\//, '').replace(`${process.cwd()}/`, '');
    const file = url === '' ? `(${f.functionName || 'native'})` : url.includes('node_modules') ? url.replace(/.*node_modules\/([^/]+).*/, 'node_modules/$1') : url;
    return { fn: `${f.functionName || '(anonymous)'} ${url ? `${url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}` : ''}`, file };
  };
  const fnTime = new Map<string, number>();
  const fileTime = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const { fn, file } = label(n);
    fnTime.set(fn, (fnTime.get(fn) ?? 0) + us);
    fileTime.set(file, (fileTime.get(file) ?? 0) + us);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const name = label(byId.get(cur)!).fn;
      if (seen.has(name)) continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + us);
    }
  }
  const top = (m: Map<string, number>, n: number, skip: RegExp | null = null): string =>
    [...m]
      .filter(([k]) => !skip || !skip.test(k))
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `    ${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`)
      .join('\n');
  const idle = fnTime.get('(idle) ') ?? 0;
  return (
    `  profile: ${(total / 1e6).toFixed(2)} s sampled, ${((100 * idle) / total).toFixed(1)}% idle\n` +
    `  self time by file/module:\n${top(fileTime, 16)}\n  self time by function:\n${top(fnTime, 30)}\n` +
    `  total time (self + callees) by function:\n${top(inclusive, 40, /^\((root|program|idle|garbage collector)\)/)}`
  );
}
