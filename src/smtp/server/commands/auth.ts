/**
 * AUTH (rfc4954) with PLAIN (rfc4616) and LOGIN: only over TLS unless auth.allow_plaintext.
 * A failed attempt is answered after auth.failure_delay, and counts as a session error.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { decodePlain, LoginExchange, type LoginStep, type SaslFailureReason } from '../../../directory/sasl.js';
import type { Reply } from '../replies.js';
import type { SmtpCommand } from '../parser.js';
import type { CommandContext } from './table.js';

function saslFailureReply(reason: SaslFailureReason, message: string): Reply {
  return reason === 'cancelled' ? { code: 501, enhanced: '5.0.0', text: message } : { code: 501, enhanced: '5.5.2', text: message };
}

export async function cmdAuth(ctx: CommandContext, command: Extract<SmtpCommand, { verb: 'AUTH' }>): Promise<void> {
  const s = ctx.session;
  if (!s.esmtp) {
    ctx.error({ code: 503, enhanced: '5.5.1', text: 'Send EHLO first' });
    return;
  }
  if (s.account !== null) {
    ctx.error({ code: 503, enhanced: '5.5.1', text: 'Already authenticated' });
    return;
  }
  if (!s.authAllowed) {
    ctx.error({ code: 538, enhanced: '5.7.11', text: 'Encryption required for requested authentication mechanism; use STARTTLS first' });
    return;
  }
  const mechanism = command.mechanism.toUpperCase();
  if (mechanism === 'PLAIN') {
    await respond(ctx, command.initialResponse, '', async (response) => {
      const decoded = decodePlain(response);
      if (!decoded.ok) {
        ctx.error(saslFailureReply(decoded.reason, decoded.error));
        return;
      }
      if (decoded.authzid !== '' && decoded.authzid.toLowerCase() !== decoded.authcid.toLowerCase()) {
        ctx.error({ code: 535, enhanced: '5.7.8', text: 'Authorization identity must be empty or the same as the login' });
        return;
      }
      await verify(ctx, decoded.authcid, decoded.password);
    });
    return;
  }
  if (mechanism === 'LOGIN') {
    const exchange = new LoginExchange();
    const step = async (result: LoginStep): Promise<void> => {
      if (result.kind === 'failed') {
        ctx.error(saslFailureReply(result.reason, result.error));
        return;
      }
      if (result.kind === 'done') {
        await verify(ctx, result.username, result.password);
        return;
      }
      await respond(ctx, null, result.challenge, async (line) => step(exchange.respond(line)));
    };
    await step(exchange.start(command.initialResponse));
    return;
  }
  ctx.error({ code: 504, enhanced: '5.5.4', text: `Unrecognized authentication type ${command.mechanism}; use PLAIN or LOGIN` });
}

/**
 * Continues the exchange with the client's response: the initial response when the command
 * carried one, else the line that answers a 334 challenge. The session keeps reading lines
 * meanwhile; the continuation runs when the answer arrives. `*` cancels (rfc4954 4).
 */
async function respond(ctx: CommandContext, initial: string | null, challenge: string, next: (response: string) => Promise<void>): Promise<void> {
  const s = ctx.session;
  // rfc4954 4: "=" is an empty initial response.
  if (initial !== null) return next(initial === '=' ? '' : initial);
  ctx.reply({ code: 334, text: challenge });
  s.receiver = {
    kind: 'sasl',
    onLine: async (line) => {
      s.receiver = { kind: 'command' };
      await next(line.trim());
    },
  };
}

async function verify(ctx: CommandContext, login: string, password: string): Promise<void> {
  const s = ctx.session;
  const { failures } = s.services;
  if (failures.blocked(s.remoteAddress, s.settings.get('auth.max_failures_per_ip'))) {
    s.log.warn({ event: 'smtp.auth_throttled', login }, 'too many failed logins from this address');
    ctx.error({ code: 454, enhanced: '4.7.0', text: 'Too many failed logins from your address; try again later' });
    return;
  }
  const account = await s.services.directory.authenticate(login, password, { cacheTtlMs: s.settings.get('auth.cache_ttl') });
  if (!account) {
    failures.record(s.remoteAddress);
    s.log.info({ event: 'smtp.auth_failed', login }, 'authentication failed');
    await sleep(s.settings.get('auth.failure_delay'));
    ctx.error({ code: 535, enhanced: '5.7.8', text: 'Authentication credentials invalid' });
    return;
  }
  s.account = account;
  s.log.info({ event: 'smtp.auth', login: account.address }, 'authenticated');
  ctx.reply({ code: 235, enhanced: '2.7.0', text: 'Authentication successful' });
}
