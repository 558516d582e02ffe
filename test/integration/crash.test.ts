/**
 * Crash safety of SMTP reception: several connections send messages (DATA with pipelined
 * MAIL/RCPT/DATA, and BDAT with the body pipelined behind the command) while the server is
 * killed with SIGKILL at a random moment. After each restart on the same data folder:
 *
 * - every message that got a 250 after its last byte is in the INBOX of each of its
 *   recipients exactly once, whole (its body checksum matches);
 * - a message that got no reply is either absent for all its recipients or present and whole
 *   for all of them (one commit), never partial, never twice;
 * - the store is consistent: each account's used_bytes is the sum of its messages' sizes, each
 *   blob_refs count equals the rows that reference the hash, every referenced blob file exists
 *   with the recorded size and the SHA-256 its name says, and SQLite's integrity check passes.
 *
 * CRASH_SEED=<n> replays the same messages and kill delays (the timing of the kill still varies).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { FulmarProcess } from './harness.js';

const DOMAIN = 'crash.test';
const USERS = ['ann', 'bob', 'cid', 'dee'].map((u) => `${u}@${DOMAIN}`);
const CONNECTIONS = 6;
const ROUNDS = 8;
const KILL_MIN_MS = 50;
const KILL_MAX_MS = 500;
/** One message in this many is larger than the blob writer's in-memory buffer (256 KB). */
const LARGE_EVERY = 12;

const SEED = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** mulberry32: a small seeded PRNG, so a failing run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(SEED);
const between = (min: number, max: number): number => min + Math.floor(random() * (max - min + 1));

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

// ---------------------------------------------------------------------------------------------
// A minimal SMTP client over a raw socket: replies are read strictly in order.

interface Reply {
  code: number;
  text: string;
}

class SmtpConnection {
  private buffer = '';
  private lines: string[] = [];
  private readonly replies: Reply[] = [];
  private waiters: Array<{ resolve(r: Reply): void; reject(e: Error): void }> = [];
  private failure: Error | null = null;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  static open(port: number): Promise<SmtpConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new SmtpConnection(socket));
      });
    });
  }

  get broken(): boolean {
    return this.failure !== null;
  }

  private onData(d: Buffer): void {
    this.buffer += d.toString('latin1');
    let nl: number;
    while ((nl = this.buffer.indexOf('\r\n')) >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 2);
      this.lines.push(line.slice(4));
      if (line[3] === '-') continue;
      const reply = { code: Number(line.slice(0, 3)), text: this.lines.join('\n') };
      this.lines = [];
      const waiter = this.waiters.shift();
      if (waiter) waiter.resolve(reply);
      else this.replies.push(reply);
    }
  }

  private fail(e: Error): void {
    this.failure ??= e;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(e);
  }

  /** The next reply; replies that arrived before the connection broke are still returned. */
  read(): Promise<Reply> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  write(data: string | Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.socket.write(data, (err) => (err ? reject(err) : resolve()));
    });
  }

  destroy(): void {
    this.socket.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Messages: a unique id in Subject and X-Crash-Id, a body whose last line is the SHA-256 of the
// lines before it, some lines starting with a dot (dot-stuffing), some bodies over 256 KB.

interface SentMessage {
  id: string;
  recipients: string[];
  /** SHA-256 of the whole body (after the blank line) as the server must store it. */
  bodyHash: string;
  /** 'acked': 250 after the last byte; 'unknown': no final reply; 'refused': any other reply. */
  status: 'acked' | 'unknown' | 'refused';
  reply?: string;
}

const CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/ ';
/** Random text that lines are cut from (cheaper than drawing every character). */
const POOL = Array.from({ length: 64 * 1024 }, () => CHARS[Math.floor(random() * CHARS.length)]).join('');

function makeBody(targetBytes: number): string {
  const lines: string[] = [];
  let bytes = 0;
  while (bytes < targetBytes) {
    const len = between(20, 76);
    const start = between(0, POOL.length - len);
    // Some lines start with a dot: DATA must dot-stuff them and the server must unstuff them.
    const line = (random() < 0.05 ? '.' : '') + POOL.slice(start, start + len);
    lines.push(line);
    bytes += line.length + 2;
  }
  const text = lines.join('\r\n') + '\r\n';
  return `${text}X-Body-SHA256: ${sha256(text)}\r\n`;
}

function makeMessage(id: string, recipients: string[]): { raw: string; bodyHash: string } {
  const size = random() < 1 / LARGE_EVERY ? between(300_000, 700_000) : between(300, 8000);
  const body = makeBody(size);
  const header =
    `From: <sender@elsewhere.example>\r\n` +
    `To: ${recipients.map((r) => `<${r}>`).join(', ')}\r\n` +
    `Subject: crash-test ${id}\r\n` +
    `Message-ID: <${id}@elsewhere.example>\r\n` +
    `X-Crash-Id: ${id}\r\n` +
    `\r\n`;
  return { raw: header + body, bodyHash: sha256(body) };
}

/** DATA's transparency (rfc5321 4.5.2) and the end-of-data line. */
function dotStuff(raw: string): string {
  return raw.replace(/^\./gm, '..') + '.\r\n';
}

function pickRecipients(): string[] {
  const n = random() < 0.7 ? 1 : between(2, 3);
  const shuffled = [...USERS].sort(() => random() - 0.5);
  return shuffled.slice(0, n);
}

/**
 * One connection's load: messages back to back until the connection breaks or `stop()` says
 * so. Even connections use DATA, odd ones BDAT (large bodies in two chunks).
 */
async function runConnection(
  port: number,
  round: number,
  index: number,
  sent: Map<string, SentMessage>,
  stop: () => boolean,
): Promise<void> {
  let conn: SmtpConnection;
  try {
    conn = await SmtpConnection.open(port);
  } catch {
    return; // killed before we got in
  }
  const useBdat = index % 2 === 1;
  try {
    const greeting = await conn.read();
    assert.equal(greeting.code, 220, greeting.text);
    await conn.write(`EHLO client${index}.elsewhere.example\r\n`);
    const ehlo = await conn.read();
    assert.equal(ehlo.code, 250, ehlo.text);
    for (let seq = 0; !stop(); seq++) {
      const id = `R${round}C${index}M${seq}-${SEED.toString(36)}`;
      const recipients = pickRecipients();
      const { raw, bodyHash } = makeMessage(id, recipients);
      const record: SentMessage = { id, recipients, bodyHash, status: 'unknown' };
      sent.set(id, record);
      const envelope = `MAIL FROM:<sender@elsewhere.example>\r\n${recipients.map((r) => `RCPT TO:<${r}>\r\n`).join('')}`;
      let final: Reply;
      if (!useBdat) {
        await conn.write(`${envelope}DATA\r\n`);
        for (let i = 0; i < recipients.length + 1; i++) assert.equal((await conn.read()).code, 250);
        const go = await conn.read();
        assert.equal(go.code, 354, go.text);
        await conn.write(dotStuff(raw));
        final = await conn.read();
      } else {
        const bytes = Buffer.from(raw, 'latin1');
        const chunks = bytes.length > 100_000 ? [bytes.subarray(0, 65_537), bytes.subarray(65_537)] : [bytes];
        const parts: Buffer[] = [Buffer.from(envelope)];
        chunks.forEach((c, i) => {
          parts.push(Buffer.from(`BDAT ${c.length}${i === chunks.length - 1 ? ' LAST' : ''}\r\n`), c);
        });
        await conn.write(Buffer.concat(parts));
        for (let i = 0; i < recipients.length + 1; i++) assert.equal((await conn.read()).code, 250);
        for (let i = 0; i < chunks.length - 1; i++) assert.equal((await conn.read()).code, 250);
        final = await conn.read();
      }
      if (final.code === 250) record.status = 'acked';
      else {
        record.status = 'refused';
        record.reply = `${final.code} ${final.text}`;
      }
    }
    await conn.write('QUIT\r\n').catch(() => undefined);
  } catch (e) {
    // A broken connection is the expected end of a round; anything else is a real failure.
    if (!conn.broken) throw e;
  } finally {
    conn.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Checks

interface Findings {
  acked: number;
  presentUnacked: number;
  absentUnacked: number;
  storedMessages: number;
  orphanBlobFiles: number;
}

const BODY_CHECK = /X-Body-SHA256: ([0-9a-f]{64})\r\n$/;

async function verifyStore(f: FulmarProcess, sent: Map<string, SentMessage>): Promise<Findings> {
  const problems: string[] = [];
  /** id -> recipient -> copies found */
  const found = new Map<string, Map<string, number>>();
  let storedMessages = 0;

  const store = await f.openStore();
  try {
    for (const user of USERS) {
      const account = await store.directory.getAccount(user);
      const inbox = account && (await store.mail.getMailbox(account.id, 'INBOX'));
      if (!inbox) throw new Error(`${user} has no INBOX`);
      for (const record of await store.mail.listMessages(inbox.id)) {
        storedMessages++;
        let text: string;
        try {
          const chunks: Buffer[] = [];
          for await (const c of store.mail.openMessage(record)) chunks.push(c as Buffer);
          text = Buffer.concat(chunks).toString('latin1');
        } catch (e) {
          problems.push(`${user}: message uid ${record.uid} cannot be read: ${(e as Error).message}`);
          continue;
        }
        if (text.length !== record.size) problems.push(`${user}: message uid ${record.uid} has ${text.length} bytes, its row says ${record.size}`);
        const split = text.indexOf('\r\n\r\n');
        const header = split < 0 ? text : text.slice(0, split + 2);
        const body = split < 0 ? '' : text.slice(split + 4);
        const id = /^X-Crash-Id: (\S+)\r$/m.exec(header)?.[1];
        if (!id) {
          problems.push(`${user}: a stored message has no X-Crash-Id (${text.length} bytes): ${JSON.stringify(text.slice(0, 200))}`);
          continue;
        }
        const message = sent.get(id);
        if (!message) {
          problems.push(`${user}: stored message ${id} was never sent`);
          continue;
        }
        if (!message.recipients.includes(user)) problems.push(`${user}: got ${id}, which was sent to ${message.recipients.join(', ')}`);
        if (!header.includes(`\nDelivered-To: ${user}\r\n`)) {
          problems.push(`${user}: ${id} lacks its Delivered-To line`);
        }
        const check = BODY_CHECK.exec(body);
        if (!check || sha256(body.slice(0, check.index)) !== check[1] || sha256(body) !== message.bodyHash) {
          problems.push(`${user}: ${id} is damaged (${body.length} body bytes, status ${message.status})`);
        }
        const perUser = found.get(id) ?? new Map<string, number>();
        perUser.set(user, (perUser.get(user) ?? 0) + 1);
        found.set(id, perUser);
      }
    }
  } finally {
    await store.close();
  }

  let acked = 0;
  let presentUnacked = 0;
  let absentUnacked = 0;
  for (const m of sent.values()) {
    const perUser = found.get(m.id);
    for (const [user, n] of perUser ?? []) if (n > 1) problems.push(`${m.id} is stored ${n} times for ${user}`);
    const holders = m.recipients.filter((r) => (perUser?.get(r) ?? 0) > 0);
    if (m.status === 'acked') {
      acked++;
      for (const r of m.recipients) if (!perUser?.get(r)) problems.push(`acknowledged ${m.id} is missing for ${r}`);
    } else if (m.status === 'refused') {
      problems.push(`${m.id} was refused: ${m.reply}`);
    } else if (holders.length === 0) {
      absentUnacked++;
    } else {
      presentUnacked++;
      if (holders.length !== m.recipients.length) {
        problems.push(`unacknowledged ${m.id} was delivered to ${holders.join(', ')} but not to all of ${m.recipients.join(', ')}`);
      }
    }
  }

  // The database's own consistency, read-only, next to the running server.
  const db = new Database(join(f.dataDir, 'fulmar.db'), { readonly: true, fileMustExist: true });
  let orphanBlobFiles = 0;
  try {
    const integrity = db.pragma('integrity_check', { simple: true });
    if (integrity !== 'ok') problems.push(`integrity_check: ${String(integrity)}`);
    for (const row of db
      .prepare<[], { address: string; used: number; actual: number }>(
        `SELECT a.address, a.used_bytes AS used,
                coalesce((SELECT sum(m.size) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.account_id = a.id), 0) AS actual
         FROM accounts a`,
      )
      .all()) {
      if (row.used !== row.actual) problems.push(`${row.address}: used_bytes ${row.used} but its messages sum to ${row.actual}`);
    }
    for (const row of db
      .prepare<[], { hash: string; refcount: number | null; refs: number }>(
        `WITH r AS (
           SELECT blob_hash AS hash, count(*) AS n FROM messages GROUP BY blob_hash
           UNION ALL SELECT blob_hash, count(*) FROM queue_messages GROUP BY blob_hash
         ), refs AS (SELECT hash, sum(n) AS refs FROM r GROUP BY hash)
         SELECT coalesce(refs.hash, b.hash) AS hash, b.refcount, coalesce(refs.refs, 0) AS refs
         FROM refs LEFT JOIN blob_refs b ON b.hash = refs.hash
         UNION
         SELECT b.hash, b.refcount, 0 FROM blob_refs b WHERE b.hash NOT IN (SELECT hash FROM refs)`,
      )
      .all()) {
      if (row.refcount !== row.refs) problems.push(`blob ${row.hash}: refcount ${row.refcount ?? 'none'} but ${row.refs} references`);
    }
    for (const row of db
      .prepare<[], { id: number; size: number; prefix: Buffer; blob_size: number; ref_size: number | null }>(
        `SELECT m.id, m.size, m.prefix, m.blob_size, b.size AS ref_size FROM messages m LEFT JOIN blob_refs b ON b.hash = m.blob_hash`,
      )
      .all()) {
      if (row.size !== row.prefix.length + row.blob_size) problems.push(`message row ${row.id}: size ${row.size} is not prefix + blob`);
      if (row.ref_size !== null && row.ref_size !== row.blob_size) problems.push(`message row ${row.id}: blob_size differs from blob_refs`);
    }
    for (const row of db
      .prepare<[], { id: number; name: string; uidnext: number; maxuid: number | null; hms: number; maxmod: number | null }>(
        `SELECT b.id, b.name, b.uidnext, max(m.uid) AS maxuid, b.highestmodseq AS hms, max(m.modseq) AS maxmod
         FROM mailboxes b LEFT JOIN messages m ON m.mailbox_id = b.id GROUP BY b.id`,
      )
      .all()) {
      if (row.maxuid !== null && row.uidnext <= row.maxuid) problems.push(`mailbox ${row.id}: uidnext ${row.uidnext} <= uid ${row.maxuid}`);
      if (row.maxmod !== null && row.hms < row.maxmod) problems.push(`mailbox ${row.id}: highestmodseq ${row.hms} < modseq ${row.maxmod}`);
      if (row.name !== 'INBOX' && row.maxuid !== null) problems.push(`mailbox ${row.name} (${row.id}) received messages`);
    }
    // Every referenced blob is stored whole, inline in the database (small bodies) or as a
    // file: its size and its content hash match.
    const blobRoot = join(f.dataDir, 'blobs');
    const referenced = new Set<string>();
    const inlineData = db.prepare<[string], { data: Buffer }>('SELECT data FROM blob_data WHERE hash = ?');
    for (const row of db.prepare<[], { hash: string; size: number }>('SELECT hash, size FROM blob_refs').all()) {
      referenced.add(row.hash);
      const path = join(blobRoot, row.hash.slice(0, 2), row.hash);
      const inline = inlineData.get(row.hash)?.data;
      if (!inline && !existsSync(path)) {
        problems.push(`blob ${row.hash} is referenced but stored neither inline nor as a file`);
        continue;
      }
      const bytes = inline ?? readFileSync(path);
      if (bytes.length !== row.size) problems.push(`blob ${row.hash}: file has ${bytes.length} bytes, refs say ${row.size}`);
      if (sha256(bytes) !== row.hash) problems.push(`blob ${row.hash}: content does not match its hash`);
    }
    const inlineRows = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM blob_data WHERE hash NOT IN (SELECT hash FROM blob_refs)').get()!.n;
    if (inlineRows > 0) problems.push(`${inlineRows} inline blob(s) without references`);
    for (const dir of readdirSync(blobRoot)) {
      if (dir === 'tmp') continue;
      for (const name of readdirSync(join(blobRoot, dir))) if (!referenced.has(name)) orphanBlobFiles++;
    }
  } finally {
    db.close();
  }

  if (problems.length > 0) {
    const more = problems.length > 30 ? `\n  ... and ${problems.length - 30} more` : '';
    assert.fail(`${problems.length} problem(s) found (CRASH_SEED=${SEED}):\n  ${problems.slice(0, 30).join('\n  ')}${more}`);
  }
  return { acked, presentUnacked, absentUnacked, storedMessages, orphanBlobFiles };
}

// ---------------------------------------------------------------------------------------------

test('kill -9 during SMTP load loses no acknowledged message and half-stores none', { timeout: 120_000 }, async (t) => {
  t.diagnostic(`seed ${SEED} (CRASH_SEED=${SEED} replays it)`);
  const f = await FulmarProcess.create();
  try {
    f.cli('domain', 'add', DOMAIN);
    for (const u of USERS) f.cli('user', 'add', u, '--password', 'crash-test-pw');
    const sent = new Map<string, SentMessage>();
    await f.start();
    for (let round = 1; round <= ROUNDS; round++) {
      let stopped = false;
      const load = Array.from({ length: CONNECTIONS }, (_, i) =>
        runConnection(f.ports.smtp, round, i, sent, () => stopped),
      );
      const delay = between(KILL_MIN_MS, KILL_MAX_MS);
      await new Promise((r) => setTimeout(r, delay));
      await f.kill();
      stopped = true;
      await Promise.all(load);
      // Restart on the same folder, then check everything sent so far next to the live server.
      await f.start();
      const findings = await verifyStore(f, sent);
      t.diagnostic(
        `round ${round}: killed after ${delay} ms; sent ${sent.size}, acknowledged ${findings.acked}, ` +
          `unacknowledged present ${findings.presentUnacked} / absent ${findings.absentUnacked}; ` +
          `${findings.storedMessages} stored copies; ${findings.orphanBlobFiles} orphan blob file(s)`,
      );
    }
    assert.equal(await f.stop(), 0, 'clean stop after the last restart');
    const last = await verifyStore(f, sent);
    assert.ok(last.acked >= 20, `only ${last.acked} messages were acknowledged: the load did not run`);
  } finally {
    await f.kill();
    f.cleanup();
  }
});
