/**
 * MultiPOP: one account's own remote mailboxes (two Dovecot POP3 accounts, dovecot-pop3.ts)
 * collected into its INBOX, driven through the commands: `collect multipop add|list|remove|
 * enable|disable`, the global switch `collect.multipop.enabled` (off: a plain `collect run`
 * leaves them alone, `collect run ADDRESS` collects them anyway), leave-on-server with a number
 * of days (the collector's clock moved by FULMAR_COLLECT_CLOCK_OFFSET, not by waiting), and the
 * Received line each collected message gets.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type DovecotPop3, startDovecotPop3 } from './dovecot-pop3.js';
import { FulmarProcess, readMailbox } from './harness.js';

const DOMAIN = 'example.test';
const BOB = `bob@${DOMAIN}`;
const CAROL = `carol@${DOMAIN}`;
const BOX1 = 'box1@isp.test';
const BOX2 = 'box2@mail.other.test';
const PW1 = 'first-secret';
const PW2 = 'second-secret';

let d: DovecotPop3;
let f: FulmarProcess;

before(async () => {
  d = await startDovecotPop3();
  f = await FulmarProcess.create();
  f.cli('domain', 'add', DOMAIN);
  f.cli('user', 'add', BOB, '--password', 'bob-password');
  f.cli('user', 'add', CAROL, '--password', 'carol-password');
  d.addUser(BOX1, PW1);
  d.addUser(BOX2, PW2);
});

after(async () => {
  f?.cleanup();
  await d?.stop();
});

/** A message in a remote mailbox, addressed to someone else (MultiPOP ignores the headers). */
function put(box: string, tag: string): string {
  const m =
    `From: Friend <friend@remote.test>\r\nTo: <${CAROL}>, <someone@elsewhere.test>\r\nSubject: ${tag}\r\n` +
    `Message-ID: <${tag}@remote.test>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nHello from ${box}.\r\n.dot line\r\nEND ${tag}\r\n`;
  d.deliver(box, m);
  return m;
}

const expected = new Map<string, { box: string; text: string }>();
function deliverRemote(box: string, ...tags: string[]): void {
  for (const tag of tags) expected.set(tag, { box, text: put(box, tag) });
}

/** Subjects in an account's INBOX (with repeats), and the texts. */
async function inbox(address: string): Promise<{ subjects: string[]; texts: string[] }> {
  const store = await f.openStore();
  try {
    const texts = await readMailbox(store, address);
    return { subjects: texts.map((t) => /^Subject: (.*)$/m.exec(t)?.[1]?.trim() ?? '(none)').sort(), texts };
  } finally {
    await store.close();
  }
}

/** bob's INBOX holds exactly `tags`, once each, whole, each with the Received line of its remote mailbox. */
async function assertBobHas(tags: string[], context: string): Promise<void> {
  const { subjects, texts } = await inbox(BOB);
  assert.deepEqual(subjects, [...tags].sort(), context);
  for (const t of texts) {
    const tag = /^Subject: (.*)$/m.exec(t)![1]!.trim();
    const { box, text } = expected.get(tag)!;
    assert.ok(t.endsWith(text), `${tag} is not stored whole (${context})`);
    const escaped = box.replace(/[.]/g, '\\.');
    assert.match(
      t,
      new RegExp(`^Received: from 127\\.0\\.0\\.1 \\(127\\.0\\.0\\.1 \\[127\\.0\\.0\\.1\\]\\)\\r\\n\\tby \\S+ \\(Fulmar MultiPOP bob@example\\.test/${escaped}@127\\.0\\.0\\.1\\) with POP3\\r\\n\\tid \\S+; `, 'm'),
      `${tag}: no MultiPOP Received line (${context}):\n${t.slice(0, 600)}`,
    );
  }
  // To: carol in the header: MultiPOP delivers to its account only.
  assert.deepEqual((await inbox(CAROL)).subjects, [], `carol got MultiPOP mail (${context})`);
}

/** The "<kind> <name>: collected N, deleted N, left N" line of one remote mailbox, or null. */
function summary(stdout: string, box: string): { collected: number; deleted: number; left: number } | null {
  const m = new RegExp(`^multipop ${BOB}/${box.replace(/[.]/g, '\\.')}@127\\.0\\.0\\.1: collected (\\d+), deleted (\\d+), left (\\d+) on the server`, 'm').exec(stdout);
  return m ? { collected: Number(m[1]), deleted: Number(m[2]), left: Number(m[3]) } : null;
}

function run(...args: string[]): { status: number; stdout: string; stderr: string } {
  return f.cliResult('collect', 'run', ...args);
}

function withClockOffset<T>(offset: string, action: () => T): T {
  process.env['FULMAR_COLLECT_CLOCK_OFFSET'] = offset;
  try {
    return action();
  } finally {
    delete process.env['FULMAR_COLLECT_CLOCK_OFFSET'];
  }
}

/** `multipop list` rows: ID, ACCOUNT, REMOTE MAILBOX, ENABLED. */
function listRows(...args: string[]): { header: string; rows: Array<{ id: string; account: string; remote: string; enabled: string }> } {
  const out = f.cli('collect', 'multipop', 'list', ...args);
  const [header = '', ...lines] = out.trimEnd().split('\n');
  return {
    header,
    rows: lines.map((l) => {
      const cells = l.split(/\s{2,}/);
      return { id: cells[0]!, account: cells[1]!, remote: cells[2]!, enabled: cells[cells.length - 1]! };
    }),
  };
}

test('MultiPOP: two remote mailboxes into one account, the global and per-account switches, leave-on-server for N days, list and remove', { timeout: 60_000 }, async () => {
  // --- add ---
  const missing = f.cliResult('collect', 'multipop', 'add', 'nobody@example.test', '--host', '127.0.0.1', '--port', String(d.port), '--user', BOX1, '--password', PW1);
  assert.notEqual(missing.status, 0, 'a MultiPOP mailbox for an account that does not exist');
  const add1 = f.cliResult('collect', 'multipop', 'add', BOB, '--host', '127.0.0.1', '--port', String(d.port), '--user', BOX1, '--password', PW1);
  assert.equal(add1.status, 0, add1.stderr);
  assert.match(add1.stderr, /MultiPOP is off/, 'adding while the switch is off says so');
  assert.doesNotMatch(add1.stdout + add1.stderr, new RegExp(PW1));
  const id1 = /^added MultiPOP mailbox (\d+) for bob@example\.test: /m.exec(add1.stdout)?.[1] ?? assert.fail(add1.stdout);
  const add2 = f.cli(
    'collect', 'multipop', 'add', BOB, '--host', '127.0.0.1', '--port', String(d.port), '--user', BOX2, '--password', PW2,
    '--leave-on-server', '--delete-after-days', '3',
  );
  const id2 = /^added MultiPOP mailbox (\d+) for bob@example\.test: .*leave-on-server 3d/m.exec(add2)?.[1] ?? assert.fail(add2);
  assert.notEqual(id1, id2);

  const all = listRows();
  assert.match(all.header, /^ID\s+ACCOUNT\s+REMOTE( MAILBOX)?\s+ENABLED$/);
  assert.deepEqual(
    all.rows.map((r) => [r.id, r.account, r.remote.split(',')[0], r.enabled]),
    [
      [id1, BOB, `${BOX1}@127.0.0.1:${d.port}`, 'yes'],
      [id2, BOB, `${BOX2}@127.0.0.1:${d.port}`, 'yes'],
    ],
    'listed by name',
  );
  assert.doesNotMatch(f.cli('collect', 'multipop', 'list'), new RegExp(`${PW1}|${PW2}`));
  assert.equal(listRows(BOB).rows.length, 2);
  const none = f.cliResult('collect', 'multipop', 'list', CAROL);
  assert.equal(none.stdout, '');
  assert.match(none.stderr, /no MultiPOP mailboxes/);

  // --- the global switch off: a plain run leaves them alone, a run for the account does not ---
  deliverRemote(BOX1, 'one-a', 'one-b', 'one-c');
  deliverRemote(BOX2, 'two-a', 'two-b');
  const off = run();
  assert.equal(off.status, 1, `${off.stdout}\n${off.stderr}`);
  assert.match(off.stderr, /collect\.multipop\.enabled/);
  assert.equal(d.count(BOX1), 3);
  assert.equal(d.count(BOX2), 2);
  await assertBobHas([], 'with MultiPOP off');

  const explicit = run(BOB);
  assert.equal(explicit.status, 0, `${explicit.stdout}\n${explicit.stderr}`);
  assert.deepEqual(summary(explicit.stdout, BOX1), { collected: 3, deleted: 3, left: 0 }, explicit.stdout);
  assert.deepEqual(summary(explicit.stdout, BOX2), { collected: 2, deleted: 0, left: 2 }, explicit.stdout);
  assert.equal(explicit.stdout.match(/^ {2}\S+ \d+ bytes: delivered -> bob@example\.test \(MultiPOP\)$/gm)?.length, 5, explicit.stdout);
  await assertBobHas(['one-a', 'one-b', 'one-c', 'two-a', 'two-b'], 'after collect run bob@example.test');
  assert.equal(d.count(BOX1), 0);
  assert.equal(d.count(BOX2), 2, 'leave-on-server: box2 keeps its mail');

  // --- the global switch on: a plain run collects them; box2's mail stays and is not collected twice ---
  f.cli('settings', 'set', 'collect.multipop.enabled', 'true');
  deliverRemote(BOX1, 'one-d');
  deliverRemote(BOX2, 'two-c');
  const on = run();
  assert.equal(on.status, 0, `${on.stdout}\n${on.stderr}`);
  assert.deepEqual(summary(on.stdout, BOX1), { collected: 1, deleted: 1, left: 0 }, on.stdout);
  assert.deepEqual(summary(on.stdout, BOX2), { collected: 1, deleted: 0, left: 3 }, on.stdout);
  await assertBobHas(['one-a', 'one-b', 'one-c', 'one-d', 'two-a', 'two-b', 'two-c'], 'with MultiPOP on');

  // --- leave on server for 3 days: kept at +2 days, deleted at +4 days, never collected again ---
  const plus2 = withClockOffset('2d', () => run());
  assert.equal(plus2.status, 0, `${plus2.stdout}\n${plus2.stderr}`);
  assert.deepEqual(summary(plus2.stdout, BOX2), { collected: 0, deleted: 0, left: 3 }, plus2.stdout);
  assert.equal(d.count(BOX2), 3);
  deliverRemote(BOX2, 'two-d');
  const plus4 = withClockOffset('4d', () => run());
  assert.equal(plus4.status, 0, `${plus4.stdout}\n${plus4.stderr}`);
  // two-a..c were first seen 4 days ago by this clock; two-d is new (first seen "now").
  assert.deepEqual(summary(plus4.stdout, BOX2), { collected: 1, deleted: 3, left: 1 }, plus4.stdout);
  assert.equal(d.count(BOX2), 1);
  await assertBobHas(['one-a', 'one-b', 'one-c', 'one-d', 'two-a', 'two-b', 'two-c', 'two-d'], 'after the clock moved');

  // --- disable / enable an account's mailboxes ---
  deliverRemote(BOX1, 'one-e');
  assert.match(f.cli('collect', 'multipop', 'disable', BOB), /MultiPOP disabled for bob@example\.test \(2 mailbox\(es\)\)/);
  assert.deepEqual(listRows(BOB).rows.map((r) => r.enabled), ['no', 'no']);
  const disabled = run();
  assert.equal(disabled.status, 1, 'no enabled source');
  assert.equal(summary(disabled.stdout, BOX1), null);
  const disabledByName = run(BOB);
  assert.equal(disabledByName.status, 1, 'a disabled mailbox is not run even by name');
  assert.equal(d.count(BOX1), 1);
  assert.match(f.cli('collect', 'status'), /^multipop\s+bob@example\.test\/box1@isp\.test@127\.0\.0\.1\s+no\s/m);
  assert.match(f.cli('collect', 'multipop', 'enable', BOB), /MultiPOP enabled for bob@example\.test/);
  assert.deepEqual(listRows(BOB).rows.map((r) => r.enabled), ['yes', 'yes']);
  const enabled = run();
  assert.equal(enabled.status, 0, `${enabled.stdout}\n${enabled.stderr}`);
  assert.deepEqual(summary(enabled.stdout, BOX1), { collected: 1, deleted: 1, left: 0 }, enabled.stdout);
  await assertBobHas(['one-a', 'one-b', 'one-c', 'one-d', 'one-e', 'two-a', 'two-b', 'two-c', 'two-d'], 'after enable');

  // --- remove ---
  const wrongOwner = f.cliResult('collect', 'multipop', 'remove', CAROL, id1);
  assert.notEqual(wrongOwner.status, 0, 'carol removed bob\'s mailbox');
  assert.match(f.cli('collect', 'multipop', 'remove', BOB, id1), new RegExp(`removed MultiPOP mailbox ${id1} of bob@example\\.test`));
  assert.deepEqual(listRows().rows.map((r) => r.id), [id2]);
  deliverRemote(BOX1, 'one-f');
  const afterRemove = run();
  assert.equal(afterRemove.status, 0, `${afterRemove.stdout}\n${afterRemove.stderr}`);
  assert.equal(summary(afterRemove.stdout, BOX1), null, afterRemove.stdout);
  assert.deepEqual(summary(afterRemove.stdout, BOX2), { collected: 0, deleted: 0, left: 1 }, afterRemove.stdout);
  assert.equal(d.count(BOX1), 1, 'a removed mailbox is collected');
  await assertBobHas(['one-a', 'one-b', 'one-c', 'one-d', 'one-e', 'two-a', 'two-b', 'two-c', 'two-d'], 'after remove');
  const status = f.cli('collect', 'status');
  assert.doesNotMatch(status, /box1@isp\.test/, status);
  assert.match(status, /^multipop\s+bob@example\.test\/box2@mail\.other\.test@127\.0\.0\.1\s+yes\s+\S+Z\s+\S+Z\s+0\s+4\s*$/m, status);
});
