/**
 * Runs the real `fulmar` command for integration tests: a fresh data folder, free ports, the
 * server as a child process, admin commands through the CLI, and a read-only look into the
 * store to check what was delivered.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openStore } from '../../src/app/open-store.js';
import type { Store } from '../../src/store/types.js';

export const ROOT = resolve(import.meta.dirname, '../..');
export const FULMAR = join(ROOT, 'bin', 'fulmar.js');

export interface Ports {
  smtp: number;
  submission: number;
  smtps: number;
  pop3: number;
  pop3s: number;
  imap: number;
  imaps: number;
}

/** Claims of ports by the test processes running now: one file per port (see freePort). */
const PORT_CLAIMS = join(tmpdir(), 'fulmar-test-ports');
const claimedHere: string[] = [];
process.once('exit', () => {
  for (const file of claimedHere) rmSync(file, { force: true });
});

/** True when this process now holds the claim file of `port` (stale claims of dead runs are taken over). */
function claimPort(port: number): boolean {
  const file = join(PORT_CLAIMS, String(port));
  try {
    writeFileSync(file, String(process.pid), { flag: 'wx' });
  } catch {
    try {
      // A claim older than an hour is a leftover of a killed test run.
      if (Date.now() - statSync(file).mtimeMs < 3_600_000) return false;
      writeFileSync(file, String(process.pid));
    } catch {
      return false;
    }
  }
  claimedHere.push(file);
  return true;
}

/**
 * A free port for a test server, held for this test process's whole life: below the kernel's
 * ephemeral range (so no outgoing connection takes it while a crash test's server is down), and
 * claimed by a file, so two test files running at once never pick the same port, even while one
 * of them has its server stopped. Fixtures of other servers (Dovecot) pass a range of their own.
 */
export async function freePort(range: [number, number] = [20000, 32000]): Promise<number> {
  mkdirSync(PORT_CLAIMS, { recursive: true });
  const [low, high] = range;
  for (let attempt = 0; ; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (!claimPort(port)) continue;
    const free = await new Promise<boolean>((res) => {
      const s = createServer();
      s.once('error', () => res(false));
      s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
    });
    if (free) return port;
    if (attempt > 300) throw new Error(`no free port between ${low} and ${high}`);
  }
}

export interface FulmarOptions {
  /** Runtime settings to store before the start (`fulmar settings set`). */
  settings?: Record<string, string>;
  hostname?: string;
  /** Extra environment or a data folder to reuse (crash tests restart on the same one). */
  dataDir?: string;
  /** Extra flags for the server's node process (`--cpu-prof`, ...); admin commands do not get them. */
  nodeFlags?: string[];
  /** A postgres:// URL: the node runs on that database (several nodes may share one). */
  database?: string;
  /** Defaults for runtime settings in this node's config file (the store's values win). */
  configSettings?: Record<string, string>;
}

export class FulmarProcess {
  child: ChildProcess | null = null;
  readonly logLines: string[] = [];
  /** Flags placed before the script on the server's node command line (see FulmarOptions). */
  nodeFlags: string[] = [];

  private constructor(
    readonly dataDir: string,
    readonly configFile: string,
    readonly ports: Ports,
    readonly hostname: string,
    readonly database: string = 'sqlite',
  ) {}

  static async create(options: FulmarOptions = {}): Promise<FulmarProcess> {
    const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'fulmar-test-'));
    const ports: Ports = {
      smtp: await freePort(),
      submission: await freePort(),
      smtps: await freePort(),
      pop3: await freePort(),
      pop3s: await freePort(),
      imap: await freePort(),
      imaps: await freePort(),
    };
    // The other services are not started yet, but every port must be valid and distinct.
    // SPF/DKIM/DMARC checks of port-25 mail are off by default here (a config-file default, so
    // the store can turn them on): they would ask the system's DNS for every test message.
    // The tests of the checks (smtp-auth-checks, dkim) turn them on with their own DNS server.
    const configFile = join(dataDir, 'fulmar.toml');
    writeFileSync(
      configFile,
      `listen = "127.0.0.1"\n[ports]\n${Object.entries(ports).map(([k, v]) => `${k} = ${v}`).join('\n')}\n` +
        // Hermetic: no test reaches the machine's own DNS. SPF/DKIM/DMARC checks are off, and
        // remote mail waits in the queue (lookups time out at a resolver nobody answers) unless
        // a test sets dns.servers to its own DNS server.
        `[settings]\n"smtp.auth_checks" = false\n"dns.servers" = "127.0.0.1:9"\n` +
        Object.entries(options.configSettings ?? {})
          .map(([k, v]) => `${JSON.stringify(k)} = ${JSON.stringify(v)}\n`)
          .join(''),
    );
    if (options.database) {
      // A top-level key: it must come before the first table.
      const text = readFileSync(configFile, 'utf8');
      writeFileSync(configFile, `database = ${JSON.stringify(options.database)}\n${text}`);
    }
    const f = new FulmarProcess(dataDir, configFile, ports, options.hostname ?? 'mx.fulmar.test', options.database ?? 'sqlite');
    f.nodeFlags = options.nodeFlags ?? [];
    f.cli('settings', 'set', 'auth.failure_delay', '0');
    for (const [k, v] of Object.entries(options.settings ?? {})) f.cli('settings', 'set', k, v);
    return f;
  }

  /** Runs an admin command; throws with its stderr when it fails. */
  cli(...args: string[]): string {
    const r = this.cliResult(...args);
    if (r.status !== 0) throw new Error(`fulmar ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  }

  cliResult(...args: string[]): { status: number; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [FULMAR, ...args, '--data', this.dataDir, '--config', this.configFile], {
      encoding: 'utf8',
      cwd: this.dataDir,
    });
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  /** Starts the server and resolves when it logged `app.started`. */
  async start(): Promise<void> {
    const child = spawn(
      process.execPath,
      [...this.nodeFlags, FULMAR, 'start', '--data', this.dataDir, '--config', this.configFile, '--hostname', this.hostname],
      { cwd: this.dataDir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    let buffered = '';
    await new Promise<void>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`fulmar did not start in 20 s:\n${this.logLines.join('\n')}`)), 20_000);
      child.stdout!.on('data', (d: Buffer) => {
        buffered += d.toString();
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          this.logLines.push(line);
          if (line.includes('"event":"app.started"')) {
            clearTimeout(timer);
            res();
          }
        }
      });
      child.stderr!.on('data', (d: Buffer) => this.logLines.push(d.toString()));
      child.once('exit', (code) => {
        clearTimeout(timer);
        rej(new Error(`fulmar exited with ${code}:\n${this.logLines.join('\n')}`));
      });
    });
  }

  /** SIGTERM and wait for a clean exit; returns the exit code. */
  async stop(): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null) return child?.exitCode ?? null;
    this.child = null;
    const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    child.kill('SIGTERM');
    return exited;
  }

  /** SIGKILL: the crash. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    this.child = null;
    const exited = new Promise<void>((res) => child.once('exit', () => res()));
    child.kill('SIGKILL');
    await exited;
  }

  /** Opens the store (read side) in this process; close it after use. */
  async openStore(): Promise<Store> {
    return openStore({ database: this.database, dataDir: this.dataDir });
  }

  /** Log events (parsed JSON lines) with the given event name. */
  events(name: string): Array<Record<string, unknown>> {
    return this.logLines
      .filter((l) => l.includes(`"event":"${name}"`))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  cleanup(): void {
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Reads every message of an account's mailbox as text (prefix + blob), in UID order. */
export async function readMailbox(store: Store, address: string, mailbox = 'INBOX'): Promise<string[]> {
  const account = await store.directory.getAccount(address.toLowerCase());
  if (!account) throw new Error(`no account ${address}`);
  const box = await store.mail.getMailbox(account.id, mailbox);
  if (!box) throw new Error(`no mailbox ${mailbox} for ${address}`);
  const out: string[] = [];
  for (const m of await store.mail.listMessages(box.id)) {
    const chunks: Buffer[] = [];
    for await (const c of store.mail.openMessage(m)) chunks.push(c as Buffer);
    out.push(Buffer.concat(chunks).toString('utf8'));
  }
  return out;
}

/** Runs a Python script (smtplib & co.) and returns its stdout; throws with stderr on failure. */
export function python(script: string, env: Record<string, string> = {}): string {
  const r = spawnSync('python3', ['-c', script], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  if (r.status !== 0) throw new Error(`python failed (${r.status}):\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

/** Runs swaks with the given arguments; returns its combined output and exit status. */
export function swaks(args: string[]): { status: number; output: string } {
  const r = spawnSync('swaks', args, { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}
