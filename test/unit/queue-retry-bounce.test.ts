// Retry schedule (src/queue/retry.ts) and delivery status notifications (src/queue/bounce.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildDsn, headerSection, statusOf } from '../../src/queue/bounce.js';
import { DEFAULT_SCHEDULE, nextAttempt, parseSchedule } from '../../src/queue/retry.js';
import { parseMimeStructure } from '../../src/message/mime.js';

const MIN = 60_000;

test('schedule: parsed from the setting, default when invalid; the last wait repeats; expiry at max age', () => {
  assert.deepEqual(parseSchedule('5m, 10m,1h'), [5 * MIN, 10 * MIN, 60 * MIN]);
  assert.deepEqual(parseSchedule('soon'), DEFAULT_SCHEDULE);
  assert.deepEqual(parseSchedule(''), DEFAULT_SCHEDULE);
  const created = new Date(0);
  const now = new Date(10 * MIN);
  assert.deepEqual(nextAttempt(1, created, now, [5 * MIN, 60 * MIN], 5 * 86_400_000), { kind: 'retry', at: new Date(15 * MIN) });
  assert.deepEqual(nextAttempt(9, created, now, [5 * MIN, 60 * MIN], 5 * 86_400_000), { kind: 'retry', at: new Date(70 * MIN) });
  // The next wait would pass the deadline: one last try at the deadline itself.
  assert.deepEqual(nextAttempt(3, created, new Date(100 * MIN), [60 * MIN], 120 * MIN), { kind: 'retry', at: new Date(120 * MIN) });
  assert.deepEqual(nextAttempt(4, created, new Date(120 * MIN), [60 * MIN], 120 * MIN), { kind: 'expire' });
});

test('status codes come from the reply when it has one, else from its class (rfc3463)', () => {
  assert.equal(statusOf({ address: 'a@b', orcpt: null, action: 'failed', diagnostic: '550 5.1.1 no such user', remoteMta: null }), '5.1.1');
  assert.equal(statusOf({ address: 'a@b', orcpt: null, action: 'failed', diagnostic: '554 rejected', remoteMta: null }), '5.0.0');
  assert.equal(statusOf({ address: 'a@b', orcpt: null, action: 'delayed', diagnostic: 'connection refused', remoteMta: null }), '4.0.0');
  assert.equal(statusOf({ address: 'a@b', orcpt: null, action: 'failed', diagnostic: 'x', remoteMta: null, status: '5.4.7' }), '5.4.7');
});

test('a failure DSN is a multipart/report with the notification, the delivery-status fields and the message (rfc3464)', () => {
  const original = Buffer.from('From: a@here.test\r\nTo: b@far.test\r\nSubject: hi\r\n\r\nbody line\r\n');
  const dsn = buildDsn({
    reportingMta: 'mx.here.test',
    queueId: 42,
    to: 'a@here.test',
    envId: 'ENV1',
    arrivalDate: new Date('2026-11-25T10:00:00Z'),
    recipients: [
      { address: 'b@far.test', orcpt: 'rfc822;B@far.test', action: 'failed', diagnostic: '550 5.1.1 <b@far.test>: unknown user', remoteMta: 'mx.far.test' },
    ],
    original,
    originalIsHeadersOnly: false,
    now: new Date('2026-11-25T10:05:00Z'),
  });
  const text = dsn.toString('utf8');
  assert.match(text, /^From: Mail Delivery System <MAILER-DAEMON@mx\.here\.test>\r\n/);
  assert.match(text, /\r\nSubject: Undelivered Mail Returned to Sender\r\n/);
  assert.match(text, /\r\nAuto-Submitted: auto-replied\r\n/);
  assert.match(text, /Content-Type: multipart\/report; report-type=delivery-status; boundary="/);
  for (const field of [
    'Reporting-MTA: dns; mx.here.test',
    'Original-Envelope-Id: ENV1',
    'Final-Recipient: rfc822; b@far.test',
    'Original-Recipient: rfc822; B@far.test',
    'Action: failed',
    'Status: 5.1.1',
    'Remote-MTA: dns; mx.far.test',
    'Diagnostic-Code: smtp; 550 5.1.1 <b@far.test>: unknown user',
  ]) {
    assert.ok(text.includes(`\r\n${field}\r\n`), field);
  }
  const root = parseMimeStructure(dsn);
  assert.equal(root.type, 'multipart');
  assert.equal(root.subtype, 'report');
  assert.deepEqual(root.parts.map((p) => `${p.type}/${p.subtype}`), ['text/plain', 'message/delivery-status', 'message/rfc822']);
  const returned = root.parts[2]!;
  assert.equal(dsn.subarray(returned.bodyStart, returned.end).toString(), original.toString());
});

test('a delay DSN returns only the headers and says until when it will retry; CR/LF from outside cannot inject headers', () => {
  const dsn = buildDsn({
    reportingMta: 'mx.here.test',
    queueId: 7,
    to: 'a@here.test\r\nBcc: evil@x',
    envId: null,
    arrivalDate: new Date(0),
    recipients: [{ address: 'b@far.test', orcpt: null, action: 'delayed', diagnostic: '451 4.3.0 try later\r\nX-Evil: 1', remoteMta: null }],
    original: headerSection(Buffer.from('Subject: s\r\n\r\nsecret body')),
    originalIsHeadersOnly: true,
    willRetryUntil: new Date(5 * 86_400_000),
  });
  const text = dsn.toString();
  assert.match(text, /Subject: Delayed Mail \(still being retried\)/);
  assert.match(text, /\r\nAction: delayed\r\nStatus: 4\.3\.0\r\n/);
  assert.match(text, /\r\nWill-Retry-Until: /);
  assert.match(text, /Content-Type: text\/rfc822-headers/);
  assert.ok(!text.includes('secret body'));
  assert.ok(!/\r\nBcc:/.test(text) && !/\r\nX-Evil:/.test(text));
});
