/**
 * A throwaway Dovecot (Debian's dovecot-imapd) for the side-by-side of bench/imap.ts: its own
 * config folder, a high port on 127.0.0.1 (never 143/993), a passwd-file with the accounts the
 * bench logs in to, and maildirs holding the same messages as Fulmar's (bench/imap-corpus.ts,
 * the same flags and internal dates). Each message is written once and hard-linked into every
 * maildir (as Dovecot's LDA does for many recipients), so filling 310,000 messages takes seconds.
 *
 *   node --import tsx bench/imap-dovecot.ts start --dir /tmp/bench-dovecot --port 14350 [--clients 20 --messages 10000 --idle-messages 10000 --big 100000]
 *   ulimit -n 20000; node --import tsx bench/imap.ts --target 127.0.0.1:14350 --server-pid $(cat /tmp/bench-dovecot/run/master.pid)
 *   node --import tsx bench/imap-dovecot.ts stop --dir /tmp/bench-dovecot
 *
 * `start` on a folder that was filled before reuses its maildirs (Dovecot's indexes included) and
 * only starts Dovecot; `--fresh` refills. Limits are raised for 5,000 IDLE sessions (processes,
 * clients, connections per user and IP); everything else is Debian's default. Run it from a
 * shell with `ulimit -n 20000`.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, linkSync, mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { localPrefix } from '../src/delivery/local.js';
import { dateOf, flagsOf, messageOf } from './imap-corpus.js';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    dir: { type: 'string', default: '/tmp/fulmar-bench-dovecot' },
    port: { type: 'string', default: '14350' },
    clients: { type: 'string', default: '20' },
    messages: { type: 'string', default: '10000' },
    'idle-messages': { type: 'string' },
    big: { type: 'string', default: '100000' },
    user: { type: 'string', default: 'u%d@bench.test' },
    pass: { type: 'string', default: 'bench-password' },
    'idle-user': { type: 'string', default: 'idle@bench.test' },
    'big-user': { type: 'string', default: 'big@bench.test' },
    fresh: { type: 'boolean', default: false },
    distinct: { type: 'boolean', default: false },
  },
});

const DIR = args.dir;
const PORT = Number(args.port);
const CONF = join(DIR, 'dovecot.conf');
const UID = 65534; // nobody / nogroup, as Debian's default_internal_user
if (PORT === 143 || PORT === 993 || PORT < 1024) throw new Error('use a high port, never 143 or 993');

function dovecot(...extra: string[]): { status: number | null; out: string } {
  // Starting: the daemon keeps the pipes open, so output goes to a file rather than to us.
  if (extra.length === 0) {
    const r = spawnSync('sh', ['-c', `dovecot -c '${CONF}' >'${DIR}/start.out' 2>&1`], { stdio: 'ignore' });
    return { status: r.status, out: existsSync(join(DIR, 'start.out')) ? readFileSync(join(DIR, 'start.out'), 'utf8') : '' };
  }
  const r = spawnSync('dovecot', ['-c', CONF, ...extra], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function config(): string {
  return `# Throwaway Dovecot for bench/imap.ts (written by bench/imap-dovecot.ts)
protocols = imap
listen = 127.0.0.1
base_dir = ${DIR}/run
state_dir = ${DIR}/state
log_path = ${DIR}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = nobody
default_internal_user = nobody
default_internal_group = nogroup
passdb {
  driver = passwd-file
  args = ${DIR}/passwd
}
userdb {
  driver = passwd-file
  args = ${DIR}/passwd
}
mail_location = maildir:~/Maildir
# Room for 5,000 IDLE sessions of one user from a few addresses.
default_process_limit = 10000
default_client_limit = 20000
protocol imap {
  mail_max_userip_connections = 20000
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${PORT}
  }
  inet_listener imaps {
    port = 0
  }
  chroot =
}
service imap {
  process_limit = 10000
}
service anvil {
  chroot =
  client_limit = 25000
}
service stats {
  unix_listener stats-writer {
    mode = 0666
  }
}
`;
}

function fill(): void {
  const clients = Number(args.clients);
  const messages = Number(args.messages);
  const idleMessages = Number(args['idle-messages'] ?? messages);
  const big = Number(args.big);
  const accounts: Array<[string, number]> = [
    ...Array.from({ length: clients }, (_, k) => [args.user.replace('%d', String(k)), messages] as [string, number]),
    [args['idle-user'], idleMessages],
    [args['big-user'], big],
  ];
  const distinct = Math.max(...accounts.map(([, n]) => n));
  const t0 = performance.now();
  rmSync(join(DIR, 'mail'), { recursive: true, force: true });
  rmSync(join(DIR, 'corpus'), { recursive: true, force: true });
  mkdirSync(join(DIR, 'corpus'), { recursive: true });
  const passwd: string[] = [];
  for (const [user] of accounts) {
    const home = join(DIR, 'mail', user);
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(home, 'Maildir', sub), { recursive: true });
    passwd.push(`${user}:{PLAIN}${args.pass}:${UID}:${UID}::${home}::`);
  }
  writeFileSync(join(DIR, 'passwd'), `${passwd.join('\n')}\n`);
  const prefix = (user: string): Buffer => localPrefix({ returnPath: 'sender@example.com', deliveredTo: user, rcptTo: user });
  const letters = (i: number, count: number): string => {
    const f = flagsOf(i, count);
    return [f.includes('\\Flagged') ? 'F' : '', f.includes('\\Answered') ? 'R' : '', f.includes('\\Seen') ? 'S' : ''].join('');
  };
  const nameOf = (i: number, size: number): string => `${Math.floor(dateOf(i).getTime() / 1000)}.M${i}P1.bench,S=${size}`;
  if (args.distinct) {
    // Every account its own copy of each message (what --distinct stores in Fulmar).
    accounts.forEach(([user, count], a) => {
      const cur = join(DIR, 'mail', user, 'Maildir', 'cur');
      for (let i = 0; i < count; i++) {
        const bytes = Buffer.concat([prefix(user), messageOf(i, user, a + 1)]);
        const path = join(cur, `${nameOf(i, bytes.length)}:2,${letters(i, count)}`);
        writeFileSync(path, bytes);
        utimesSync(path, dateOf(i), dateOf(i));
      }
    });
  } else {
    const names: string[] = [];
    for (let i = 0; i < distinct; i++) {
      // What Fulmar stores is the per-recipient prefix then the message; same bytes here (one recipient's prefix).
      const bytes = Buffer.concat([prefix('user@bench.test'), messageOf(i)]);
      const path = join(DIR, 'corpus', String(i));
      writeFileSync(path, bytes);
      utimesSync(path, dateOf(i), dateOf(i));
      chownSync(path, UID, UID);
      names.push(nameOf(i, bytes.length));
    }
    for (const [user, count] of accounts) {
      const cur = join(DIR, 'mail', user, 'Maildir', 'cur');
      for (let i = 0; i < count; i++) linkSync(join(DIR, 'corpus', String(i)), join(cur, `${names[i]}:2,${letters(i, count)}`));
    }
  }
  spawnSync('chown', ['-R', `${UID}:${UID}`, join(DIR, 'mail')]);
  writeFileSync(join(DIR, 'filled.json'), JSON.stringify({ clients, messages, idleMessages, big, distinct: args.distinct }));
  console.log(`filled ${accounts.length} maildirs (${accounts.reduce((a, [, n]) => a + n, 0).toLocaleString('en')} messages, ${args.distinct ? 'every one its own file' : `${distinct.toLocaleString('en')} distinct files, hard-linked`}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

const command = positionals[0];
if (command === 'start') {
  mkdirSync(DIR, { recursive: true });
  const want = JSON.stringify({
    clients: Number(args.clients),
    messages: Number(args.messages),
    idleMessages: Number(args['idle-messages'] ?? args.messages),
    big: Number(args.big),
    distinct: args.distinct,
  });
  const have = existsSync(join(DIR, 'filled.json')) ? readFileSync(join(DIR, 'filled.json'), 'utf8') : null;
  if (args.fresh || have !== want) fill();
  else console.log(`reusing the maildirs in ${DIR} (${have})`);
  writeFileSync(CONF, config());
  const r = dovecot();
  if (r.status !== 0) throw new Error(`dovecot did not start: ${r.out}`);
  const pidFile = join(DIR, 'run', 'master.pid');
  for (let i = 0; i < 50 && !existsSync(pidFile); i++) spawnSync('sleep', ['0.1']);
  const pid = readFileSync(pidFile, 'utf8').trim();
  console.log(`dovecot ${dovecot('--version').out.trim()} running: pid ${pid}, 127.0.0.1:${PORT}, config ${CONF}`);
  console.log(`  node --import tsx bench/imap.ts --target 127.0.0.1:${PORT} --server-pid ${pid} --clients ${args.clients} --messages ${args.messages} --big ${args.big}`);
  console.log(`  node --import tsx bench/imap-dovecot.ts stop --dir ${DIR}`);
} else if (command === 'stop') {
  const r = dovecot('stop');
  console.log(r.status === 0 ? 'dovecot stopped' : `dovecot stop: ${r.out.trim()}`);
} else {
  console.error('usage: bench/imap-dovecot.ts start|stop --dir DIR [--port P] [--clients N --messages M --idle-messages K --big B] [--fresh]');
  process.exitCode = 2;
}
