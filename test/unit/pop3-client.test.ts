// The collectors' POP3 client (collect/pop3-client.ts) against scripted servers: dot-unstuffing
// at every chunk boundary, pipelined replies, limits, timeouts, STLS injection, login forms.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ensureTlsFiles } from '../../src/net/tls.js';
import { Pop3Client, Pop3ClientError } from '../../src/collect/pop3-client.js';
import { createSecureContext, TLSSocket } from 'node:tls';

type Script = (socket: Socket, line: string) => void;

const authToken = (user: string, password: string): string => Buffer.from(`\0${user}\0${password}`).toString('base64');

/** A server that greets and hands each command line to `script`. */
async function scripted(script: Script, greeting = '+OK ready <1.2@test>\r\n'): Promise<{ port: number; server: Server; lines: string[] }> {
  const lines: string[] = [];
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.write(greeting);
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      let nl: number;
      while ((nl = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        lines.push(line);
        script(socket, line);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, server, lines };
}

const connect = (port: number, extra: Partial<Parameters<typeof Pop3Client.connect>[0]> = {}) =>
  Pop3Client.connect({ host: '127.0.0.1', port, tls: 'none', verify: false, commandMs: 2000, ...extra });

async function retrAll(client: Pop3Client, n: number, max = Infinity): Promise<{ text: string; size: number; truncated: boolean }> {
  const parts: Buffer[] = [];
  const r = await client.retr(n, (c) => void parts.push(Buffer.from(c)), max);
  return { text: Buffer.concat(parts).toString('latin1'), ...r };
}

test('RETR undoes dot-stuffing and finds the terminator at every chunk boundary', async () => {
  // A line "." inside the message travels as ".."; only ".\r\n" ends it.
  const body = 'Subject: dots\r\n\r\n..leading dot\r\n...two\r\n..\r\nlast\r\n.\r\n';
  const expected = 'Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nlast\r\n';
  for (let split = 0; split <= body.length; split++) {
    const { port, server } = await scripted((socket, line) => {
      if (line.startsWith('RETR')) {
        socket.write('+OK\r\n' + body.slice(0, split));
        setTimeout(() => socket.write(body.slice(split) + '+OK bye\r\n'), 3);
      } else if (line === 'QUIT') socket.end('+OK\r\n');
    });
    const client = await connect(port);
    const got = await retrAll(client, 1);
    assert.equal(got.text, expected, `split at ${split}`);
    assert.equal(await client.quit(), true, `the reply after the body is read as the next reply (split ${split})`);
    server.close();
  }
});

test('a body ending in a bare-LF terminator, and a reply pipelined after it', async () => {
  const { port, server } = await scripted((socket, line) => {
    if (line === 'RETR 1') socket.write('+OK\r\nA: b\n\nx\n.\n');
    if (line === 'DELE 1') socket.write('+OK deleted\r\n');
  });
  const client = await connect(port);
  assert.equal((await retrAll(client, 1)).text, 'A: b\n\nx\n');
  await client.dele(1);
  client.destroy();
  server.close();
});

test('RETR past maxBytes reads to the end but passes on only maxBytes', async () => {
  const big = 'X: y\r\n\r\n' + 'a'.repeat(100_000) + '\r\n';
  const { port, server } = await scripted((socket, line) => {
    if (line === 'RETR 1') socket.write(`+OK\r\n${big}.\r\n`);
    if (line === 'NOOP') socket.write('+OK\r\n');
  });
  const client = await connect(port);
  const got = await retrAll(client, 1, 1000);
  assert.equal(got.text.length, 1000);
  assert.equal(got.size, big.length);
  assert.equal(got.truncated, true);
  client.destroy();
  server.close();
});

test('LIST, UIDL (with a malformed line refused), STAT, -ERR to UIDL means none', async () => {
  let uidl = '+OK\r\n1 abc\r\n2 d.ef\r\n.\r\n';
  const { port, server } = await scripted((socket, line) => {
    if (line === 'LIST') socket.write('+OK 2 messages\r\n1 120\r\n2 3400\r\n.\r\n');
    if (line === 'UIDL') socket.write(uidl);
    if (line === 'STAT') socket.write('+OK 2 3520\r\n');
  });
  let client = await connect(port);
  assert.deepEqual(await client.list(), [
    { number: 1, size: 120 },
    { number: 2, size: 3400 },
  ]);
  assert.deepEqual([...(await client.uidl())!], [
    [1, 'abc'],
    [2, 'd.ef'],
  ]);
  assert.deepEqual(await client.stat(), { count: 2, size: 3520 });
  client.destroy();
  uidl = '-ERR no UIDL here\r\n';
  client = await connect(port);
  assert.equal(await client.uidl(), null);
  client.destroy();
  uidl = '+OK\r\n1 has space inside\r\n.\r\n';
  client = await connect(port);
  await assert.rejects(client.uidl(), (e) => e instanceof Pop3ClientError && e.kind === 'protocol');
  client.destroy();
  server.close();
});

test('an endless line, garbage replies and silence fail the session with a clear error', async () => {
  const { port, server } = await scripted((socket, line) => {
    if (line === 'LIST') socket.write('+OK ' + 'x'.repeat(10_000));
    if (line === 'STAT') socket.write('HELLO\r\n');
    // NOOP: no answer at all.
  });
  let client = await connect(port);
  await assert.rejects(client.list(), (e) => e instanceof Pop3ClientError && e.kind === 'protocol' && /longer than/.test(e.message));
  await assert.rejects(client.stat(), (e) => e instanceof Pop3ClientError && e.kind === 'protocol', 'a failed session stays failed');
  client = await connect(port);
  await assert.rejects(client.stat(), (e) => e instanceof Pop3ClientError && /not \+OK or -ERR/.test(e.message));
  client = await connect(port, { commandMs: 200 });
  await assert.rejects(client.dele(1).then(() => client.dele(2)), (e) => e instanceof Pop3ClientError);
  server.close();
  const silent = createServer((s) => s.on('error', () => {}));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const started = Date.now();
  await assert.rejects(
    connect((silent.address() as { port: number }).port, { commandMs: 300 }),
    (e) => e instanceof Pop3ClientError && e.kind === 'timeout',
  );
  assert.ok(Date.now() - started < 2000);
  silent.close();
});

test('login: APOP digest, AUTH PLAIN when offered, USER/PASS otherwise; the password is never in an error', async () => {
  const { port, server, lines } = await scripted((socket, line) => {
    if (line === 'CAPA') socket.write('+OK\r\nUSER\r\nSASL PLAIN LOGIN\r\n.\r\n');
    else if (line.startsWith('APOP ')) socket.write('+OK\r\n');
    else if (line.startsWith('AUTH PLAIN ')) socket.write(line.includes(authToken('u', 'wrong')) ? '-ERR [AUTH] wrong\r\n' : '-ERR not now\r\n');
    else if (line.startsWith('USER ')) socket.write('+OK\r\n');
    else if (line.startsWith('PASS ')) socket.write('-ERR [AUTH] Authentication failed\r\n');
  });
  let client = await connect(port);
  assert.equal(client.apopTimestamp, '<1.2@test>');
  await client.login({ user: 'u', password: 'sekrit', apop: true });
  assert.equal(lines.at(-1), `APOP u ${createHash('md5').update('<1.2@test>sekrit').digest('hex')}`);
  client.destroy();
  client = await connect(port);
  await assert.rejects(client.login({ user: 'u', password: 'sekrit' }), (e) => {
    assert.ok(e instanceof Pop3ClientError && e.kind === 'auth');
    assert.doesNotMatch(e.message, /sekrit/);
    assert.match(e.message, /Authentication failed/);
    return true;
  });
  assert.deepEqual(lines.slice(-4).map((l) => l.split(' ')[0]), ['CAPA', 'AUTH', 'USER', 'PASS'], 'AUTH PLAIN refused without [AUTH]: USER/PASS next');
  assert.equal(Buffer.from(lines.at(-3)!.split(' ')[2]!, 'base64').toString(), '\0u\0sekrit');
  client.destroy();
  await assert.rejects(client.login({ user: 'a\r\nDELE 1', password: 'x' }), /line break/);
  client = await connect(port);
  const before = lines.length;
  await assert.rejects(client.login({ user: 'u', password: 'wrong' }), /\[AUTH\] wrong/);
  assert.deepEqual(lines.slice(before).map((l) => l.split(' ')[0]), ['CAPA', 'AUTH'], 'wrong credentials are not tried twice');
  client.destroy();
  server.close();
  const noStamp = await scripted(() => {}, '+OK plain greeting\r\n');
  client = await connect(noStamp.port);
  await assert.rejects(client.login({ user: 'u', password: 'p', apop: true }), /no APOP timestamp/);
  client.destroy();
  noStamp.server.close();
});

let certDir: string;
let context: ReturnType<typeof createSecureContext>;
before(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'fulmar-pop3c-'));
  const files = await ensureTlsFiles(certDir, 'localhost', { cert: null, key: null });
  context = createSecureContext({ cert: readFileSync(files.cert), key: readFileSync(files.key) });
});
after(() => rmSync(certDir, { recursive: true, force: true }));

test('STLS: bytes sent with the +OK before the handshake are discarded, CAPA is asked again over TLS', async () => {
  const seenOverTls: string[] = [];
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.write('+OK ready\r\n');
    socket.once('data', (d) => {
      assert.equal(d.toString(), 'STLS\r\n');
      // The injection: a fake "+OK" that a careless client would read as the next reply.
      socket.write('+OK begin TLS\r\n-ERR injected before TLS\r\n');
      const secure = new TLSSocket(socket, { isServer: true, secureContext: context });
      secure.on('error', () => {});
      let buf = '';
      secure.on('data', (c) => {
        buf += c.toString();
        let nl: number;
        while ((nl = buf.indexOf('\r\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 2);
          seenOverTls.push(line);
          if (line === 'STAT') secure.write('+OK 0 0\r\n');
          if (line === 'QUIT') secure.end('+OK\r\n');
        }
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await assert.rejects(connect(port, { tls: 'starttls', verify: true }), (e) => e instanceof Pop3ClientError && e.kind === 'tls' && /--insecure/.test(e.message));
  const client = await connect(port, { tls: 'starttls', verify: false });
  assert.deepEqual(await client.stat(), { count: 0, size: 0 });
  assert.equal(await client.quit(), true);
  assert.deepEqual(seenOverTls, ['STAT', 'QUIT']);
  server.close();
});

test('connection refused is a connect error naming the host and port', async () => {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  await assert.rejects(connect(port), (e) => e instanceof Pop3ClientError && e.kind === 'connect' && e.message.includes(`127.0.0.1:${port}`) && /ECONNREFUSED/.test(e.message));
});
