/**
 * A throwaway Dovecot POP3 server (Debian's dovecot-pop3d) playing an ISP's mailbox, for tests
 * of a POP3 collector: its own config under a fresh temp folder, two ports on 127.0.0.1 (plain
 * POP3 offering STLS, and implicit TLS), a passwd-file and a maildir per account, which a test
 * fills directly (as the ISP's delivery agent would).
 *
 * Set up the way bench/imap-dovecot.ts sets up its IMAP Dovecot (not imported: bench/ is not a
 * test dependency): base_dir, state_dir and the log in the folder, the mail processes and the
 * login processes as nobody (65534), no chroot for the login and anvil services, so it runs as
 * root in a container. Everything not set here is Dovecot's built-in default (not Debian's
 * /etc/dovecot, which is never read).
 *
 * Quirks worth knowing:
 * - APOP: Dovecot puts the `<timestamp@host>` in its greeting only when `apop` is one of
 *   `auth_mechanisms`, and the APOP mechanism needs the plaintext password from the passdb. So
 *   accounts are stored `{PLAIN}` (addUser's default); `apop: false` stores a salted SHA-512
 *   instead, and APOP then fails for that account while USER/PASS and AUTH PLAIN still work.
 * - User names are lower-cased by Dovecot before the passdb lookup (`auth_username_format =
 *   %Lu`, the default), so this fixture lower-cases them too (maildir paths included).
 * - UIDLs are `%08Xu%08Xv`: UID then UIDVALIDITY, 8 hex digits each (lower-case, X or not).
 *   New messages get UIDs in the order of the time stamp in their maildir file names, which
 *   deliver() keeps increasing; clear() keeps dovecot-uidlist, so UIDs never restart.
 * - A passwd-file is re-read at most once a second, so each account has its own
 *   (`passwd.d/<user>`): a new account is seen at once, a changed password from the next second
 *   (addUser waits for it).
 * - After a failed login, 2.3 delays the next logins from that IP (anvil's auth penalty: 2, 4,
 *   8, 15 s), with no setting to turn it off (login_trusted_networks no longer exempts). The
 *   fixture removes anvil's penalty socket before the auth process starts, which disables it
 *   silently; `auth_failure_delay = 0` makes the failure itself answer at once.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './harness.js';

export interface DovecotPop3 {
  host: '127.0.0.1';
  /** Plain POP3, STLS offered (not required: USER/PASS work without TLS too). */
  port: number;
  /** Implicit TLS (pop3s). */
  tlsPort: number;
  /** The temp folder holding config, run state, log, certificate, passwd-file and maildirs. */
  dir: string;
  /** The server's self-signed certificate (PEM), CN=localhost with SANs localhost and 127.0.0.1. */
  certFile: string;
  /** Its private key (PEM), e.g. for a proxy that terminates STLS itself. */
  keyFile: string;
  /** Adds (or replaces) an account; `apop: false` stores a hash, so APOP fails for it. */
  addUser(user: string, password: string, options?: { apop?: boolean }): void;
  /** Writes one message into the user's maildir new/ (tmp then rename); returns its file name. */
  deliver(user: string, message: Buffer | string, options?: { mtime?: Date }): string;
  /** Messages now in the user's maildir (new + cur). */
  count(user: string): number;
  /** Deletes the user's message files; Dovecot's dovecot-uidlist and indexes stay, so UIDs go on. */
  clear(user: string): void;
  /** Dovecot's log so far. */
  log(): string;
  /** Stops Dovecot and removes the folder. */
  stop(): Promise<void>;
}

/** nobody / nogroup: the mail processes' user, the owner of the maildirs. */
const UID = 65534;

/** Claims of ports by the test processes running now: one file per port, as in harness.ts. */
/** Master pid → folder of the Dovecots this process started and has not stopped yet. */
const running = new Map<number, string>();
process.once('exit', () => {
  // A test process that ends without stop() leaves no Dovecot behind, and most of its folder
  // gone (its processes may still write while they shut down).
  for (const [pid, dir] of running) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // a file appeared meanwhile
    }
  }
});

function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms));
}

/** Resolves when 127.0.0.1:port accepts a connection; rejects after `ms`. */
async function waitForPort(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        res(true);
      });
      s.once('error', () => res(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${ms} ms`);
    await sleep(50);
  }
}

/** State and parent of a process from /proc, or null once it is gone. */
function procStat(pid: number): { state: string; ppid: number } | null {
  try {
    const m = /\) (\S) (\d+)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return m ? { state: m[1]!, ppid: Number(m[2]) } : null;
  } catch {
    return null;
  }
}

/** False once the process has exited (a zombie counts as exited: pid 1 may reap it late). */
function isAlive(pid: number): boolean {
  const stat = procStat(pid);
  return stat !== null && stat.state !== 'Z';
}

/** The children of `ppid` (Dovecot's master: log, anvil, config, auth, login and pop3 processes). */
function childrenOf(ppid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => procStat(pid)?.ppid === ppid);
}

/**
 * Stops a Dovecot master and waits for its processes: the master stops its children, but the
 * last of them may outlive it by a moment, and the folder may only go once none can write to it.
 */
async function stopMaster(pid: number): Promise<void> {
  const processes = [pid, ...childrenOf(pid)];
  if (isAlive(pid)) process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && processes.some(isAlive); i++) await sleep(50);
  for (const p of processes.filter(isAlive)) process.kill(p, 'SIGKILL');
  running.delete(pid);
}

function config(dir: string, port: number, tlsPort: number): string {
  return `# Throwaway Dovecot POP3 for Fulmar's collector tests (written by test/integration/dovecot-pop3.ts)
protocols = pop3
listen = 127.0.0.1
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
auth_verbose = yes

ssl = yes
ssl_cert = <${dir}/cert.pem
ssl_key = <${dir}/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
# apop: without it in the list, pop3-login sends no timestamp in its greeting.
auth_mechanisms = plain login apop
# Failed logins answer at once (collector tests try wrong passwords on purpose); the penalty
# that would slow down the next logins from 127.0.0.1 is switched off in startDovecotPop3.
auth_failure_delay = 0

default_login_user = nobody
default_internal_user = nobody
default_internal_group = nogroup

passdb {
  driver = passwd-file
  # One file per account: Dovecot re-reads a passwd-file at most once a second, so a single file
  # would hide an account added in the same second as another's login.
  args = scheme=PLAIN ${dir}/passwd.d/%u
}
userdb {
  driver = static
  args = uid=${UID} gid=${UID} home=${dir}/home/%u
}
mail_location = maildir:~/Maildir
mail_fsync = never
mail_max_userip_connections = 1000
pop3_uidl_format = %08Xu%08Xv

service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = ${tlsPort}
    ssl = yes
  }
  chroot =
}
service anvil {
  chroot =
}
service stats {
  unix_listener stats-writer {
    mode = 0666
  }
}
`;
}

/** Creates `Maildir/{cur,new,tmp}` under the user's home, owned by nobody; returns the Maildir path. */
function maildirOf(dir: string, user: string, create: boolean): string {
  const home = join(dir, 'home', user.toLowerCase());
  const maildir = join(home, 'Maildir');
  if (create && !existsSync(join(maildir, 'tmp'))) {
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(maildir, sub), { recursive: true });
    for (const p of [home, maildir, join(maildir, 'cur'), join(maildir, 'new'), join(maildir, 'tmp')]) chownSync(p, UID, UID);
  }
  return maildir;
}

export async function startDovecotPop3(options: { ports?: [number, number] } = {}): Promise<DovecotPop3> {
  const dir = mkdtempSync(join(tmpdir(), 'fulmar-dovecot-pop3-'));
  // The login and mail processes (nobody) reach their sockets under run/ and the homes through it.
  chmodSync(dir, 0o755);
  for (const sub of ['run', 'state', 'home', 'passwd.d']) mkdirSync(join(dir, sub), { mode: 0o755 });
  chownSync(join(dir, 'home'), UID, UID);
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  const logFile = join(dir, 'dovecot.log');
  const confFile = join(dir, 'dovecot.conf');

  const cert = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '2',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', keyFile, '-out', certFile],
    { encoding: 'utf8' },
  );
  if (cert.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`openssl req failed (${cert.status}): ${cert.stderr}`);
  }

  // A range of their own (harness servers use 20000-32000), with the harness's claim files.
  const [port, tlsPort] = options.ports ?? [await freePort([33000, 34000]), await freePort([33000, 34000])];
  writeFileSync(confFile, config(dir, port, tlsPort));

  const readLog = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  const startOut = join(dir, 'start.out');
  const fail = async (why: string, pid: number | null): Promise<never> => {
    if (pid !== null) await stopMaster(pid);
    const out = existsSync(startOut) ? readFileSync(startOut, 'utf8') : '';
    const log = readLog();
    rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
    throw new Error(`dovecot (pop3) did not start: ${why}\n--- dovecot output ---\n${out}\n--- dovecot.log ---\n${log}`);
  };

  // The master daemonizes; its output goes to a file, as a pipe would stay open after the fork.
  const fd = openSync(startOut, 'w');
  const r = spawnSync('dovecot', ['-c', confFile], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  if (r.error) return fail(`cannot run dovecot: ${r.error.message}`, null);
  if (r.status !== 0) return fail(`exit status ${r.status}`, null);
  const pidFile = join(dir, 'run', 'master.pid');
  for (let i = 0; i < 100 && !existsSync(pidFile); i++) await sleep(50);
  if (!existsSync(pidFile)) return fail('no master.pid', null);
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  running.set(pid, dir);
  // No auth penalty: after a failed login Dovecot delays the next logins from the same IP (2, 4,
  // 8, 15 s), and every test connects from 127.0.0.1. 2.3 has no setting for it (trusted networks
  // no longer exempt), but the auth process, started at the first login, skips the penalty
  // silently when anvil's penalty socket is missing.
  const penaltySocket = join(dir, 'run', 'anvil-auth-penalty');
  for (let i = 0; i < 100 && !existsSync(penaltySocket); i++) await sleep(20);
  rmSync(penaltySocket, { force: true });
  try {
    await Promise.all([waitForPort(port, 10_000), waitForPort(tlsPort, 10_000)]);
  } catch (e) {
    return fail((e as Error).message, pid);
  }

  let deliverStamp = 0;
  let stopped = false;

  return {
    host: '127.0.0.1',
    port,
    tlsPort,
    dir,
    certFile,
    keyFile,

    addUser(user, password, addOptions = {}) {
      const name = user.toLowerCase();
      if (/[:\s]/.test(name) || /[:\r\n]/.test(password)) throw new Error('no ":" or line breaks in a passwd-file entry');
      let stored: string;
      if (addOptions.apop ?? true) {
        stored = `{PLAIN}${password}`;
      } else {
        const salt = randomBytes(8);
        const digest = createHash('sha512').update(password).update(salt).digest();
        stored = `{SSHA512}${Buffer.concat([digest, salt]).toString('base64')}`;
      }
      const file = join(dir, 'passwd.d', name);
      const replacing = existsSync(file);
      const tmp = `${file}.tmp`;
      writeFileSync(tmp, `${name}:${stored}::::::\n`, { mode: 0o644 });
      if (replacing) {
        // Dovecot looks at a file again when its mtime or size changed, at most once a second:
        // a later mtime, and a wait into the next second, so the next login sees the new password.
        const stamp = Math.floor(statSync(file).mtimeMs / 1000) + 1;
        utimesSync(tmp, stamp, stamp);
      }
      renameSync(tmp, file);
      if (replacing) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000 - (Date.now() % 1000) + 10);
      maildirOf(dir, name, true);
    },

    deliver(user, message, deliverOptions = {}) {
      const maildir = maildirOf(dir, user, true);
      const raw = typeof message === 'string' ? Buffer.from(message, 'utf8') : message;
      // Maildir holds LF lines; Dovecot sends them as CRLF (and counts sizes that way).
      const bytes = Buffer.from(raw.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
      // Microseconds since the epoch, always increasing: Dovecot numbers new mail in name order.
      deliverStamp = Math.max(Date.now() * 1000, deliverStamp + 1);
      const name = `${Math.floor(deliverStamp / 1_000_000)}.M${deliverStamp % 1_000_000}P${process.pid}.fulmar-test,S=${bytes.length}`;
      const tmp = join(maildir, 'tmp', name);
      writeFileSync(tmp, bytes, { mode: 0o600 });
      chownSync(tmp, UID, UID);
      if (deliverOptions.mtime) utimesSync(tmp, deliverOptions.mtime, deliverOptions.mtime);
      renameSync(tmp, join(maildir, 'new', name));
      return name;
    },

    count(user) {
      const maildir = maildirOf(dir, user, false);
      let n = 0;
      for (const sub of ['new', 'cur']) {
        if (existsSync(join(maildir, sub))) n += readdirSync(join(maildir, sub)).length;
      }
      return n;
    },

    clear(user) {
      const maildir = maildirOf(dir, user, false);
      for (const sub of ['new', 'cur', 'tmp']) {
        if (!existsSync(join(maildir, sub))) continue;
        for (const f of readdirSync(join(maildir, sub))) unlinkSync(join(maildir, sub, f));
      }
    },

    log: readLog,

    async stop() {
      if (stopped) return;
      stopped = true;
      await stopMaster(pid);
      rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
    },
  };
}
