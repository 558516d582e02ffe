/** IDLE (rfc2177, rfc9051 6.3.13): the session sends updates as they happen until DONE. */
import type { ImapSession } from '../session.js';
import type { Completion } from './table.js';

export async function idle(session: ImapSession, tag: string): Promise<Completion> {
  await session.beginIdle(tag);
  return { status: 'deferred' };
}
