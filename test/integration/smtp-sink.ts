/**
 * Receiving SMTP servers we did not write, for tests of the SMTP client and the queue: a small
 * asyncio SMTP sink in Python 3 (stdlib only), one process holding any number of servers, each
 * on its own loopback address and all on one port (the client connects to one remote port, as
 * `delivery.remote_port` sets it, so MX hosts differ by address: 127.0.0.2, 127.0.0.3, ...).
 *
 * Each server can be told what to offer (EHLO keywords, STARTTLS with a given certificate,
 * AUTH with given credentials), what to answer (greeting, EHLO, HELO, MAIL, per-recipient RCPT,
 * DATA, end of data; a 421 closes the connection as real servers do), where to stall (never
 * answer), and how to break TLS. It records every command line (with the number of the socket
 * read it came in, to see pipelining), whether TLS was on, and each message's raw DATA bytes
 * (still dot-stuffed, without the final ".\r\n").
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';

export interface SinkServer {
  /** Loopback address to listen on: 127.0.0.1, 127.0.0.2, ..., or ::1. */
  address: string;
  /** Name in the greeting and the EHLO reply, and in recorded events. */
  name: string;
  /** EHLO keywords; default PIPELINING, SIZE 10240000, 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8, DSN. */
  extensions?: string[];
  /** Reply texts: a whole reply, lines separated by "\n" (e.g. "421 4.3.2 busy"). */
  greeting?: string;
  ehlo?: string;
  helo?: string;
  mail?: string;
  /** Lower-case address → reply to its RCPT; default 250. */
  rcpt?: Record<string, string>;
  data?: string;
  dataEnd?: string;
  /** Never answer from this point on. */
  stall?: 'greeting' | 'EHLO' | 'MAIL' | 'RCPT' | 'DATA' | 'dataEnd';
  /** Answer 220 to STARTTLS, then close the connection or send plain text instead of TLS. */
  tlsBreak?: 'close' | 'garbage';
  /** Accept AUTH PLAIN and LOGIN with these credentials (535 otherwise). */
  auth?: { user: string; password: string };
  /** Use this certificate for STARTTLS instead of the sink's default one. */
  tls?: { cert: string; key: string };
  /** TLS from the first byte (a submission port 465 style smarthost). */
  implicitTls?: boolean;
}

export interface SinkCommand {
  server: string;
  line: string;
  /** The number of the socket read (on this connection) that brought the line. */
  chunk: number;
  tls: boolean;
  conn: number;
}

export interface SinkMessage {
  server: string;
  conn: number;
  tls: boolean;
  tlsVersion: string | null;
  mail: string;
  /** RCPT lines that got a 2xx. */
  rcpts: string[];
  /** The DATA bytes as received: dot-stuffed, CRLF line ends, without the final ".\r\n". */
  raw: Buffer;
  auth: string | null;
}

const SINK_PY = String.raw`
import asyncio, base64, json, os, ssl, sys

cfg = json.loads(os.environ['SINK_CONFIG'])
DEFAULT_EXT = ['PIPELINING', 'SIZE 10240000', '8BITMIME', 'ENHANCEDSTATUSCODES', 'SMTPUTF8', 'DSN']

def emit(**kw):
    sys.stdout.write(json.dumps(kw) + '\n')
    sys.stdout.flush()

def context_for(files):
    if not files:
        return None
    c = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    c.load_cert_chain(files['cert'], files['key'])
    return c

default_ctx = context_for(cfg.get('tls'))
conn_ids = [0]

class Sink(asyncio.Protocol):
    def __init__(self, s):
        self.s = s
        self.name = s['name']
        self.ctx = context_for(s.get('tls')) or default_ctx
        self.buf = b''
        self.chunk = 0
        self.mode = 'cmd'
        self.tls = False
        self.tls_version = None
        self.upgrading = False
        self.closed = False
        self.stalled = False
        self.auth_user = None
        self.auth_login = None
        self.data = bytearray()
        self.reset()
        conn_ids[0] += 1
        self.conn = conn_ids[0]

    def reset(self):
        self.mail = None
        self.rcpts = []

    def connection_made(self, t):
        self.t = t
        ssl_object = t.get_extra_info('ssl_object')
        if ssl_object is not None:
            self.tls = True
            self.tls_version = ssl_object.version()
        emit(event='connect', server=self.name, conn=self.conn)
        if self.s.get('stall') == 'greeting':
            self.stalled = True
            return
        self.reply(self.s.get('greeting', '220 %s ESMTP sink' % self.name))

    def connection_lost(self, exc):
        self.closed = True
        emit(event='close', server=self.name, conn=self.conn)

    def reply(self, text):
        if self.closed:
            return
        self.t.write(('\r\n'.join(text.split('\n')) + '\r\n').encode('utf-8'))
        if text.startswith('421'):
            self.closed = True
            self.t.close()

    def data_received(self, d):
        # While upgrading, what arrives is already decrypted (the TLS layer took over reading):
        # a client may send its EHLO with its last handshake bytes, before start_tls returns.
        if self.closed:
            return
        self.chunk += 1
        self.buf += d
        self.process()

    def process(self):
        while not self.closed and not self.upgrading and not self.stalled:
            if self.mode == 'data':
                start = max(0, len(self.data) - 4)
                self.data += self.buf
                self.buf = b''
                if self.data.startswith(b'.\r\n'):
                    body, rest = b'', bytes(self.data[3:])
                else:
                    i = self.data.find(b'\r\n.\r\n', start)
                    if i < 0:
                        return
                    body, rest = bytes(self.data[:i + 2]), bytes(self.data[i + 5:])
                self.data = bytearray()
                self.buf = rest
                self.mode = 'cmd'
                self.end_of_data(body)
                continue
            i = self.buf.find(b'\n')
            if i < 0:
                return
            line = self.buf[:i].rstrip(b'\r').decode('utf-8', 'replace')
            self.buf = self.buf[i + 1:]
            emit(event='command', server=self.name, line=line, chunk=self.chunk, tls=self.tls, conn=self.conn)
            self.command(line)

    def stall_at(self, stage):
        if self.s.get('stall') == stage:
            self.stalled = True
            return True
        return False

    def ehlo_reply(self):
        if 'ehlo' in self.s and not self.tls:
            return self.s['ehlo']
        ext = list(self.s.get('extensions', DEFAULT_EXT))
        if self.tls:
            ext = [e for e in ext if e.upper() != 'STARTTLS']
        lines = [self.name] + ext
        return '\n'.join(('250 ' if i == len(lines) - 1 else '250-') + l for i, l in enumerate(lines))

    def command(self, line):
        if self.auth_login is not None:
            return self.auth_step(line)
        verb = line.split(' ', 1)[0].upper()
        if verb == 'EHLO':
            if self.stall_at('EHLO'):
                return
            self.reset()
            return self.reply(self.ehlo_reply())
        if verb == 'HELO':
            self.reset()
            return self.reply(self.s.get('helo', '250 %s' % self.name))
        if verb == 'STARTTLS':
            self.reply('220 2.0.0 Ready to start TLS')
            brk = self.s.get('tlsBreak')
            if brk == 'close':
                self.closed = True
                self.t.close()
                return
            if brk == 'garbage':
                self.t.write(b'this is not TLS at all\r\n' * 4)
                self.closed = True
                self.t.close()
                return
            self.upgrading = True
            self.buf = b''  # rfc3207 4.2: nothing pipelined before the handshake counts
            asyncio.ensure_future(self.upgrade())
            return
        if verb == 'AUTH':
            parts = line.split(' ')
            mech = parts[1].upper() if len(parts) > 1 else ''
            if mech == 'PLAIN' and len(parts) > 2:
                return self.check_plain(parts[2])
            if mech == 'PLAIN':
                self.auth_login = ['plain']
                return self.reply('334 ')
            if mech == 'LOGIN':
                self.auth_login = []
                return self.reply('334 VXNlcm5hbWU6')
            return self.reply('504 5.5.4 Unrecognized authentication type')
        if verb == 'MAIL':
            if self.stall_at('MAIL'):
                return
            self.mail = line
            return self.reply(self.s.get('mail', '250 2.1.0 Ok'))
        if verb == 'RCPT':
            if self.stall_at('RCPT'):
                return
            addr = line[line.find('<') + 1:line.find('>')].lower() if '<' in line else ''
            r = self.s.get('rcpt', {}).get(addr, '250 2.1.5 Ok')
            if self.mail is None:
                r = '503 5.5.1 Error: need MAIL command'
            if r.startswith('2'):
                self.rcpts.append(line)
            return self.reply(r)
        if verb == 'DATA':
            if self.stall_at('DATA'):
                return
            if 'data' in self.s:
                return self.reply(self.s['data'])
            if not self.rcpts:
                return self.reply('554 5.5.1 Error: no valid recipients')
            self.mode = 'data'
            return self.reply('354 End data with <CR><LF>.<CR><LF>')
        if verb == 'RSET':
            self.reset()
            return self.reply('250 2.0.0 Ok')
        if verb == 'NOOP':
            return self.reply('250 2.0.0 Ok')
        if verb == 'QUIT':
            self.reply('221 2.0.0 Bye')
            self.closed = True
            self.t.close()
            return
        return self.reply('502 5.5.2 Error: command not recognized')

    def check_plain(self, b64):
        try:
            parts = base64.b64decode(b64).decode('utf-8').split('\0')
        except Exception:
            return self.reply('501 5.5.2 Cannot decode response')
        return self.auth_result(parts[1] if len(parts) > 2 else '', parts[2] if len(parts) > 2 else '')

    def auth_step(self, line):
        state = self.auth_login
        if line == '*':
            self.auth_login = None
            return self.reply('501 5.7.0 Authentication aborted')
        if state == ['plain']:
            self.auth_login = None
            return self.check_plain(line)
        try:
            state.append(base64.b64decode(line).decode('utf-8'))
        except Exception:
            self.auth_login = None
            return self.reply('501 5.5.2 Cannot decode response')
        if len(state) == 1:
            return self.reply('334 UGFzc3dvcmQ6')
        self.auth_login = None
        return self.auth_result(state[0], state[1])

    def auth_result(self, user, password):
        want = self.s.get('auth')
        if want and user == want['user'] and password == want['password']:
            self.auth_user = user
            emit(event='auth', server=self.name, conn=self.conn, user=user, tls=self.tls)
            return self.reply('235 2.7.0 Authentication successful')
        return self.reply('535 5.7.8 Error: authentication failed')

    async def upgrade(self):
        loop = asyncio.get_running_loop()
        try:
            t = await loop.start_tls(self.t, self, self.ctx, server_side=True)
        except Exception as e:
            emit(event='tls_failed', server=self.name, conn=self.conn, error=str(e))
            self.closed = True
            return
        self.t = t
        self.tls = True
        self.tls_version = t.get_extra_info('ssl_object').version()
        self.upgrading = False
        self.reset()
        emit(event='tls', server=self.name, conn=self.conn, version=self.tls_version)
        self.process()

    def end_of_data(self, body):
        if self.stall_at('dataEnd'):
            emit(event='message', server=self.name, conn=self.conn, tls=self.tls, tlsVersion=self.tls_version, mail=self.mail, rcpts=self.rcpts, raw=base64.b64encode(body).decode(), auth=self.auth_user, answered=False)
            return
        emit(event='message', server=self.name, conn=self.conn, tls=self.tls, tlsVersion=self.tls_version, mail=self.mail, rcpts=self.rcpts, raw=base64.b64encode(body).decode(), auth=self.auth_user, answered=True)
        self.reply(self.s.get('dataEnd', '250 2.0.0 Ok: queued as SINK%d' % self.conn))
        self.reset()

async def main():
    loop = asyncio.get_running_loop()
    port = cfg.get('port', 0)
    servers = []
    for s in cfg['servers']:
        implicit = (context_for(s.get('tls')) or default_ctx) if s.get('implicitTls') else None
        srv = await loop.create_server(lambda s=s: Sink(s), s['address'], port, ssl=implicit)
        if port == 0:
            port = srv.sockets[0].getsockname()[1]
        servers.append(srv)
    emit(event='listening', port=port)
    await loop.run_in_executor(None, sys.stdin.read)
    sys.stdout.flush()
    os._exit(0)

try:
    asyncio.run(main())
except OSError as e:
    emit(event='bind_failed', error=str(e))
    sys.exit(3)
`;

let pythonPath: string | null = null;

/** The interpreter itself, not a version manager's shim (which costs about 0.4 s a start). */
function python(): string {
  if (pythonPath === null) {
    const r = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' });
    pythonPath = r.status === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : 'python3';
  }
  return pythonPath;
}

export class SmtpSink {
  readonly events: Array<Record<string, unknown>> = [];
  port = 0;
  private listeners: Array<() => void> = [];
  private stderr = '';

  private constructor(private readonly child: ChildProcess) {}

  /** Starts the servers; `tls` is the default STARTTLS certificate (PEM file paths). */
  static async start(servers: SinkServer[], options: { tls?: { cert: string; key: string } } = {}): Promise<SmtpSink> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await SmtpSink.startOnce(servers, options);
      } catch (err) {
        // Another process may hold the chosen port on one of the other addresses: try again.
        if (attempt >= 3 || !String(err).includes('bind_failed')) throw err;
      }
    }
  }

  private static async startOnce(servers: SinkServer[], options: { tls?: { cert: string; key: string } }): Promise<SmtpSink> {
    const child = spawn(python(), ['-u', '-c', SINK_PY], {
      env: { ...process.env, SINK_CONFIG: JSON.stringify({ servers, tls: options.tls ?? null }) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const sink = new SmtpSink(child);
    let buffered = '';
    child.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim() === '') continue;
        sink.events.push(JSON.parse(line) as Record<string, unknown>);
        for (const l of sink.listeners.splice(0)) l();
      }
    });
    child.stderr!.on('data', (d: Buffer) => (sink.stderr += d.toString('utf8')));
    child.once('exit', () => {
      for (const l of sink.listeners.splice(0)) l();
    });
    const ready = await sink.waitFor((e) => e.event === 'listening' || e.event === 'bind_failed', 10_000).catch((err: Error) => {
      child.kill('SIGKILL');
      throw new Error(`${err.message}\n${sink.stderr}`);
    });
    if (ready.event === 'bind_failed') {
      child.kill('SIGKILL');
      throw new Error(`bind_failed: ${String(ready.error)}`);
    }
    sink.port = Number(ready.port);
    return sink;
  }

  /** Resolves with the first event (already seen or to come) that `match` accepts. */
  waitFor(match: (e: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.events.find(match);
        if (found !== undefined) {
          clearTimeout(timer);
          resolve(found);
        } else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          clearTimeout(timer);
          reject(new Error(`sink exited (${this.child.exitCode ?? this.child.signalCode}): ${this.stderr}`));
        } else {
          this.listeners.push(check);
        }
      };
      const timer = setTimeout(() => {
        this.listeners = this.listeners.filter((l) => l !== check);
        reject(new Error(`sink: timed out waiting for an event; stderr: ${this.stderr}`));
      }, timeoutMs);
      check();
    });
  }

  commands(server?: string): SinkCommand[] {
    return this.events
      .filter((e) => e.event === 'command' && (server === undefined || e.server === server))
      .map((e) => ({ server: String(e.server), line: String(e.line), chunk: Number(e.chunk), tls: e.tls === true, conn: Number(e.conn) }));
  }

  messages(server?: string): SinkMessage[] {
    return this.events
      .filter((e) => e.event === 'message' && (server === undefined || e.server === server))
      .map((e) => ({
        server: String(e.server),
        conn: Number(e.conn),
        tls: e.tls === true,
        tlsVersion: typeof e.tlsVersion === 'string' ? e.tlsVersion : null,
        mail: String(e.mail),
        rcpts: (e.rcpts as string[]) ?? [],
        raw: Buffer.from(String(e.raw), 'base64'),
        auth: typeof e.auth === 'string' ? e.auth : null,
      }));
  }

  /** Connections each server accepted. */
  connections(server: string): number {
    return this.events.filter((e) => e.event === 'connect' && e.server === server).length;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}

/** Undoes dot-stuffing (rfc5321 4.5.2): a line starting with "." loses that dot. */
export function unstuff(raw: Buffer): Buffer {
  const text = raw.toString('latin1');
  return Buffer.from(text.replace(/(^|\r\n)\./g, '$1'), 'latin1');
}

/** A self-signed certificate for `names` (EC P-256), written to a fresh folder. */
export async function makeCertificate(names: string[]): Promise<{ cert: string; key: string; certPem: string; dir: string; cleanup: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'fulmar-sink-tls-'));
  const notAfter = new Date();
  notAfter.setFullYear(notAfter.getFullYear() + 1);
  const pems = await generate([{ name: 'commonName', value: names[0]! }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notAfterDate: notAfter,
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: names.map((value) => ({ type: 2, value })) },
    ],
  });
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  writeFileSync(cert, pems.cert);
  writeFileSync(key, pems.private, { mode: 0o600 });
  return { cert, key, certPem: pems.cert, dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
