// APOP (RFC 1939 7): offered only when pop3.apop is on, and only to accounts with an APOP secret.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import type { FulmarProcess } from './harness.js';
import { type Admin, startServer, stopServer } from './smtp-wire.js';

const DOMAIN = 'apop.test';
let f: FulmarProcess;
let admin: Admin;

before(async () => ({ f, admin } = await startServer(DOMAIN)));
after(() => stopServer(f, admin));

/** A minimal line client: each call returns the next reply line. */
async function open(port: number): Promise<{ greeting: string; cmd(line: string): Promise<string>; socket: Socket }> {
  const socket = connect(port, '127.0.0.1');
  let buffered = '';
  const waiting: Array<(line: string) => void> = [];
  socket.on('data', (d) => {
    buffered += d.toString('latin1');
    let nl: number;
    while ((nl = buffered.indexOf('\r\n')) >= 0 && waiting.length > 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 2);
      waiting.shift()!(line);
    }
  });
  const next = (): Promise<string> => new Promise((resolve) => {
    waiting.push(resolve);
    socket.emit('data', Buffer.alloc(0));
  });
  const greeting = await next();
  return { greeting, socket, cmd: (line) => (socket.write(`${line}\r\n`), next()) };
}

test('APOP: off by default; with pop3.apop on, the greeting has a timestamp and the digest logs in', async () => {
  const user = `apop1@${DOMAIN}`;
  await admin.addUsers([user]);
  f.cli('user', 'apop', user, '--secret', 'tanstaafl-secret');

  const off = await open(f.ports.pop3);
  assert.doesNotMatch(off.greeting, /<.*@.*>/, 'no timestamp while APOP is off');
  assert.match(await off.cmd(`APOP ${user} ${'0'.repeat(32)}`), /^-ERR \[AUTH\] APOP is not enabled/);
  off.socket.destroy();

  await admin.set('pop3.apop', 'true');
  try {
    const c = await open(f.ports.pop3);
    const timestamp = /(<[^>]+>)/.exec(c.greeting)?.[1];
    assert.ok(timestamp, c.greeting);
    const digest = (secret: string): string => createHash('md5').update(timestamp + secret).digest('hex');
    assert.equal(await c.cmd(`APOP ${user} ${digest('wrong-secret')}`), '-ERR [AUTH] Authentication failed');
    assert.equal(await c.cmd(`APOP ${user} ${digest('tanstaafl-secret')}`), '+OK Logged in, 0 messages');
    assert.equal(await c.cmd('QUIT'), '+OK Bye, 0 messages deleted');

    // The login password is not an APOP secret, and an account without a secret cannot use APOP.
    const other = `apop2@${DOMAIN}`;
    await admin.addUsers([other], 'plain-password');
    const d = await open(f.ports.pop3);
    const ts = /(<[^>]+>)/.exec(d.greeting)![1]!;
    const md5 = createHash('md5').update(`${ts}plain-password`).digest('hex');
    assert.equal(await d.cmd(`APOP ${other} ${md5}`), '-ERR [AUTH] Authentication failed');
    d.socket.destroy();

    f.cli('user', 'apop', user, '--off');
    const e = await open(f.ports.pop3);
    const ts2 = /(<[^>]+>)/.exec(e.greeting)![1]!;
    const md5b = createHash('md5').update(`${ts2}tanstaafl-secret`).digest('hex');
    assert.equal(await e.cmd(`APOP ${user} ${md5b}`), '-ERR [AUTH] Authentication failed', 'APOP off for the account');
    e.socket.destroy();
  } finally {
    await admin.set('pop3.apop', 'false');
  }
});
