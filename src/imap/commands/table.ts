/**
 * The IMAP command table: for each command, the states it is valid in, whether it must hold
 * back expunge notifications, and its handler. The session checks the state once, here, for
 * every command (after Dovecot's and mox's tables).
 */
import type { Command, CommandName } from '../ast.js';
import type { ImapSession, ImapState } from '../session.js';
import { append } from './append.js';
import { authenticate, capability, compress, enable, id, login, logout, noop, starttls } from './connection.js';
import { copyOrMove } from './copy.js';
import { fetch } from './fetch.js';
import { idle } from './idle.js';
import { create, del, list, lsub, namespace, rename, status, subscribe } from './mailboxes.js';
import { getQuota, getQuotaRoot, setQuota } from './quota.js';
import { search } from './search.js';
import { check, close, expunge, select, uidExpunge, unselect } from './select.js';
import { store } from './store.js';

/** What a handler answers: the tagged status, or 'deferred' when it answered itself. */
export type Completion = { status: 'OK' | 'NO' | 'BAD'; code?: string; text: string } | { status: 'deferred' };

type Handler<N extends CommandName> = (session: ImapSession, tag: string, command: Extract<Command, { name: N }>) => Promise<Completion>;

interface Entry<N extends CommandName> {
  states: readonly ImapState[];
  /** FETCH, STORE and SEARCH by sequence number must not be answered with EXPUNGE (rfc9051 7.5.1). */
  holdsExpunges?: boolean;
  handler: Handler<N>;
}

const ANY: readonly ImapState[] = ['not-authenticated', 'authenticated', 'selected'];
const PRE_AUTH: readonly ImapState[] = ['not-authenticated'];
const AUTHED: readonly ImapState[] = ['authenticated', 'selected'];
const SELECTED: readonly ImapState[] = ['selected'];

export const COMMANDS: { [N in CommandName]: Entry<N> } = {
  CAPABILITY: { states: ANY, handler: capability },
  NOOP: { states: ANY, handler: noop },
  LOGOUT: { states: ANY, handler: logout },
  ID: { states: ANY, handler: id },
  STARTTLS: { states: PRE_AUTH, handler: starttls },
  AUTHENTICATE: { states: PRE_AUTH, handler: authenticate },
  LOGIN: { states: PRE_AUTH, handler: login },
  ENABLE: { states: AUTHED, handler: enable },
  COMPRESS: { states: AUTHED, handler: compress },
  SELECT: { states: AUTHED, handler: select },
  EXAMINE: { states: AUTHED, handler: select },
  CREATE: { states: AUTHED, handler: create },
  DELETE: { states: AUTHED, handler: del },
  RENAME: { states: AUTHED, handler: rename },
  SUBSCRIBE: { states: AUTHED, handler: subscribe },
  UNSUBSCRIBE: { states: AUTHED, handler: subscribe },
  LIST: { states: AUTHED, handler: list },
  LSUB: { states: AUTHED, handler: lsub },
  NAMESPACE: { states: AUTHED, handler: namespace },
  STATUS: { states: AUTHED, handler: status },
  APPEND: { states: AUTHED, handler: append },
  IDLE: { states: AUTHED, handler: idle },
  GETQUOTA: { states: AUTHED, handler: getQuota },
  GETQUOTAROOT: { states: AUTHED, handler: getQuotaRoot },
  SETQUOTA: { states: AUTHED, handler: setQuota },
  CHECK: { states: SELECTED, handler: check },
  CLOSE: { states: SELECTED, handler: close },
  UNSELECT: { states: SELECTED, handler: unselect },
  EXPUNGE: { states: SELECTED, handler: expunge },
  'UID EXPUNGE': { states: SELECTED, handler: uidExpunge },
  SEARCH: { states: SELECTED, holdsExpunges: true, handler: search },
  FETCH: { states: SELECTED, holdsExpunges: true, handler: fetch },
  STORE: { states: SELECTED, holdsExpunges: true, handler: store },
  COPY: { states: SELECTED, handler: copyOrMove },
  MOVE: { states: SELECTED, handler: copyOrMove },
};
