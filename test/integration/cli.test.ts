/**
 * The `fulmar` command as an administrator uses it: domains, users, aliases and settings, the
 * errors it prints, its help, and the running server seeing each change at once (no restart).
 * Also `fulmar start --port-offset N` with a config that names no ports.
 *
 * One server for the file; each test its own domains and accounts. Independent admin commands
 * run in parallel (each costs a Node start-up).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FULMAR, FulmarProcess } from './harness.js';
import { codes, SmtpWire, unique } from './smtp-wire.js';

let f: FulmarProcess;

before(async () => {
  f = await FulmarProcess.create();
  await f.start();
});

after(async () => {
  const code = await f.stop();
  f.cleanup();
  assert.equal(code, 0, 'the server stops cleanly on SIGTERM');
});

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs `fulmar ARGS` (without --data/--config) asynchronously. */
function run(args: string[], cwd = f.dataDir): Promise<Run> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [FULMAR, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => res({ status: code ?? -1, stdout, stderr }));
  });
}

/** Runs an admin command against this file's server (its data folder and config). */
function fulmar(...args: string[]): Promise<Run> {
  return run([...args, '--data', f.dataDir, '--config', f.configFile]);
}

/** The command must succeed; returns its stdout. */
async function ok(...args: string[]): Promise<string> {
  const r = await fulmar(...args);
  assert.equal(r.status, 0, `fulmar ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** The command must fail with exit status != 0 and exactly one line on stderr, matching `pattern`. */
async function fails(pattern: RegExp, ...args: string[]): Promise<string> {
  const r = await fulmar(...args);
  assert.notEqual(r.status, 0, `fulmar ${args.join(' ')} should fail; stdout: ${r.stdout}`);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^fulmar: /);
  assert.match(lines[0]!, pattern);
  assert.equal(r.stdout, '', 'nothing on stdout');
  return lines[0]!;
}

/** Rows of a printed table (header first), cells split on runs of 2+ spaces. */
function table(stdout: string): string[][] {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.trim().split(/\s{2,}/));
}

async function smtp(): Promise<SmtpWire> {
  const w = await SmtpWire.greeted(f.ports.smtp);
  await w.ehlo();
  return w;
}

test('fulmar --help and fulmar user add --help explain themselves', async () => {
  const [top, userAdd, settingsHelp] = await Promise.all([run(['--help']), run(['user', 'add', '--help']), run(['settings', '--help'])]);
  assert.equal(top.status, 0, top.stderr);
  for (const word of ['start', 'domain', 'user', 'alias', 'settings', '--port-offset', '--data', '--config']) {
    assert.ok(top.stdout.includes(word), `fulmar --help mentions ${word}:\n${top.stdout}`);
  }
  assert.match(top.stdout, /fulmar user add \S+@\S+ --password \S+ --quota \S+/, 'shows an example');
  assert.equal(userAdd.status, 0, userAdd.stderr);
  assert.match(userAdd.stdout, /^Usage: fulmar user add \[options\] <address>/);
  for (const word of ['--password', '--quota', '--data', '--config', 'domain must']) {
    assert.ok(userAdd.stdout.includes(word), `fulmar user add --help mentions ${word}:\n${userAdd.stdout}`);
  }
  assert.equal(settingsHelp.status, 0);
  for (const word of ['set', 'get', 'list', 'unset']) assert.match(settingsHelp.stdout, new RegExp(`\\b${word}\\b`));
});

test('domain add, list, set max-message-size, remove', async () => {
  const [d1, d2] = [`${unique('dom')}.test`, `${unique('dom')}.test`];
  const added = await Promise.all([ok('domain', 'add', d1), ok('domain', 'add', d2.toUpperCase())]);
  assert.deepEqual(added, [`added domain ${d1}\n`, `added domain ${d2}\n`], 'names are lower-cased');
  assert.equal(await ok('domain', 'set', d1, 'max-message-size', '10MB'), `${d1}: max-message-size 10MB\n`);
  const [list] = await Promise.all([
    ok('domain', 'list'),
    fails(/already exists/, 'domain', 'add', d1),
    fails(/max-message-size takes a size such as .*got "ten"/, 'domain', 'set', d1, 'max-message-size', 'ten'),
    fails(/unknown domain setting "colour"/, 'domain', 'set', d1, 'colour', 'blue'),
  ]);
  const rows = table(list);
  assert.deepEqual(rows[0], ['DOMAIN', 'MAX-MESSAGE-SIZE']);
  assert.deepEqual(rows.find((r) => r[0] === d1), [d1, '10MB']);
  assert.deepEqual(rows.find((r) => r[0] === d2), [d2, '-']);
  const [unset, removed] = await Promise.all([ok('domain', 'set', d1, 'max-message-size', 'none'), ok('domain', 'remove', d2)]);
  assert.equal(unset, `${d1}: max-message-size none (the global limit applies)\n`);
  assert.equal(removed, `removed domain ${d2}\n`);
  const [after] = await Promise.all([ok('domain', 'list'), fails(new RegExp(`domain ${d2} does not exist`), 'domain', 'remove', d2)]);
  assert.deepEqual(table(after).find((r) => r[0] === d1), [d1, '-']);
  assert.equal(table(after).find((r) => r[0] === d2), undefined);
});

test('user add with --quota, list, passwd, remove; errors for an unknown domain, a duplicate, a bad quota', async () => {
  const d = `${unique('users')}.test`;
  await ok('domain', 'add', d);
  const [u1, u2] = [`ann@${d}`, `bob@${d}`];
  const added = await Promise.all([ok('user', 'add', u1, '--password', 'pw1', '--quota', '512KB'), ok('user', 'add', u2, '--password', 'pw2')]);
  assert.deepEqual(added, [`added user ${u1} (quota 512KB)\n`, `added user ${u2}\n`]);
  const [list, usage] = await Promise.all([
    ok('user', 'list', d),
    fulmar('user', 'add', `dan@${d}`),
    fails(new RegExp(`account ${u1} already exists`), 'user', 'add', u1, '--password', 'x'),
    fails(/nowhere-\S+\.test is not a local domain; add it first with: fulmar domain add nowhere-\S+\.test/, 'user', 'add', `joe@nowhere-${unique('n')}.test`, '--password', 'x'),
    fails(/--quota takes a size .*got "lots"/, 'user', 'add', `cat@${d}`, '--password', 'x', '--quota', 'lots'),
  ]);
  // A usage error from the option parser: the error on the first line, then a pointer to --help.
  assert.notEqual(usage.status, 0);
  assert.equal(usage.stdout, '');
  assert.deepEqual(usage.stderr.trim().split('\n'), ["fulmar: required option '--password <pw>' not specified", '(run with --help for usage)']);
  assert.deepEqual(table(list), [
    ['ADDRESS', 'QUOTA', 'USED'],
    [u1, '512KB', '0'],
    [u2, 'unlimited', '0'],
  ]);
  const [changed, removed] = await Promise.all([ok('user', 'passwd', u1, '--password', 'new-pw'), ok('user', 'remove', u2)]);
  assert.equal(changed, `password changed for ${u1}\n`);
  assert.equal(removed, `removed user ${u2}\n`);
  const [after] = await Promise.all([
    ok('user', 'list', d),
    fails(new RegExp(`account ${u2} does not exist`), 'user', 'remove', u2),
    fails(new RegExp(`no account ${u2}`), 'user', 'passwd', u2, '--password', 'x'),
  ]);
  assert.deepEqual(table(after).map((r) => r[0]), ['ADDRESS', u1]);
});

test('alias add (local and remote targets), catch-all @domain, list, remove', async () => {
  const d = `${unique('alias')}.test`;
  await ok('domain', 'add', d);
  const [, a1, a2] = await Promise.all([
    ok('user', 'add', `joe@${d}`, '--password', 'pw'),
    ok('alias', 'add', `sales@${d}`, `joe@${d}`, 'ann@elsewhere.example'),
    ok('alias', 'add', `@${d}`, `joe@${d}`),
  ]);
  assert.equal(a1, `sales@${d} -> joe@${d}, ann@elsewhere.example\n`);
  assert.equal(a2, `@${d} -> joe@${d}\n`);
  const rows = table(await ok('alias', 'list'));
  assert.deepEqual(rows[0], ['ALIAS', 'TARGETS']);
  assert.deepEqual(rows.find((r) => r[0] === `sales@${d}`), [`sales@${d}`, `joe@${d}, ann@elsewhere.example`]);
  assert.deepEqual(rows.find((r) => r[0] === `@${d}`), [`@${d}`, `joe@${d}`]);

  // The server sees them at once: the alias and any address of the domain are accepted.
  let w = await smtp();
  try {
    assert.equal(codes(await w.cmd('MAIL FROM:<x@far.example>')), '250 2.1.0');
    assert.equal(codes(await w.cmd(`RCPT TO:<sales@${d}>`)), '250 2.1.5');
    assert.equal(codes(await w.cmd(`RCPT TO:<whoever@${d}>`)), '250 2.1.5');
  } finally {
    w.close();
  }
  assert.equal(await ok('alias', 'remove', `@${d}`), `removed alias @${d}\n`);
  const [list] = await Promise.all([ok('alias', 'list'), fails(/not a local domain/, 'alias', 'add', `x@nowhere-${unique('n')}.test`, `joe@${d}`)]);
  assert.equal(table(list).find((r) => r[0] === `@${d}`), undefined);
  w = await smtp();
  try {
    assert.equal(codes(await w.cmd('MAIL FROM:<x@far.example>')), '250 2.1.0');
    assert.equal(codes(await w.cmd(`RCPT TO:<whoever@${d}>`)), '550 5.1.1', 'catch-all removed');
    assert.equal(codes(await w.cmd(`RCPT TO:<sales@${d}>`)), '250 2.1.5');
  } finally {
    w.close();
  }
});

test('settings set/get/list/unset with sizes 12345, 512KB, 10MB, 1GB; errors for unknown keys and bad values', async () => {
  const key = 'smtp.max_message_size';
  try {
    // Refusals (in parallel): each one clear line; none of them changes anything.
    await Promise.all([
      fails(/unknown setting "smtp\.no_such_thing"; `fulmar settings list` shows them all/, 'settings', 'set', 'smtp.no_such_thing', '1'),
      fails(/unknown setting "smtp\.no_such_thing"/, 'settings', 'get', 'smtp.no_such_thing'),
      fails(/smtp\.max_message_size takes a size such as 12345, 512KB, 10MB or 1GB .*got "12 apples"/, 'settings', 'set', key, '12 apples'),
      fails(/smtp\.max_recipients takes a whole number/, 'settings', 'set', 'smtp.max_recipients', 'many'),
      fails(/smtp\.idle_timeout must be at least 1s/, 'settings', 'set', 'smtp.idle_timeout', '500ms'),
      fails(/smtp\.bare_newline takes one of normalize, reject/, 'settings', 'set', 'smtp.bare_newline', 'ignore'),
      ok('settings', 'set', 'smtp.idle_timeout', '90s'),
    ]);
    for (const [text, shown] of [
      ['12345', '12345'],
      ['512KB', '512KB'],
      ['10MB', '10MB'],
      ['1GB', '1GB'],
    ] as const) {
      assert.equal(await ok('settings', 'set', key, text), `${key} = ${shown}\n`);
      assert.equal(await ok('settings', 'get', key), `${shown}\n`, `${text} reads back`);
    }
    const [list, idle] = await Promise.all([ok('settings', 'list'), ok('settings', 'get', 'smtp.idle_timeout')]);
    const rows = table(list);
    assert.deepEqual(rows[0], ['KEY', 'VALUE', 'SOURCE']);
    assert.deepEqual(rows.find((r) => r[0] === key), [key, '1GB', 'set']);
    assert.deepEqual(rows.find((r) => r[0] === 'smtp.max_recipients'), ['smtp.max_recipients', '100', 'default']);
    assert.deepEqual(rows.find((r) => r[0] === 'smtp.bare_newline'), ['smtp.bare_newline', 'normalize', 'default']);
    // A duration reads back as written.
    assert.equal(idle, '90s\n');
  } finally {
    await Promise.all([ok('settings', 'unset', key), ok('settings', 'unset', 'smtp.idle_timeout')]);
  }
  const [get, list] = await Promise.all([ok('settings', 'get', key), ok('settings', 'list')]);
  assert.equal(get, '25MB\n', 'unset returns to the default');
  assert.deepEqual(table(list).find((r) => r[0] === key), [key, '25MB', 'default']);
});

test('a warning when smtp.drop_connection_size is below twice smtp.max_message_size', async () => {
  try {
    const low = await fulmar('settings', 'set', 'smtp.drop_connection_size', '30MB');
    assert.equal(low.status, 0, 'a warning, not an error');
    assert.equal(low.stdout, 'smtp.drop_connection_size = 30MB\n');
    assert.match(low.stderr, /^warning: smtp\.drop_connection_size \(30MB\) is below twice smtp\.max_message_size \(25MB\)\..*retry/);
    const high = await fulmar('settings', 'set', 'smtp.drop_connection_size', '50MB');
    assert.equal(high.status, 0);
    assert.equal(high.stderr, '', 'no warning at twice the limit');
    // Raising the message limit past half the drop size warns too.
    const raised = await fulmar('settings', 'set', 'smtp.max_message_size', '30MB');
    assert.equal(raised.status, 0);
    assert.match(raised.stderr, /^warning: smtp\.drop_connection_size \(50MB\) is below twice smtp\.max_message_size \(30MB\)/);
  } finally {
    await Promise.all([ok('settings', 'unset', 'smtp.drop_connection_size'), ok('settings', 'unset', 'smtp.max_message_size')]);
  }
});

test('the running server sees CLI changes at once: new user, new password, removed user, lowered SIZE, domain limit', async () => {
  const d = `${unique('live')}.test`;
  await ok('domain', 'add', d);
  const user = `live@${d}`;
  let w = await smtp();
  try {
    assert.equal(codes(await w.cmd('MAIL FROM:<x@far.example> SIZE=20000')), '250 2.1.0');
    assert.equal(codes(await w.cmd(`RCPT TO:<${user}>`)), '550 5.1.1', 'not there yet');
    await ok('user', 'add', user, '--password', 'first');
    // Same session, no restart: the new account is found.
    assert.equal(codes(await w.cmd(`RCPT TO:<${user}>`)), '250 2.1.5');
    assert.equal(codes(await w.cmd('RSET')), '250 2.0.0');
    await ok('domain', 'set', d, 'max-message-size', '10KB');
    assert.equal(codes(await w.cmd('MAIL FROM:<x@far.example> SIZE=20000')), '250 2.1.0');
    assert.equal(codes(await w.cmd(`RCPT TO:<${user}>`)), '552 5.3.4', 'the domain limit applies at once');
  } finally {
    w.close();
  }

  try {
    await ok('settings', 'set', 'smtp.max_message_size', '1MB');
    w = await smtp();
    const ehlo = await w.cmd('EHLO again.example');
    assert.ok(ehlo.lines.includes(`SIZE ${1024 * 1024}`), `new session advertises the new SIZE:\n${ehlo.raw}`);
    assert.equal(codes(await w.cmd(`MAIL FROM:<x@far.example> SIZE=${1024 * 1024 + 1}`)), '552 5.3.4');
    w.close();
  } finally {
    await ok('settings', 'unset', 'smtp.max_message_size');
  }

  // AUTH over implicit TLS with the password, then with the changed one.
  const login = async (password: string): Promise<string> => {
    const s = await SmtpWire.greeted(f.ports.smtps, { tls: true });
    try {
      await s.ehlo();
      return codes(await s.authPlain(user, password));
    } finally {
      s.close();
    }
  };
  assert.equal(await login('first'), '235 2.7.0');
  await ok('user', 'passwd', user, '--password', 'second');
  assert.equal(await login('first'), '535 5.7.8');
  assert.equal(await login('second'), '235 2.7.0');

  await ok('user', 'remove', user);
  w = await smtp();
  try {
    assert.equal(codes(await w.cmd('MAIL FROM:<x@far.example>')), '250 2.1.0');
    assert.equal(codes(await w.cmd(`RCPT TO:<${user}>`)), '550 5.1.1', 'a removed user is unknown at once');
  } finally {
    w.close();
  }
});

async function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

test('fulmar start --port-offset N with a config without [ports]: SMTP on 25+N, submission on 587+N, SMTPS on 465+N, POP3 on 110+N, POP3S on 995+N, IMAP on 143+N, IMAPS on 993+N', async () => {
  let offset = 0;
  for (let i = 0; i < 50 && offset === 0; i++) {
    const n = 20000 + Math.floor(Math.random() * 30000);
    const ports = [25, 587, 465, 110, 995, 143, 993].map((p) => p + n);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) offset = n;
  }
  assert.ok(offset > 0, 'found free ports');
  const dir = mkdtempSync(join(tmpdir(), 'fulmar-offset-'));
  const config = join(dir, 'fulmar.toml');
  writeFileSync(config, 'listen = "127.0.0.1"\n');
  const child = spawn(
    process.execPath,
    [FULMAR, 'start', '--data', join(dir, 'data'), '--config', config, '--port-offset', String(offset), '--hostname', 'offset.example'],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const log: string[] = [];
  try {
    await new Promise<void>((res, rej) => {
      let buf = '';
      const timer = setTimeout(() => rej(new Error(`not started:\n${log.join('\n')}`)), 20_000);
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          log.push(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
          if (log.at(-1)!.includes('"event":"app.started"')) {
            clearTimeout(timer);
            res();
          }
        }
      });
      child.stderr.on('data', (d: Buffer) => log.push(d.toString()));
      child.once('exit', (code) => {
        clearTimeout(timer);
        rej(new Error(`exited with ${code}:\n${log.join('\n')}`));
      });
    });
    const listening = log
      .filter((l) => l.includes('"event":"app.listening"'))
      .map((l) => JSON.parse(l) as { service: string; port: number })
      .map((e) => [e.service, e.port]);
    assert.deepEqual(
      listening.sort(),
      [
        ['smtp', 25 + offset],
        ['smtps', 465 + offset],
        ['submission', 587 + offset],
        ['pop3', 110 + offset],
        ['pop3s', 995 + offset],
        ['imap', 143 + offset],
        ['imaps', 993 + offset],
      ].sort(),
    );
    const mx = await SmtpWire.open(25 + offset);
    const greeting = await mx.read();
    assert.equal(greeting.code, 220);
    assert.match(greeting.lines[0]!, /^offset\.example /);
    assert.equal(codes(await mx.cmd('QUIT')), '221 2.0.0');
    mx.close();
    const sub = await SmtpWire.greeted(587 + offset);
    sub.close();
    const tls = await SmtpWire.greeted(465 + offset, { tls: true });
    tls.close();
  } finally {
    const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    child.kill('SIGTERM');
    const code = await exited;
    rmSync(dir, { recursive: true, force: true });
    assert.equal(code, 0, 'stops cleanly');
  }
});
