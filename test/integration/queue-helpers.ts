/**
 * What the queue tests share (queue.test.ts, queue-crash.test.ts): submission through Python's
 * smtplib (run without blocking this process, which also serves the test DNS), DSN parsing by
 * Python's email package (a parser we did not write), polling, and the queue id of a message
 * from the server's `smtp.accepted` log event.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { FulmarProcess } from './harness.js';

let pythonPath: string | null = null;
function pythonExe(): string {
  if (pythonPath === null) {
    const r = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' });
    pythonPath = r.status === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : 'python3';
  }
  return pythonPath;
}

/** Runs a Python script without blocking the event loop; resolves with stdout, rejects with stderr. */
export function pyAsync(script: string, env: Record<string, string> = {}, input?: Buffer, exe = pythonExe()): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(exe, ['-c', script], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`python failed (${code}):\n${err}\n${out}`));
    });
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

const SUBMIT_PY = String.raw`
import smtplib, ssl, json, os, base64
a = json.loads(os.environ['ARGS'])
def r(t):
    code, msg = t
    return [code, msg.decode('utf-8', 'replace') if isinstance(msg, bytes) else msg]
c = ssl.create_default_context()
c.check_hostname = False
c.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP('127.0.0.1', int(a['port']), timeout=60)
s.ehlo('client.queue.test')
out = {'features': sorted(k.upper() for k in s.esmtp_features.keys())}
if a['tls']:
    s.starttls(context=c)
    s.ehlo('client.queue.test')
if a.get('user'):
    s.login(a['user'], a['password'])
out['mail'] = r(s.mail(a['from'], a['mailOptions']))
out['rcpt'] = [r(s.rcpt(t, a['rcptOptions'].get(t, []))) for t in a['to']]
if out['mail'][0] == 250 and any(x[0] in (250, 251) for x in out['rcpt']):
    out['data'] = r(s.data(base64.b64decode(a['body'])))
s.quit()
print(json.dumps(out))
`;

export interface SubmitOptions {
  port: number;
  /** STARTTLS before anything else (default true). */
  tls?: boolean;
  user?: string;
  password?: string;
  from: string;
  to: string[];
  body: string | Buffer;
  mailOptions?: string[];
  /** Per recipient: RCPT parameters (NOTIFY=..., ORCPT=...). */
  rcptOptions?: Record<string, string[]>;
}

export interface SubmitResult {
  features: string[];
  mail: [number, string];
  rcpt: Array<[number, string]>;
  data?: [number, string];
}

/** One SMTP transaction with smtplib: EHLO, STARTTLS, AUTH, MAIL, RCPT..., DATA, QUIT. */
export async function submit(o: SubmitOptions): Promise<SubmitResult> {
  const body = Buffer.isBuffer(o.body) ? o.body : Buffer.from(o.body, 'utf8');
  const out = await pyAsync(SUBMIT_PY, {
    ARGS: JSON.stringify({
      port: o.port,
      tls: o.tls ?? true,
      user: o.user ?? null,
      password: o.password ?? null,
      from: o.from,
      to: o.to,
      body: body.toString('base64'),
      mailOptions: o.mailOptions ?? [],
      rcptOptions: o.rcptOptions ?? {},
    }),
  });
  return JSON.parse(out.trim().split('\n').pop()!) as SubmitResult;
}

const DSN_PY = String.raw`
import email, json, sys
from email import policy
raw = sys.stdin.buffer.read()
m = email.message_from_bytes(raw, policy=policy.compat32)
def fields(msg):
    out = {}
    for k, v in msg.items():
        out.setdefault(k.lower(), []).append(' '.join(str(v).split()))
    return out
out = {
    'contentType': m.get_content_type(),
    'reportType': m.get_param('report-type'),
    'headers': fields(m),
    'defects': [type(d).__name__ for d in m.defects],
    'parts': [],
}
parts = m.get_payload() if m.is_multipart() else []
out['parts'] = [p.get_content_type() for p in parts]
if parts:
    out['text'] = parts[0].get_payload(decode=True).decode('utf-8', 'replace')
if len(parts) >= 2 and parts[1].get_content_type() == 'message/delivery-status':
    blocks = parts[1].get_payload()
    out['perMessage'] = fields(blocks[0])
    out['perRecipient'] = [fields(b) for b in blocks[1:]]
if len(parts) >= 3:
    p = parts[2]
    if p.get_content_type() == 'message/rfc822':
        inner = p.get_payload()[0]
        out['original'] = {
            'headers': fields(inner),
            'contentType': inner.get_content_type(),
            'body': inner.as_string() if inner.is_multipart() else inner.get_payload(decode=False),
        }
    else:
        out['originalHeaders'] = p.get_payload()
print(json.dumps(out))
`;

export interface ParsedDsn {
  contentType: string;
  reportType: string | null;
  /** Lower-case field name → values (unfolded). */
  headers: Record<string, string[]>;
  defects: string[];
  parts: string[];
  text?: string;
  perMessage?: Record<string, string[]>;
  perRecipient?: Array<Record<string, string[]>>;
  /** The returned message (message/rfc822); `body` is the whole of it when it is multipart. */
  original?: { headers: Record<string, string[]>; contentType: string; body: string };
  originalHeaders?: string;
}

/** Parses a delivery status notification with Python's email package. */
export async function parseDsn(raw: string | Buffer): Promise<ParsedDsn> {
  const out = await pyAsync(DSN_PY, {}, Buffer.isBuffer(raw) ? raw : Buffer.from(raw, 'utf8'));
  return JSON.parse(out.trim().split('\n').pop()!) as ParsedDsn;
}

/** The one value of a DSN field (throws when absent). */
export function field(block: Record<string, string[]> | undefined, name: string): string {
  const v = block?.[name.toLowerCase()];
  if (!v || v.length === 0) throw new Error(`no ${name} field in ${JSON.stringify(block)}`);
  return v[0]!;
}

/** Polls `fn` until it returns something truthy; rejects after `timeoutMs` with `what`. */
export async function until<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 20_000, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The outbound queue id of the message our server answered "250 2.0.0 Ok: queued as ID" to. */
export async function queueIdOf(f: FulmarProcess, dataReply: [number, string] | undefined): Promise<number> {
  if (!dataReply || dataReply[0] !== 250) throw new Error(`message not accepted: ${JSON.stringify(dataReply)}`);
  const id = /queued as (\S+)/.exec(dataReply[1])?.[1];
  if (!id) throw new Error(`no id in ${dataReply[1]}`);
  const event = await until(`the smtp.accepted event of ${id}`, () => f.events('smtp.accepted').find((e) => e.id === id), 10_000);
  if (typeof event.queued !== 'number') throw new Error(`message ${id} was not queued: ${JSON.stringify(event)}`);
  return event.queued;
}

/** A plain text message with CRLF line ends. */
export function textMessage(from: string, to: string, subject: string, body = 'Hello from the queue tests.\r\n.a line with a leading dot\r\n', extra = ''): string {
  const id = `${Date.now().toString(36)}.${Math.random().toString(36).slice(2)}`;
  return (
    `From: <${from}>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nDate: ${new Date().toUTCString()}\r\n` +
    `Message-ID: <${id}@${from.split('@')[1] ?? 'queue.test'}>\r\n${extra}\r\n${body}`
  );
}
