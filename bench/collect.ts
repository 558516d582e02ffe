/**
 * DomainPOP collection throughput, end to end, side by side with fetchmail in multidrop mode:
 * a throwaway Dovecot POP3 server (test/integration/dovecot-pop3.ts) plays the ISP's catch-all
 * mailbox, filled with N messages of about S bytes, each addressed To one and Cc another of 10
 * local users (distinct Message-IDs). Then:
 *
 * 1. Fulmar: a fresh data folder with the domain and its users (through the CLI, as the test
 *    harness does), a header-mode DomainPOP source (To, Cc, ...: MDaemon's mode, the one fetchmail
 *    multidrop also uses) and `fulmar collect run`, timed from spawn to exit. Each message is
 *    delivered durably (its UIDL and the mailbox rows in one transaction, the WAL fsynced before
 *    the next DELE) into both recipients' INBOXes, and deleted from Dovecot at QUIT.
 * 2. The same messages written into the same Dovecot mailbox again, and `fetchmail` collects
 *    them: `no envelope` + `localdomains` (recipients from To/Cc, as Fulmar's header mode),
 *    `is * here`, `fetchall`, `no keep`, plain POP3 (no STLS, as Fulmar's source), and an MDA
 *    that makes a durable local delivery of each message: a bash script writes it to a file of
 *    its own and fsyncs it (`cat > FILE && sync FILE`) and appends fetchmail's recipient list
 *    (%T) to a log. `--mda null` uses `cat >/dev/null` instead (fetchmail's own speed, nothing
 *    kept).
 *
 *   node --import tsx bench/collect.ts [--messages 10000] [--size 4096] [--mda fsync|null] [--skip-fetchmail] [--keep]
 *
 * Prints messages/s and the peak RSS of the collecting process (VmHWM from /proc, polled every
 * 20 ms while it runs; fetchmail's MDA children are not counted), and the ratios
 * Fulmar/fetchmail. Checks that every message reached each of its two recipients once (Fulmar:
 * the INBOX counts per user; fetchmail: the files and the recipient log) and that the Dovecot
 * mailbox is empty afterwards.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDovecotPop3, type DovecotPop3 } from '../test/integration/dovecot-pop3.js';
import { FULMAR, FulmarProcess } from '../test/integration/harness.js';
import { mb, parseSize, readStatus } from './proc-stats.js';

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '10000' },
    size: { type: 'string', default: '4096' },
    mda: { type: 'string', default: 'fsync' },
    'skip-fetchmail': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});

const MESSAGES = Number(args.messages);
const SIZE = parseSize(args.size);
const USERS = 10;
const DOMAIN = 'bench.test';
const CATCHALL = 'catchall';
const PASSWORD = 'pw';
if (!Number.isInteger(MESSAGES) || MESSAGES < 1) throw new Error('--messages takes a positive whole number');
if (args.mda !== 'fsync' && args.mda !== 'null') throw new Error('--mda takes fsync or null');

const user = (n: number): string => `u${n}@${DOMAIN}`;
/** Message i goes To one user and Cc another (never the same one). */
const toOf = (i: number): number => i % USERS;
const ccOf = (i: number): number => (toOf(i) + 1 + (i % (USERS - 1))) % USERS;

const LINE = 'The quick brown fox jumps over the lazy dog; 0123456789 abcdefghijklmnopqrstu\r\n';
const DOT_LINE = '.a line that starts with a dot (stuffed on the wire)\r\n';

function header(i: number): string {
  return (
    `Return-Path: <sender${i % 97}@remote.example>\r\n` +
    `Received: from mx.remote.example (mx.remote.example [192.0.2.${i % 250}])\r\n\tby pop.isp.example with ESMTP id b${i}; Mon, 2 Mar 2026 10:00:00 +0000\r\n` +
    `From: Sender ${i % 97} <sender${i % 97}@remote.example>\r\n` +
    `To: User ${toOf(i)} <${user(toOf(i))}>\r\nCc: ${user(ccOf(i))}\r\n` +
    `Subject: bench message ${i}\r\nMessage-ID: <bench.${i}@remote.example>\r\n` +
    `Date: Mon, 2 Mar 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n`
  );
}

/** About SIZE bytes as Dovecot sends it (CRLF lines), one body line starting with a dot. */
function message(i: number): Buffer {
  const head = header(i);
  const parts: string[] = [head];
  let left = Math.max(0, SIZE - head.length - DOT_LINE.length);
  const lines = Math.floor(left / LINE.length);
  for (let k = 0; k < lines; k++) parts.push(k === Math.floor(lines / 2) ? DOT_LINE + LINE : LINE);
  if (lines === 0) parts.push(DOT_LINE);
  left -= lines * LINE.length;
  if (left > 2) parts.push(`${'z'.repeat(left - 2)}\r\n`);
  return Buffer.from(parts.join(''), 'latin1');
}

function fill(d: DovecotPop3): number {
  const t = performance.now();
  for (let i = 0; i < MESSAGES; i++) d.deliver(CATCHALL, message(i));
  if (d.count(CATCHALL) !== MESSAGES) throw new Error(`Dovecot holds ${d.count(CATCHALL)} messages, not ${MESSAGES}`);
  return (performance.now() - t) / 1000;
}

interface Timed {
  seconds: number;
  peakRss: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end: wall time from spawn to exit, and its VmHWM polled every 20 ms. */
function timed(command: string, argv: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(command, argv, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    let peakRss = 0;
    const poll = (): void => {
      const s = child.pid ? readStatus(child.pid) : null;
      if (s) peakRss = Math.max(peakRss, s.hwm, s.rss);
    };
    const timer = setInterval(poll, 20);
    child.once('error', (e) => {
      clearInterval(timer);
      reject(e);
    });
    child.once('exit', () => clearInterval(timer));
    child.once('close', (code) => {
      resolve({
        seconds: (performance.now() - start) / 1000,
        peakRss,
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}

/** How many messages each user should get: one per message naming them in To or Cc. */
function expectedPerUser(): number[] {
  const counts = new Array<number>(USERS).fill(0);
  for (let i = 0; i < MESSAGES; i++) {
    counts[toOf(i)]!++;
    counts[ccOf(i)]!++;
  }
  return counts;
}

interface Result {
  seconds: number;
  peakRss: number;
  problems: string[];
}

interface FulmarResult extends Result {
  /** Peak RSS of `fulmar collect status` on the same data folder: the CLI's own footprint. */
  baselineRss: number;
}

async function runFulmar(d: DovecotPop3): Promise<FulmarResult> {
  const f = await FulmarProcess.create();
  const problems: string[] = [];
  try {
    f.cli('domain', 'add', DOMAIN);
    for (let n = 0; n < USERS; n++) f.cli('user', 'add', user(n), '--password', 'user-password');
    f.cli('user', 'add', `postmaster@${DOMAIN}`, '--password', 'user-password');
    f.cli(
      'collect', 'domainpop', 'add', 'isp', '--domain', DOMAIN, '--host', '127.0.0.1', '--port', String(d.port),
      '--user', CATCHALL, '--password', PASSWORD, '--mode', 'headers',
    );
    const r = await timed(process.execPath, [FULMAR, 'collect', 'run', 'isp', '--data', f.dataDir, '--config', f.configFile], { cwd: f.dataDir });
    if (r.code !== 0) problems.push(`collect run exited ${r.code}: ${r.stderr.slice(0, 500)} ${r.stdout.slice(0, 500)}`);
    const line = /^domainpop isp: collected (\d+), deleted (\d+), left (\d+)/m.exec(r.stdout);
    if (!line || Number(line[1]) !== MESSAGES || Number(line[2]) !== MESSAGES) problems.push(`collect run says: ${line?.[0] ?? r.stdout.slice(0, 300)}`);
    const delivered = r.stdout.match(/^ {2}\S+ \d+ bytes: delivered -> \S+ \(To\), \S+ \(Cc\)$/gm)?.length ?? 0;
    if (delivered !== MESSAGES) problems.push(`${delivered} "delivered -> To, Cc" lines, not ${MESSAGES}`);
    // Each user's INBOX holds one copy per message naming them.
    const store = await f.openStore();
    try {
      const want = expectedPerUser();
      for (let n = 0; n < USERS; n++) {
        const account = await store.directory.getAccount(user(n));
        const box = account ? await store.mail.getMailbox(account.id, 'INBOX') : null;
        const got = box ? (await store.mail.listMessages(box.id)).length : -1;
        if (got !== want[n]) problems.push(`${user(n)} has ${got} messages, not ${want[n]}`);
      }
      const pm = await store.directory.getAccount(`postmaster@${DOMAIN}`);
      const pmBox = pm ? await store.mail.getMailbox(pm.id, 'INBOX') : null;
      const pmCount = pmBox ? (await store.mail.listMessages(pmBox.id)).length : 0;
      if (pmCount !== 0) problems.push(`the postmaster got ${pmCount} messages`);
    } finally {
      await store.close();
    }
    if (d.count(CATCHALL) !== 0) problems.push(`Dovecot still holds ${d.count(CATCHALL)} messages`);
    const baseline = await timed(process.execPath, [FULMAR, 'collect', 'status', '--data', f.dataDir, '--config', f.configFile], { cwd: f.dataDir });
    return { seconds: r.seconds, peakRss: r.peakRss, baselineRss: baseline.peakRss, problems };
  } finally {
    if (args.keep) console.log(`  Fulmar data folder kept: ${f.dataDir}`);
    else f.cleanup();
  }
}

async function runFetchmail(d: DovecotPop3): Promise<Result & { version: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'fulmar-bench-fetchmail-'));
  const problems: string[] = [];
  try {
    const out = join(dir, 'out');
    mkdirSync(out);
    const deliver = join(dir, 'deliver.sh');
    // One file per message (bash's pid + microseconds: unique, no extra process), fsynced, then
    // fetchmail's recipient list logged (an O_APPEND write of one short line).
    writeFileSync(
      deliver,
      `f="${out}/m.$$.\${EPOCHREALTIME/./}"\ncat > "$f" && sync "$f" && echo "$*" >> "${dir}/recipients"\n`,
    );
    const mda = args.mda === 'fsync' ? `/bin/bash ${deliver} %T` : 'cat >/dev/null';
    const rc = join(dir, 'fetchmailrc');
    writeFileSync(
      rc,
      `set no bouncemail\nset no syslog\n` +
        `poll 127.0.0.1 port ${d.port} protocol pop3 no uidl no envelope no dns localdomains ${DOMAIN}\n` +
        `  user "${CATCHALL}" there with password "${PASSWORD}" is * here\n` +
        `  options fetchall no keep no rewrite sslproto ''\n` +
        `  mda "${mda}"\n`,
    );
    chmodSync(rc, 0o600);
    const version = /release ([\d.]+)/.exec(spawnSync('fetchmail', ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? '?';
    const env = { ...process.env, FETCHMAILHOME: dir, HOME: dir };
    const r = await timed('fetchmail', ['-f', rc, '-d0', '--nosyslog', '--pidfile', join(dir, 'fetchmail.pid')], { cwd: dir, env });
    // fetchmail exits 0 when it collected mail.
    if (r.code !== 0) problems.push(`fetchmail exited ${r.code}: ${r.stderr.slice(-800)}`);
    if (args.mda === 'fsync') {
      const files = readdirSync(out).length;
      if (files !== MESSAGES) problems.push(`${files} files written, not ${MESSAGES}`);
      let lines: string[] = [];
      try {
        lines = readFileSync(join(dir, 'recipients'), 'utf8').trimEnd().split('\n');
      } catch {
        // no log: counted below
      }
      if (lines.length !== MESSAGES) problems.push(`${lines.length} recipient lists logged, not ${MESSAGES}`);
      const got = new Array<number>(USERS).fill(0);
      for (const l of lines) {
        for (const a of l.split(/\s+/)) {
          const m = /^u(\d+)@bench\.test$/.exec(a);
          if (m) got[Number(m[1])]!++;
        }
      }
      const want = expectedPerUser();
      for (let n = 0; n < USERS; n++) if (got[n] !== want[n]) problems.push(`fetchmail named ${user(n)} ${got[n]} times, not ${want[n]}`);
    }
    if (d.count(CATCHALL) !== 0) problems.push(`Dovecot still holds ${d.count(CATCHALL)} messages`);
    return { seconds: r.seconds, peakRss: r.peakRss, problems, version };
  } finally {
    if (args.keep) console.log(`  fetchmail folder kept: ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const sizeText = SIZE >= 1024 ? `${(SIZE / 1024).toFixed(1)} KB` : `${SIZE} bytes`;
  console.log(
    `collect: ${MESSAGES} messages of ~${sizeText} in a Dovecot POP3 catch-all on 127.0.0.1 (plain POP3), each To one and Cc another of ${USERS} local users; ` +
      `${availableParallelism()} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} at the start`,
  );
  const d = await startDovecotPop3();
  let ok = true;
  try {
    d.addUser(CATCHALL, PASSWORD);
    const fillSeconds = fill(d);
    console.log(`  filled:    ${MESSAGES} messages in ${fillSeconds.toFixed(1)} s (maildir files written directly)`);

    const fu = await runFulmar(d);
    const fuRate = MESSAGES / fu.seconds;
    console.log(
      `  Fulmar:    ${MESSAGES} messages in ${fu.seconds.toFixed(2)} s = ${fuRate.toFixed(0)} messages/s, peak RSS ${mb(fu.peakRss)} ` +
        `(\`fulmar collect status\` alone: ${mb(fu.baselineRss)}) ` +
        '(`fulmar collect run`, spawn to exit; header-mode DomainPOP; each message committed to SQLite (WAL fsync) before its DELE, 2 INBOX copies)',
    );
    console.log(`             checks: ${fu.problems.length === 0 ? 'every message delivered once to each of its 2 recipients, Dovecot empty' : `${fu.problems.length} PROBLEMS: ${fu.problems.join('; ')}`}`);
    ok = fu.problems.length === 0;

    if (!args['skip-fetchmail']) {
      const refill = fill(d);
      console.log(`  refilled:  the same ${MESSAGES} messages in ${refill.toFixed(1)} s`);
      const fm = await runFetchmail(d);
      const fmRate = MESSAGES / fm.seconds;
      const mdaText =
        args.mda === 'fsync'
          ? 'MDA: a bash script per message writing it to its own file and fsyncing it (cat > FILE && sync FILE) and logging %T'
          : 'MDA: cat >/dev/null (nothing kept)';
      console.log(
        `  fetchmail: ${MESSAGES} messages in ${fm.seconds.toFixed(2)} s = ${fmRate.toFixed(0)} messages/s, peak RSS ${mb(fm.peakRss)} ` +
          `(fetchmail ${fm.version}, multidrop: no envelope, localdomains ${DOMAIN}, is * here, no keep, fetchall, plain; ${mdaText}; RSS of fetchmail alone)`,
      );
      console.log(`             checks: ${fm.problems.length === 0 ? (args.mda === 'fsync' ? 'one file per message, each logged with its 2 recipients, Dovecot empty' : 'Dovecot empty') : `${fm.problems.length} PROBLEMS: ${fm.problems.join('; ')}`}`);
      ok = ok && fm.problems.length === 0;
      console.log(
        `  ratio Fulmar/fetchmail: ${(fuRate / fmRate).toFixed(2)}x the messages/s, ${(fu.peakRss / Math.max(1, fm.peakRss)).toFixed(1)}x the peak RSS`,
      );
    }
  } finally {
    await d.stop();
  }
  process.exitCode = ok ? 0 : 1;
}

await main();
