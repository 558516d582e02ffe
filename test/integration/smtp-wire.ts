/**
 * A raw SMTP client over node:net / node:tls for the integration tests that need exact control of
 * the bytes on the wire (pipelining, BDAT, smuggling, STARTTLS injection, floods). Replies are
 * parsed per RFC 5321 4.2 (multi-line with "-") and RFC 2034 (enhanced codes).
 *
 * Also: an asynchronous `fulmar` admin command runner, so a test can set up its accounts in
 * parallel (each CLI call costs a Node start-up).
 */
import { spawn, spawnSync } from 'node:child_process';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import { openServices, type Services } from '../../src/app/services.js';
import { loadBootstrapConfig } from '../../src/config/bootstrap.js';
import { isSettingKey, parseSettingValue } from '../../src/config/settings-registry.js';
import { parseSize } from '../../src/util/size.js';
import { FULMAR, FulmarProcess } from './harness.js';
import { connectSocket, WireSocket, type ConnectOptions } from './wire-socket.js';

export interface SmtpReply {
  code: number;
  /** Enhanced status code of the first line (`5.3.4`), or null. */
  enhanced: string | null;
  /** Text of every line, without code, separator and enhanced code. */
  lines: string[];
  /** The raw reply as received. */
  raw: string;
}

const ENHANCED = /^([245]\.\d{1,3}\.\d{1,3}) /;

export class SmtpWire extends WireSocket {
  private buffer = Buffer.alloc(0);
  protected accept(d: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, d]);
    this.wake();
  }

  private constructor(socket: Socket | TLSSocket) {
    super(socket);
  }

  /** Opens a connection; `tls` for implicit TLS (port 465). Does not read the greeting. */
  static async open(port: number, options: ConnectOptions = {}): Promise<SmtpWire> {
    return new SmtpWire(await connectSocket(port, options));
  }

  /** Opens a connection and checks the 220 greeting. */
  static async greeted(port: number, options: { tls?: boolean } = {}): Promise<SmtpWire> {
    const w = await SmtpWire.open(port, options);
    const greeting = await w.read();
    if (greeting.code !== 220) throw new Error(`expected 220 greeting, got ${greeting.raw}`);
    return w;
  }

  get pending(): number {
    return this.buffer.length;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  async writeAndDrain(data: string | Buffer): Promise<void> {
    await new Promise<void>((res, rej) => this.socket.write(data, (err) => (err ? rej(err) : res())));
  }

  /** Reads one complete reply; rejects on close or after `timeoutMs`. */
  async read(timeoutMs = 10_000): Promise<SmtpReply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const reply = this.takeReply();
      if (reply) return reply;
      if (this.ended) throw new Error(`connection closed while waiting for a reply (buffered: ${JSON.stringify(this.buffer.toString('latin1'))})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms (buffered: ${JSON.stringify(this.buffer.toString('latin1'))})`);
      await this.nextWake(left);
    }
  }

  /** Reads `n` replies in order. */
  async readN(n: number, timeoutMs = 10_000): Promise<SmtpReply[]> {
    const out: SmtpReply[] = [];
    for (let i = 0; i < n; i++) out.push(await this.read(timeoutMs));
    return out;
  }

  private takeReply(): SmtpReply | null {
    let pos = 0;
    const lines: string[] = [];
    let code = 0;
    for (;;) {
      const nl = this.buffer.indexOf('\n', pos);
      if (nl < 0) return null;
      const line = this.buffer.subarray(pos, nl).toString('utf8').replace(/\r$/, '');
      pos = nl + 1;
      const m = /^(\d{3})([ -])(.*)$/.exec(line);
      if (!m) throw new Error(`malformed reply line ${JSON.stringify(line)}`);
      code = Number(m[1]);
      lines.push(m[3]!);
      if (m[2] === ' ') break;
    }
    const raw = this.buffer.subarray(0, pos).toString('utf8');
    this.buffer = this.buffer.subarray(pos);
    const e = ENHANCED.exec(lines[0]!);
    return {
      code,
      enhanced: e ? e[1]! : null,
      lines: lines.map((l) => l.replace(ENHANCED, '')),
      raw,
    };
  }

  /** Sends one command line (CRLF added) and reads its reply. */
  async cmd(line: string, timeoutMs?: number): Promise<SmtpReply> {
    this.write(`${line}\r\n`);
    return this.read(timeoutMs);
  }

  /** EHLO; returns the reply (its lines are the extensions). */
  async ehlo(name = 'client.example'): Promise<SmtpReply> {
    const r = await this.cmd(`EHLO ${name}`);
    if (r.code !== 250) throw new Error(`EHLO failed: ${r.raw}`);
    return r;
  }

  /** STARTTLS and the handshake; the caller sends EHLO again. */
  async startTls(): Promise<SmtpReply> {
    const r = await this.cmd('STARTTLS');
    if (r.code !== 220) throw new Error(`STARTTLS refused: ${r.raw}`);
    await this.upgrade();
    return r;
  }

  /** AUTH PLAIN with an initial response. */
  async authPlain(user: string, password: string): Promise<SmtpReply> {
    return this.cmd(`AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`).toString('base64')}`);
  }

  /** Waits for the server to close the connection. */
  async waitClosed(timeoutMs = 10_000): Promise<void> {
    await Promise.race([
      this.closed,
      new Promise((_, rej) => setTimeout(() => rej(new Error(`connection not closed within ${timeoutMs} ms`)), timeoutMs).unref()),
    ]);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Asserts-friendly form of a reply: `552 5.3.4`. */
export function codes(r: SmtpReply): string {
  return r.enhanced ? `${r.code} ${r.enhanced}` : `${r.code}`;
}

/** Runs a `fulmar` admin command without blocking the event loop; rejects with stderr on failure. */
export function cliAsync(f: FulmarProcess, ...args: string[]): Promise<string> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [FULMAR, ...args, '--data', f.dataDir, '--config', f.configFile], {
      cwd: f.dataDir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => (code === 0 ? res(out) : rej(new Error(`fulmar ${args.join(' ')} failed (${code}): ${err}`))));
  });
}

/**
 * Test set-up done in this process, through the same services the CLI uses (a CLI call costs a
 * Node start-up, about a second here). The server sees these changes as it sees the CLI's: it
 * reads the shared SQLite database. The CLI itself is tested in cli.test.ts.
 */
export class Admin {
  private constructor(private readonly services: Services) {}

  static async open(f: FulmarProcess): Promise<Admin> {
    const config = loadBootstrapConfig({ data: f.dataDir, config: f.configFile }, f.dataDir);
    return new Admin(await openServices(config));
  }

  async addDomain(name: string, maxMessageSize?: string): Promise<void> {
    await this.services.directory.addDomain(name);
    if (maxMessageSize !== undefined) await this.services.directory.setDomainMaxMessageSize(name, parseSize(maxMessageSize));
  }

  async addUsers(addresses: string[], password = 'secret', quota?: string): Promise<void> {
    for (const a of addresses) {
      await this.services.directory.addUser(a, password, { quotaBytes: quota === undefined ? null : parseSize(quota) });
    }
  }

  async addAlias(address: string, targets: string[]): Promise<void> {
    await this.services.directory.addAlias(address, targets);
  }

  /** Stores a setting as text, after the same validation as `fulmar settings set`. */
  async set(key: string, value: string): Promise<void> {
    if (!isSettingKey(key)) throw new Error(`unknown setting ${key}`);
    const parsed = parseSettingValue(key, value);
    if (!parsed.ok) throw new Error(parsed.error);
    await this.services.store.settings.set(key, value.trim());
  }

  async unset(key: string): Promise<void> {
    await this.services.store.settings.delete(key);
  }

  /** Runs `fn` with settings changed, and puts them back after. */
  async withSettings(settings: Record<string, string>, fn: () => Promise<void>): Promise<void> {
    for (const [k, v] of Object.entries(settings)) await this.set(k, v);
    try {
      await fn();
    } finally {
      for (const k of Object.keys(settings)) await this.unset(k);
    }
  }

  async close(): Promise<void> {
    await this.services.store.close();
  }
}

/** Adds users in parallel through the CLI. */
export async function addUsers(f: FulmarProcess, addresses: string[], password = 'secret', extra: string[] = []): Promise<void> {
  await Promise.all(addresses.map((a) => cliAsync(f, 'user', 'add', a, '--password', password, ...extra)));
}

let pythonPath: string | null = null;

/**
 * Like harness.python(), but runs the interpreter itself rather than a version manager's shim
 * (pyenv's shim costs about 0.4 s a call here).
 */
export function python3(script: string, env: Record<string, string> = {}): string {
  if (pythonPath === null) {
    const r = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' });
    pythonPath = r.status === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : 'python3';
  }
  const r = spawnSync(pythonPath, ['-c', script], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  if (r.status !== 0) throw new Error(`python failed (${r.status}):\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

/** Resident set size of a process in kB, from /proc/<pid>/status. */
export function rssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

/** A unique label for a test's own accounts. */
let counter = 0;
export function unique(prefix: string): string {
  counter++;
  return `${prefix}${counter}${Date.now().toString(36).slice(-4)}`;
}

/** Waits `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms));
}

/** One server per test file, with one local domain and an Admin on its store. */
export async function startServer(domain: string): Promise<{ f: FulmarProcess; admin: Admin }> {
  const f = await FulmarProcess.create();
  const admin = await Admin.open(f);
  await admin.addDomain(domain);
  await f.start();
  return { f, admin };
}

/** Stops the server of startServer and checks it stopped cleanly on SIGTERM. */
export async function stopServer(f: FulmarProcess, admin: Admin): Promise<void> {
  await admin.close();
  const code = await f.stop();
  f.cleanup();
  if (code !== 0) throw new Error(`the server exited with ${code} on SIGTERM, not 0`);
}
