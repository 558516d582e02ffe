/**
 * DATA (rfc5321 4.1.1.4) and BDAT (rfc3030): stream the body into the spool, then commit and
 * reply. 250 is sent only after the commit resolved, i.e. once the message is durable.
 */
import { randomBytes } from 'node:crypto';
import { BdatReader, DataReader, type DataStats } from '../data-reader.js';
import type { SmtpCommand } from '../parser.js';
import { receivedHeader } from '../received.js';
import type { Reply } from '../replies.js';
import type { CommandContext } from './table.js';

// Random per process, so ids stay unique across restarts and across nodes sharing a database.
const PROCESS_TAG = randomBytes(3).toString('hex').toUpperCase();
let sequence = 0;

/** A queue id: sortable by time, unique, cheap (no random bytes per message). */
function newMessageId(): string {
  sequence = (sequence + 1) % 1_679_616; // 36^4
  return `${Date.now().toString(36).toUpperCase()}${PROCESS_TAG}${sequence.toString(36).toUpperCase().padStart(4, '0')}`;
}

function tooBigForConnection(limit: number): Reply {
  return { code: 552, enhanced: '5.3.4', text: `Message exceeds ${limit} bytes; closing connection` };
}

export async function cmdData(ctx: CommandContext, _command: Extract<SmtpCommand, { verb: 'DATA' }>): Promise<void> {
  const s = ctx.session;
  const tx = s.transaction!;
  if (s.bdatStarted) {
    ctx.error({ code: 503, enhanced: '5.5.1', text: 'DATA is not allowed after BDAT in one transaction' });
    return;
  }
  if (tx.recipientCount === 0) {
    // As Postfix: no RCPT at all is a sequence error; only refused ones mean no valid recipients.
    ctx.error(s.rcptAttempts === 0 ? { code: 503, enhanced: '5.5.1', text: 'Need RCPT command first' } : { code: 554, enhanced: '5.5.1', text: 'No valid recipients' });
    return;
  }
  const id = newMessageId();
  const spool = await tx.beginBody(receivedHeader(s, id));
  const reader = new DataReader({
    maxLineLength: s.settings.get('smtp.max_line_length'),
    bareNewline: s.settings.get('smtp.bare_newline') === 'reject' ? 'reject' : 'normalize',
  });
  const drop = s.settings.get('smtp.drop_connection_size');
  const started = Date.now();
  ctx.reply({ code: 354, text: 'End data with <CR><LF>.<CR><LF>' });
  s.receiver = {
    kind: 'stream',
    consume: async (chunk) => {
      const step = reader.push(chunk);
      if (drop > 0 && reader.stats.inputBytes > drop) {
        s.log.warn({ event: 'smtp.drop_connection', id, bytes: reader.stats.inputBytes }, 'transfer exceeded smtp.drop_connection_size');
        ctx.close(tooBigForConnection(drop), 'drop-connection-size');
        return null;
      }
      if (step.body.length > 0) await spool.write(step.body);
      if (!step.done) return null;
      s.receiver = { kind: 'command' };
      await finishMessage(ctx, id, step.stats, started);
      return step.rest;
    },
  };
}

export async function cmdBdat(ctx: CommandContext, command: Extract<SmtpCommand, { verb: 'BDAT' }>): Promise<void> {
  const s = ctx.session;
  const drop = s.settings.get('smtp.drop_connection_size');
  const sentSoFar = s.bdat?.reader.stats.inputBytes ?? 0;
  if (drop > 0 && sentSoFar + command.size > drop) {
    ctx.close(tooBigForConnection(drop), 'drop-connection-size');
    return;
  }
  let problem: Reply | null = null;
  if (s.state === 'connected' || s.state === 'greeted') problem = { code: 503, enhanced: '5.5.1', text: 'Need MAIL and RCPT commands first' };
  else if (s.transaction!.recipientCount === 0) problem = { code: 554, enhanced: '5.5.1', text: 'No valid recipients' };
  if (problem) {
    // rfc3030 2: the chunk is read and discarded whatever the verdict, then answered.
    const failed = problem;
    await discardChunk(ctx, command.size, () => ctx.error(failed));
    return;
  }
  if (!s.bdat) {
    const id = newMessageId();
    s.bdatStarted = true;
    s.bdat = {
      id,
      started: Date.now(),
      reader: new BdatReader({
        maxLineLength: s.settings.get('smtp.max_line_length'),
        bareNewline: s.settings.get('smtp.bare_newline') === 'reject' ? 'reject' : 'normalize',
      }),
      spool: await s.transaction!.beginBody(receivedHeader(s, id)),
    };
  }
  const bdat = s.bdat;
  bdat.reader.beginChunk(command.size);
  const endChunk = async (): Promise<void> => {
    if (!command.last) {
      ctx.reply({ code: 250, enhanced: '2.0.0', text: `${command.size} octets received` });
      return;
    }
    const tail = bdat.reader.finish();
    if (tail.length > 0) await bdat.spool.write(tail);
    await finishMessage(ctx, bdat.id, bdat.reader.stats, bdat.started);
  };
  if (command.size === 0) {
    await endChunk();
    return;
  }
  s.receiver = {
    kind: 'stream',
    consume: async (chunk) => {
      const step = bdat.reader.push(chunk);
      if (step.body.length > 0) await bdat.spool.write(step.body);
      if (!step.done) return null;
      s.receiver = { kind: 'command' };
      await endChunk();
      return step.rest;
    },
  };
}

async function discardChunk(ctx: CommandContext, size: number, then: () => void): Promise<void> {
  const s = ctx.session;
  if (size === 0) {
    then();
    return;
  }
  let remaining = size;
  s.receiver = {
    kind: 'stream',
    consume: async (chunk) => {
      const take = Math.min(remaining, chunk.length);
      remaining -= take;
      if (remaining > 0) return null;
      s.receiver = { kind: 'command' };
      then();
      return chunk.subarray(take);
    },
  };
}

/** After the last byte: refuse what breaks a rule, else commit and promise delivery. */
async function finishMessage(ctx: CommandContext, id: string, stats: DataStats, started: number): Promise<void> {
  const s = ctx.session;
  const tx = s.transaction!;
  let refusal: Reply | null = null;
  if (stats.bareNewline && s.settings.get('smtp.bare_newline') === 'reject') {
    refusal = { code: 554, enhanced: '5.6.0', text: 'Message contains a bare CR or LF; lines must end with CRLF (RFC 5321 2.3.8)' };
  } else if (stats.longLine) {
    refusal = { code: 554, enhanced: '5.6.0', text: `Message has a line longer than ${s.settings.get('smtp.max_line_length')} bytes` };
  }
  if (refusal) {
    s.log.info({ event: 'smtp.refused', id, reason: refusal.text }, 'message refused');
    await ctx.resetTransaction();
    ctx.reply(refusal);
    return;
  }
  let reply: Reply;
  try {
    const result = await tx.commit();
    if (result.ok) {
      s.messagesAccepted++;
      s.log.info(
        {
          event: 'smtp.accepted',
          id,
          from: tx.mailFrom,
          rcpts: tx.recipientCount,
          size: result.size,
          local: result.outcome.delivered.length,
          queued: result.outcome.queueId,
          ms: Date.now() - started,
          ...(result.auth ? { auth: result.auth.results, authAction: result.auth.action, authError: result.auth.error } : {}),
        },
        'message accepted',
      );
      reply = { code: 250, enhanced: '2.0.0', text: `Ok: queued as ${id}` };
    } else if (result.reason === 'dmarc-reject') {
      const what = `Email rejected per DMARC policy for ${result.domain}`;
      s.log.info({ event: 'smtp.refused', id, reason: result.reason, from: tx.mailFrom, auth: result.auth.results }, what);
      reply = { code: 550, enhanced: '5.7.1', text: what };
    } else {
      const what = result.reason === 'header-too-big' ? 'Message header exceeds the header size limit' : `Message size exceeds fixed maximum message size (${result.limit} bytes)`;
      s.log.info({ event: 'smtp.refused', id, reason: result.reason, size: result.size, limit: result.limit }, what);
      reply = { code: 552, enhanced: '5.3.4', text: what };
    }
  } catch (err) {
    s.log.error({ event: 'smtp.commit_failed', id, err }, 'could not store message');
    reply = { code: 451, enhanced: '4.3.0', text: 'Could not store the message; try again later' };
  }
  await ctx.resetTransaction();
  ctx.reply(reply);
}
