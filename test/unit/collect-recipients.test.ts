// DomainPOP recipient extraction (collect/domainpop/recipients.ts) and the facts read from a
// collected message's header (collect/message-facts.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { extractRecipients, receivedFor, type RecipientRules } from '../../src/collect/domainpop/recipients.js';
import { headerKey, messageKey, senderOf } from '../../src/collect/message-facts.js';
import { parseHeaderBlock } from '../../src/message/header.js';

function fields(header: string) {
  return parseHeaderBlock(Buffer.from(header.replace(/\r?\n/g, '\r\n') + '\r\n'), { final: true }).fields;
}

const HEADERS: RecipientRules = {
  mode: 'headers',
  envelopeHeader: null,
  envelopeOccurrence: 1,
  stripPrefix: null,
  headers: ['To', 'Cc', 'X-Rcpt-To', 'X-MDRcpt-To', 'X-Delivered-To'],
  received: false,
  skipReceived: 0,
  stopAtLocal: false,
  subjectParens: false,
  domain: 'example.com',
};
const ENVELOPE: RecipientRules = { ...HEADERS, mode: 'envelope', envelopeHeader: 'X-Rcpt-To' };
const local = async (a: string) => a.endsWith('@example.com');

async function addresses(header: string, rules: RecipientRules): Promise<string[]> {
  return (await extractRecipients(fields(header), rules, local)).map((c) => `${c.address} <${c.source}>`);
}

test('envelope mode: the named header, its Nth occurrence from the top, one recipient', async () => {
  const h = 'Delivered-To: first@example.com\nDelivered-To: <Second@Example.COM>\nTo: other@example.com\n';
  assert.deepEqual(await addresses(h, { ...ENVELOPE, envelopeHeader: 'Delivered-To' }), ['first@example.com <Delivered-To#1>']);
  assert.deepEqual(await addresses(h, { ...ENVELOPE, envelopeHeader: 'delivered-to', envelopeOccurrence: 2 }), ['Second@example.com <Delivered-To#2>']);
  assert.deepEqual(await addresses(h, { ...ENVELOPE, envelopeHeader: 'Delivered-To', envelopeOccurrence: 3 }), []);
  assert.deepEqual(await addresses('To: a@example.com\n', ENVELOPE), [], 'no envelope header: nobody (the postmaster gets it)');
  assert.deepEqual(await addresses('X-Rcpt-To: rfc822;bob@example.com\n', ENVELOPE), ['bob@example.com <X-Rcpt-To#1>']);
});

test('envelope mode: a prefix is stripped and the address moved into the source domain (qmail virtual domains)', async () => {
  const rules = { ...ENVELOPE, envelopeHeader: 'Delivered-To', stripPrefix: 'example.com-' };
  assert.deepEqual(await addresses('Delivered-To: example.com-bob@isp.test\n', rules), ['bob@example.com <Delivered-To#1>']);
  assert.deepEqual(await addresses('Delivered-To: carol@example.com\n', rules), ['carol@example.com <Delivered-To#1>'], 'no prefix: as written');
});

test('headers mode: the union of the listed headers, groups, comments, encoded names, several per line', async () => {
  const h = [
    'To: "Bob" <bob@example.com>, carol@example.com (Carol), team: dave@example.com, eve@Example.com;',
    'Cc: =?utf-8?q?J=C3=B6rg?= <joerg@example.com>, undisclosed-recipients:;',
    'Cc: BOB@example.com',
    'Bcc: hidden@example.com',
    'X-Rcpt-To: frank@example.com',
  ].join('\n');
  const got = await extractRecipients(fields(h), HEADERS, local);
  assert.deepEqual(
    got.map((c) => c.address),
    ['bob@example.com', 'carol@example.com', 'dave@example.com', 'eve@example.com', 'joerg@example.com', 'frank@example.com'],
  );
  assert.equal(got.find((c) => c.address === 'joerg@example.com')?.name, 'Jörg');
  assert.equal(got.find((c) => c.address === 'frank@example.com')?.source, 'X-Rcpt-To');
});

test('headers mode: Subject parentheses and Received "for" clauses when asked', async () => {
  const h = [
    'Received: from edge.isp.test by mx1.isp.test for <skipped@example.com>; Mon, 1 Jan 2029 00:00:00 +0000',
    'Received: from a by b (Postfix) with ESMTP id 1 for <far@remote.test>; Mon, 1 Jan 2029 00:00:00 +0000',
    'Received: from a by b with SMTP id 2 for gina@example.com; Mon, 1 Jan 2029 00:00:00 +0000',
    'Received: from a by b with SMTP id 3 for <late@example.com>; Mon, 1 Jan 2029 00:00:00 +0000',
    'Subject: Re: hi (eve@example.com) and (not an address)',
    'To: list@lists.test',
  ].join('\n');
  assert.deepEqual(await addresses(h, HEADERS), ['list@lists.test <To>']);
  assert.deepEqual(await addresses(h, { ...HEADERS, subjectParens: true }), ['list@lists.test <To>', 'eve@example.com <Subject>']);
  assert.deepEqual(await addresses(h, { ...HEADERS, received: true, skipReceived: 1 }), [
    'list@lists.test <To>',
    'far@remote.test <Received#2>',
    'gina@example.com <Received#3>',
    'late@example.com <Received#4>',
  ]);
  assert.deepEqual(await addresses(h, { ...HEADERS, received: true, skipReceived: 1, stopAtLocal: true }), [
    'list@lists.test <To>',
    'far@remote.test <Received#2>',
    'gina@example.com <Received#3>',
  ]);
  const fromReceived = await extractRecipients(fields(h), { ...HEADERS, received: true }, local);
  assert.equal(fromReceived.find((c) => c.address === 'far@remote.test')?.fromReceived, true);
});

test('receivedFor reads the for clause only, not from/by host names', () => {
  assert.equal(receivedFor('from x.test (x.test [192.0.2.1]) by y.test with ESMTP id 1 for <a@b.test>; date'), 'a@b.test');
  assert.equal(receivedFor('from for.test by y.test; date'), null);
  assert.equal(receivedFor('from a by b id 1 for a@B.Test;Mon'), 'a@b.test');
  assert.equal(receivedFor('by b with SMTP; Mon, 1 Jan 2029'), null);
});

test('at most 500 candidates per message; junk addresses are ignored', async () => {
  const many = Array.from({ length: 700 }, (_, i) => `u${i}@example.com`).join(', ');
  assert.equal((await extractRecipients(fields(`To: ${many}\n`), HEADERS, local)).length, 500);
  assert.deepEqual(await addresses('To: not-an-address, @example.com, a@, <>, x@exa..mple.com, y@-bad.test\n', HEADERS), []);
});

test('senderOf: Return-Path, else Sender, else From; <> is the null sender', () => {
  assert.equal(senderOf(fields('Return-Path: <bounce@list.test>\nFrom: a@b.test\n')), 'bounce@list.test');
  assert.equal(senderOf(fields('Return-Path: <>\nFrom: a@b.test\n')), '');
  assert.equal(senderOf(fields('Sender: s@list.test\nFrom: "A" <a@B.test>\n')), 's@list.test');
  assert.equal(senderOf(fields('From: "A" <a@B.test>\n')), 'a@b.test');
  assert.equal(senderOf(fields('Subject: none\n')), '');
});

test('messageKey: the Message-ID exactly, or the Date; none when missing or off', () => {
  assert.equal(messageKey(fields('Message-ID: <Abc@x.test> (comment)\n'), 'Message-ID'), 'mid:<Abc@x.test>');
  assert.equal(messageKey(fields('Message-Id:\n <abc@x.test>\n'), 'Message-ID'), 'mid:<abc@x.test>');
  assert.equal(messageKey(fields('Subject: x\n'), 'Message-ID'), null);
  assert.equal(messageKey(fields('Message-ID: garbage\n'), 'Message-ID'), null);
  assert.equal(messageKey(fields('Date: Mon, 1 Jan 2029 00:00:00 +0000\n'), 'Date'), 'date:Mon, 1 Jan 2029 00:00:00 +0000');
  assert.equal(messageKey(fields('Message-ID: <a@x>\n'), 'off'), null);
});

test('headerKey: the same key from TOP n 0 (with its empty line) and from the header kept at RETR', () => {
  const top = Buffer.from('From: a@b.test\r\nSubject: x\r\n\r\n');
  const spooled = Buffer.from('From: a@b.test\r\nSubject: x\r\n');
  assert.equal(headerKey(top), headerKey(spooled));
  assert.match(headerKey(top), /^hdr-[0-9a-f]{40}$/);
  assert.notEqual(headerKey(Buffer.from('From: a@b.test\r\nSubject: y\r\n')), headerKey(spooled));
});
