/**
 * The messages bench/imap.ts puts in its mailboxes, the same for Fulmar and for the Dovecot it
 * is compared with (bench/imap-dovecot.ts): message i is a pure function of i, so both servers
 * hold byte-identical mail and the bench client knows, without asking, what a SEARCH must find.
 *
 * A mix that looks like a real inbox: senders from a pool, subjects of 3 to 7 words (some
 * "Re:"/"Fwd:", some RFC 2047 encoded UTF-8), text/plain (65%), multipart/alternative with HTML
 * (25%), multipart/mixed with a base64 attachment of 8 to 60 KB (10%); bodies of 0.5 to 12 KB of
 * text. Mean size about 8 KB. Flags: old mail mostly \Seen, some \Answered and \Flagged.
 */

/** mulberry32: a small deterministic PRNG; `seed` picks the stream. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'project update meeting notes agenda quarterly budget review draft proposal contract invoice payment ' +
  'reminder schedule travel booking flight hotel conference workshop training session feedback survey ' +
  'results summary analysis forecast sales marketing campaign launch release version patch security ' +
  'incident outage maintenance window server database backup migration cluster deploy pipeline build ' +
  'test failure report weekly monthly annual plan roadmap milestone deadline extension request approval ' +
  'signed document attached scan photos holiday party lunch dinner team offsite welcome onboarding ' +
  'account password reset login access permission license renewal subscription order shipment delivery ' +
  'tracking receipt refund question answer support ticket customer partner vendor supplier quote price ' +
  'discount offer newsletter announcement policy change office move parking network printer laptop phone ' +
  'calendar invite call video recording slides presentation demo prototype design mockup spec requirements ' +
  'interview candidate hiring position salary benefits insurance tax return statement balance transfer ' +
  'garden family weekend birthday wedding photos recipe kitchen repair plumber appointment doctor school'
).split(' ');

/** What SEARCH SUBJECT looks for: words that occur in 1-2% of subjects (one is also spelled with an accent). */
export const SEARCH_TERMS = ['invoice', 'meeting', 'budget', 'outage', 'migration', 'holiday', 'renewal', 'prototype', 'candidate', 'plumber', 'café', 'zürich'];

const ACCENTED = ['café', 'zürich', 'résumé', 'naïve', 'señor'];

const FIRST = ['Alice', 'Bob', 'Carol', 'Dave', 'Erin', 'Frank', 'Grace', 'Heidi', 'Ivan', 'Judy', 'Mallory', 'Niaj', 'Olivia', 'Peggy', 'Rupert', 'Sybil', 'Trent', 'Victor', 'Walter', 'Zoe'];
const LAST = ['Smith', 'Jones', 'Garcia', 'Müller', 'Rossi', 'Dubois', 'Kowalski', 'Tanaka', 'Silva', 'Novak'];
const DOMAINS = ['example.com', 'example.net', 'example.org', 'mail.example.com', 'corp.example', 'lists.example.org'];

const BASE_DATE = Date.UTC(2025, 0, 1);

export interface Subject {
  /** The decoded subject (what SEARCH SUBJECT matches, case-insensitively). */
  text: string;
  /** As it appears in the header (RFC 2047 encoded when not ASCII). */
  header: string;
}

export function subjectOf(i: number): Subject {
  const r = rng(i * 2654435761 + 17);
  const n = 3 + Math.floor(r() * 5);
  const words: string[] = [];
  for (let k = 0; k < n; k++) words.push(WORDS[Math.floor(r() * WORDS.length)]!);
  const accented = r() < 0.06;
  if (accented) words.splice(Math.floor(r() * words.length), 0, ACCENTED[Math.floor(r() * ACCENTED.length)]!);
  words[0] = words[0]!.charAt(0).toUpperCase() + words[0]!.slice(1);
  const p = r();
  const text = `${p < 0.2 ? 'Re: ' : p < 0.25 ? 'Fwd: ' : ''}${words.join(' ')} #${i}`;
  const header = accented ? `=?UTF-8?B?${Buffer.from(text, 'utf8').toString('base64')}?=` : text;
  return { text, header };
}

/** How many of messages 0..count-1 have `term` in their subject (case-insensitive substring). */
export function expectedSubjectMatches(count: number, terms: string[] = SEARCH_TERMS): Map<string, number> {
  const out = new Map(terms.map((t) => [t, 0]));
  for (let i = 0; i < count; i++) {
    const s = subjectOf(i).text.toLowerCase();
    for (const t of terms) if (s.includes(t)) out.set(t, out.get(t)! + 1);
  }
  return out;
}

export function dateOf(i: number): Date {
  // One message every 5 minutes or so from 2025-01-01, in the order of i.
  return new Date(BASE_DATE + i * 300_000 + Math.floor(rng(i + 99)() * 200_000));
}

/** IMAP system flags of message i (as stored at fill time): older mail read, some answered or flagged. */
export function flagsOf(i: number, count: number): string[] {
  const r = rng(i * 31 + 5);
  const flags: string[] = [];
  if (i < count - 50 ? r() < 0.92 : r() < 0.2) flags.push('\\Seen');
  if (r() < 0.1) flags.push('\\Answered');
  if (r() < 0.03) flags.push('\\Flagged');
  return flags;
}

function textBody(r: () => number, bytes: number): string {
  const lines: string[] = [];
  let size = 0;
  let line = '';
  while (size < bytes) {
    const w = WORDS[Math.floor(r() * WORDS.length)]!;
    if (line.length + w.length + 1 > 72) {
      lines.push(line);
      size += line.length + 2;
      line = r() < 0.08 ? '' : w;
      if (line === '') {
        lines.push('');
        size += 2;
        line = w;
      }
    } else {
      line = line ? `${line} ${w}` : w;
    }
  }
  if (line) lines.push(line);
  return `${lines.join('\r\n')}\r\n`;
}

function base64Lines(r: () => number, bytes: number): string {
  const data = Buffer.alloc(bytes);
  for (let k = 0; k < bytes; k += 4) data.writeUInt32LE((r() * 4294967296) >>> 0, Math.min(k, bytes - 4));
  return `${data.toString('base64').replace(/.{76}/g, '$&\r\n')}\r\n`;
}

/**
 * Message i, as SMTP would have delivered it (without the per-recipient Return-Path/Delivered-To).
 * A non-zero `variant` makes a copy with other bytes (trace id and Message-ID) but the same
 * subject, size class and structure: distinct stored messages per account (--distinct).
 */
export function messageOf(i: number, to = 'user@bench.test', variant = 0): Buffer {
  const r = rng(i * 40503 + 3);
  const first = FIRST[Math.floor(r() * FIRST.length)]!;
  const last = LAST[Math.floor(r() * LAST.length)]!;
  const domain = DOMAINS[Math.floor(r() * DOMAINS.length)]!;
  const from = `${first.toLowerCase()}.${last.toLowerCase().replace('ü', 'ue')}@${domain}`;
  const fromName = /[^\x20-\x7e]/.test(last) ? `=?UTF-8?Q?${first}_${encodeURIComponent(last).replace(/%/g, '=')}?=` : `"${first} ${last}"`;
  const date = dateOf(i);
  const subject = subjectOf(i);
  const kind = r();
  const textBytes = Math.floor(500 + 11_500 * r() ** 3);
  const id = `${i}.${Math.floor(r() * 1e9).toString(36)}${variant ? `.v${variant}` : ''}`;
  let head =
    `Received: from mx${i % 7}.${domain} (mx${i % 7}.${domain} [192.0.2.${i % 250}])\r\n\tby mx.bench.test (Bench) with ESMTPS id ${id}\r\n\tfor <${to}>; ${date.toUTCString()}\r\n` +
    `From: ${fromName} <${from}>\r\nTo: Bench User <${to}>\r\n` +
    (r() < 0.2 ? `Cc: ${FIRST[i % FIRST.length]} <${FIRST[i % FIRST.length]!.toLowerCase()}@example.com>\r\n` : '') +
    `Subject: ${subject.header}\r\nDate: ${date.toUTCString().replace('GMT', '+0000')}\r\nMessage-ID: <${id}@${domain}>\r\n`;
  if (subject.text.startsWith('Re: ')) head += `In-Reply-To: <${i - 1}.reply@${domain}>\r\n`;
  head += 'MIME-Version: 1.0\r\n';
  const text = textBody(r, textBytes);
  let body: string;
  if (kind < 0.65) {
    head += 'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n';
    body = text;
  } else if (kind < 0.9) {
    const b = `alt-${id}`;
    const html = `<html><body><p>${text.replace(/\r\n\r\n/g, '</p>\r\n<p>')}</p></body></html>\r\n`;
    head += `Content-Type: multipart/alternative; boundary="${b}"\r\n`;
    body =
      `--${b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${text}` +
      `--${b}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n${html}--${b}--\r\n`;
  } else {
    const b = `mix-${id}`;
    const attachment = Math.floor(8192 + 53_248 * r());
    head += `Content-Type: multipart/mixed; boundary="${b}"\r\n`;
    body =
      `This is a multi-part message in MIME format.\r\n--${b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${text}` +
      `--${b}\r\nContent-Type: application/pdf; name="report-${i}.pdf"\r\nContent-Disposition: attachment; filename="report-${i}.pdf"\r\n` +
      `Content-Transfer-Encoding: base64\r\n\r\n${base64Lines(r, attachment)}--${b}--\r\n`;
  }
  return Buffer.from(`${head}\r\n${body}`, 'utf8');
}
