/**
 * The IMAP command parser: one framed command (text and literal segments) in, a typed command
 * (`imap/ast.ts`) or a typed error out.
 *
 * Purpose: syntax only. Whether a command is allowed in the session's state, whether an
 * extension was enabled (CONDSTORE, QRESYNC, UTF8=ACCEPT…), whether a charset is supported, and
 * every policy decision belong to the session and the command handlers.
 *
 * Invariants
 * - Pure and total: `parseCommand` never throws; every failure is `{ ok: false, tag, error }`,
 *   where `tag` is set whenever the tag itself was valid (the session replies `tag BAD error`,
 *   or `* BAD error` without one) and `error` names what is wrong in a few words.
 * - Keywords (command names, FETCH attributes, search keys, options) are case-insensitive and
 *   come out upper-cased; system flags come out in their canonical case (`\Seen`); keywords,
 *   strings and mailbox names keep their case, except that the mailbox name INBOX is
 *   case-insensitive (rfc9051 5.1) and comes out as `INBOX`.
 * - Mailbox names, LIST references and patterns come out decoded: from modified UTF-7
 *   (rfc3501 5.1.3) unless `options.utf8` (rfc6855 3: after ENABLE UTF8=ACCEPT they are UTF-8,
 *   and invalid UTF-8 is an error). `MailboxArg.raw` keeps the wire form for messages.
 * - Numbers: `number`/`nz-number` are 32-bit (rfc9051 9); `number64` and mod-sequences go up
 *   to 2^63-1 and come out clamped at Number.MAX_SAFE_INTEGER (see MAX_NUMBER64).
 *
 * Security: the segments are untrusted; their total size is bounded by the framer
 * (`imap/framer.ts`). Recursion happens only in search keys and is capped at MAX_SEARCH_DEPTH
 * levels, so no input can overflow the stack. Nothing allocates more than a small multiple of
 * the input. Literals with NUL are refused where a string is expected (rfc9051 4.3: CHAR8); a
 * literal8 (`~{n}`) is accepted only as APPEND data.
 *
 * Standards: rfc3501 9 and rfc9051 9 (formal syntax), rfc4466 (extended syntax), rfc2971 (ID),
 * rfc3502 (MULTIAPPEND), rfc3516 (BINARY), rfc4315 (UIDPLUS), rfc4731 (ESEARCH), rfc4959
 * (SASL-IR), rfc4978 (COMPRESS), rfc5032 (WITHIN), rfc5161 (ENABLE), rfc5182 (SEARCHRES),
 * rfc5258 (LIST-EXTENDED), rfc5819 (LIST-STATUS), rfc6154 (SPECIAL-USE), rfc6851 (MOVE),
 * rfc6855 (UTF8=ACCEPT), rfc7162 (CONDSTORE, QRESYNC), rfc7888 (LITERAL+), rfc8438
 * (STATUS=SIZE), rfc7889 (APPENDLIMIT), rfc9208 (QUOTA), rfc2177 (IDLE), rfc3691 (UNSELECT).
 */
import type {
  AppendMessage,
  Command,
  FetchAttribute,
  FetchModifiers,
  ListCommand,
  ParseResult,
  QresyncParams,
  SearchKey,
  SearchProgram,
  SearchReturnOption,
  SelectParams,
  StatusItem,
} from './ast.js';
import { TextDecoder } from 'node:util';
import type { Segment } from './framer.js';
import {
  ATOM,
  BACKSLASH,
  Bad,
  bad,
  CLASS,
  DQUOTE,
  LIST,
  LPAREN,
  MAX_NUMBER64,
  MAX_SEARCH_DEPTH,
  normalize,
  Reader,
  RPAREN,
  short,
  SP,
  SPECIAL_USE,
  STATUS_ITEMS,
  TAG,
} from './parse-reader.js';

export interface ParseOptions {
  /** UTF8=ACCEPT is enabled (rfc6855): mailbox names are UTF-8, not modified UTF-7. */
  utf8: boolean;
}

export { MAX_SEARCH_DEPTH };

// --- commands -----------------------------------------------------------------------------

type CommandParser = (r: Reader, uid: boolean) => Command;

function noArgs(name: 'CAPABILITY' | 'NOOP' | 'LOGOUT' | 'STARTTLS' | 'NAMESPACE' | 'IDLE' | 'CHECK' | 'CLOSE' | 'UNSELECT' | 'EXPUNGE'): CommandParser {
  return () => ({ name });
}

function parseAuthenticate(r: Reader): Command {
  // rfc9051 6.2.2: authenticate = "AUTHENTICATE" SP auth-type [SP initial-resp]; rfc4959 7
  r.sp('mechanism');
  const mechanism = r.keyword('a SASL mechanism');
  let initialResponse: string | null = null;
  if (r.skip(SP)) {
    const text = r.runOf((c) => (CLASS[c]! & ATOM) !== 0);
    // initial-resp = (base64 / "="); base64 = *(4base64-char) [base64-terminal]
    if (text === '=') initialResponse = '';
    else if (text.length > 0 && text.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(text)) initialResponse = text;
    else bad('Invalid initial response');
  }
  return { name: 'AUTHENTICATE', mechanism, initialResponse };
}

function parseLogin(r: Reader): Command {
  r.sp('user name');
  const username = r.text('a user name');
  r.sp('password');
  const password = r.text('a password');
  return { name: 'LOGIN', username, password };
}

function parseEnable(r: Reader): Command {
  // rfc5161 4: enable = "ENABLE" 1*(SP capability)
  const capabilities: string[] = [];
  r.sp('capability');
  for (;;) {
    capabilities.push(r.keyword('a capability'));
    if (!r.skip(SP)) break;
  }
  return { name: 'ENABLE', capabilities };
}

/** select-params (rfc4466 2.1, rfc7162 3.1.8 and 3.2.5). */
function parseSelectParams(r: Reader): SelectParams {
  const params: SelectParams = { condstore: false, qresync: null };
  if (!r.skip(SP)) return params;
  r.list(() => {
    const name = r.keyword('a SELECT parameter');
    if (name === 'CONDSTORE') {
      params.condstore = true;
    } else if (name === 'QRESYNC') {
      // "QRESYNC" SP "(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")"
      r.sp();
      r.expect(LPAREN, 'Invalid QRESYNC parameter');
      const uidValidity = r.nzNumber('UIDVALIDITY');
      r.sp();
      const modSeq = r.modSeq(false);
      const q: QresyncParams = { uidValidity, modSeq, knownUids: null, seqMatch: null };
      if (r.skip(SP)) {
        if (r.peek() !== LPAREN) {
          // known-uids = sequence-set, without "*" (rfc7162 3.2.5)
          q.knownUids = r.sequenceSet({ star: false, saved: false });
          if (r.peek() === SP && r.peek(1) === LPAREN) r.pos++;
        }
        if (r.skip(LPAREN)) {
          // seq-match-data = "(" known-sequence-set SP known-uid-set ")"
          const seqs = r.sequenceSet({ star: false, saved: false });
          r.sp();
          const uids = r.sequenceSet({ star: false, saved: false });
          r.expect(RPAREN, 'Invalid QRESYNC sequence match data');
          q.seqMatch = { seqs, uids };
        }
      }
      r.expect(RPAREN, 'Invalid QRESYNC parameter');
      params.qresync = q;
    } else {
      bad(`Unknown SELECT parameter ${short(name)}`);
    }
  }, 'SELECT parameters', 0);
  return params;
}

function parseSelect(name: 'SELECT' | 'EXAMINE'): CommandParser {
  return (r) => {
    r.sp('mailbox name');
    const mailbox = r.mailbox();
    return { name, mailbox, params: parseSelectParams(r) };
  };
}

function parseCreate(r: Reader): Command {
  r.sp('mailbox name');
  const mailbox = r.mailbox();
  const specialUse: string[] = [];
  if (r.skip(SP)) {
    // rfc4466 2.2 create-params; rfc6154 5.2: create-param =/ "USE" SP "(" [use-attr *(SP use-attr)] ")"
    r.list(() => {
      const param = r.keyword('a CREATE parameter');
      if (param !== 'USE') bad(`Unknown CREATE parameter ${short(param)}`);
      r.sp();
      r.list(() => {
        r.expect(BACKSLASH, 'Invalid special-use attribute');
        const attr = `\\${r.atom('a special-use attribute')}`;
        specialUse.push(SPECIAL_USE.get(attr.toUpperCase()) ?? attr);
      }, 'special-use attributes', 0);
    }, 'CREATE parameters');
  }
  return { name: 'CREATE', mailbox, specialUse };
}

function parseMailboxOnly(name: 'DELETE' | 'SUBSCRIBE' | 'UNSUBSCRIBE'): CommandParser {
  return (r) => {
    r.sp('mailbox name');
    return { name, mailbox: r.mailbox() };
  };
}

function parseRename(r: Reader): Command {
  r.sp('mailbox name');
  const from = r.mailbox();
  r.sp('new mailbox name');
  const to = r.mailbox('new mailbox name');
  return { name: 'RENAME', from, to };
}

function statusItem(r: Reader): StatusItem {
  const item = r.keyword('a status item');
  if (!STATUS_ITEMS.has(item as StatusItem)) bad(`Unknown status item ${short(item)}`);
  return item as StatusItem;
}

/**
 * rfc9051 6.3.9 / rfc5258 6: list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat
 * [SP list-return-opts].
 */
function parseList(r: Reader): Command {
  r.sp('reference');
  const list: ListCommand = {
    selection: [],
    reference: '',
    patterns: [],
    returnOptions: { subscribed: false, children: false, specialUse: false, status: null },
    basic: true,
  };
  if (r.peek() === LPAREN) {
    list.basic = false;
    list.selection = r.list(() => {
      const opt = r.keyword('a selection option');
      // rfc5258 3.1 (SUBSCRIBED, REMOTE, RECURSIVEMATCH), rfc6154 5.1 (SPECIAL-USE);
      // rfc5258 3: an unrecognised selection option is a BAD.
      if (!['SUBSCRIBED', 'REMOTE', 'RECURSIVEMATCH', 'SPECIAL-USE'].includes(opt)) bad(`Unknown LIST selection option ${short(opt)}`);
      return opt;
    }, 'selection options', 0);
    // rfc5258 3.1: RECURSIVEMATCH needs another option that it modifies.
    if (list.selection.includes('RECURSIVEMATCH') && !list.selection.some((o) => o === 'SUBSCRIBED' || o === 'SPECIAL-USE')) {
      bad('RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE');
    }
    r.sp('reference');
  }
  list.reference = r.decodeName(r.astring('a reference name'), 'Reference');
  r.sp('mailbox pattern');
  if (r.peek() === LPAREN) {
    // rfc5258 6: patterns = "(" list-mailbox *(SP list-mailbox) ")"
    list.basic = false;
    list.patterns = r.list(() => r.listMailbox(), 'mailbox patterns');
  } else {
    list.patterns = [r.listMailbox()];
  }
  if (r.skip(SP)) {
    // list-return-opts = "RETURN" SP "(" [return-option *(SP return-option)] ")"
    if (r.keyword('RETURN') !== 'RETURN') bad('Expected RETURN');
    list.basic = false;
    r.sp();
    const ret = list.returnOptions;
    r.list(() => {
      const opt = r.keyword('a return option');
      if (opt === 'SUBSCRIBED') ret.subscribed = true;
      else if (opt === 'CHILDREN') ret.children = true;
      else if (opt === 'SPECIAL-USE') ret.specialUse = true;
      else if (opt === 'STATUS') {
        // rfc5819 6: status-option = "STATUS" SP "(" status-att *(SP status-att) ")"
        r.sp();
        ret.status = r.list(() => statusItem(r), 'status items');
      } else bad(`Unknown LIST return option ${short(opt)}`);
    }, 'return options', 0);
  }
  return { name: 'LIST', list };
}

function parseLsub(r: Reader): Command {
  r.sp('reference');
  const reference = r.decodeName(r.astring('a reference name'), 'Reference');
  r.sp('mailbox pattern');
  return { name: 'LSUB', reference, pattern: r.listMailbox() };
}

function parseStatus(r: Reader): Command {
  r.sp('mailbox name');
  const mailbox = r.mailbox();
  r.sp('status items');
  return { name: 'STATUS', mailbox, items: r.list(() => statusItem(r), 'status items') };
}

/**
 * rfc3502 6.3 / rfc9051 6.3.12: append = "APPEND" SP mailbox 1*append-message; append-message =
 * [SP flag-list] [SP date-time] SP (literal / literal8); rfc6855 4: append-data =/ "UTF8" SP "("
 * literal8 ")".
 */
function parseAppend(r: Reader): Command {
  r.sp('mailbox name');
  const mailbox = r.mailbox();
  const messages: AppendMessage[] = [];
  do {
    r.sp('message literal');
    let flags: string[] = [];
    let internalDate: Date | null = null;
    if (r.peek() === LPAREN) {
      flags = r.flagList();
      r.sp('message literal');
    }
    if (r.peek() === DQUOTE) {
      internalDate = r.dateTime();
      r.sp('message literal');
    }
    let utf8Data = false;
    if ((r.peek() | 0x20) === 0x75 /* u */) {
      if (r.keyword('UTF8') !== 'UTF8') bad('Expected a message literal');
      r.sp();
      r.expect(LPAREN, 'Expected "(" after UTF8');
      utf8Data = true;
    }
    if (!r.atLiteral()) bad('Expected a message literal');
    const seg = r.takeLiteral();
    if (utf8Data) {
      if (!seg.binary) bad('UTF8 data must be a literal8');
      r.expect(RPAREN, 'Expected ")" after UTF8 data');
    }
    const binary = seg.binary && !utf8Data;
    const data = seg.kind === 'streamed' ? { streamed: seg.id, size: seg.size } : seg.bytes;
    messages.push({ flags, internalDate, data, binary });
  } while (!r.atEnd());
  return { name: 'APPEND', mailbox, messages };
}

/**
 * rfc9051 6.4.4 / rfc4731 3: search = "SEARCH" [search-return-opts] SP search-program;
 * search-program = ["CHARSET" SP charset SP] search-key *(SP search-key).
 */
function parseSearch(r: Reader, uid: boolean): Command {
  r.sp('search keys');
  const program: SearchProgram = { returnOptions: null, charset: null, criteria: { kind: 'and', keys: [] } };
  const peekWord = (): string => {
    const save = r.pos;
    const w = r.run(ATOM).toUpperCase();
    r.pos = save;
    return w;
  };
  if (peekWord() === 'RETURN') {
    r.run(ATOM);
    r.sp();
    const opts = r.list(() => {
      const opt = r.keyword('a search return option');
      if (!['MIN', 'MAX', 'ALL', 'COUNT', 'SAVE'].includes(opt)) bad(`Unknown search return option ${short(opt)}`);
      return opt as SearchReturnOption;
    }, 'search return options', 0);
    program.returnOptions = [...new Set(opts)];
    r.sp('search keys');
  }
  if (peekWord() === 'CHARSET') {
    r.run(ATOM);
    r.sp('charset');
    const charset = r.astring('a charset').toString('latin1').toUpperCase();
    program.charset = charset;
    if (charset !== 'UTF-8' && charset !== 'US-ASCII') {
      // Strings are decoded with the charset when Node knows it; if it does not, the handler
      // replies NO [BADCHARSET] (rfc9051 6.4.4), so the strings' decoding does not matter.
      r.charsetDecoder = charsetDecoder(charset);
    }
    r.sp('search keys');
  }
  const keys: SearchKey[] = [];
  for (;;) {
    keys.push(r.searchKey(1));
    if (r.atEnd()) break;
    r.sp();
  }
  program.criteria = { kind: 'and', keys };
  return { name: 'SEARCH', uid, program };
}

function charsetDecoder(charset: string): TextDecoder | null {
  try {
    return new TextDecoder(charset);
  } catch {
    return null;
  }
}

/** Whether SEARCH strings can be decoded from `charset` (for the handler's BADCHARSET check). */
export function isSupportedCharset(charset: string): boolean {
  const upper = charset.toUpperCase();
  return upper === 'UTF-8' || upper === 'US-ASCII' || charsetDecoder(charset) !== null;
}

const FETCH_MACROS = {
  // rfc9051 6.4.5
  ALL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE'],
  FAST: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE'],
  FULL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODY'],
} as const;

/**
 * rfc9051 6.4.5: fetch = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att /
 * "(" fetch-att *(SP fetch-att) ")") [fetch-modifiers] (rfc4466 2.4, rfc7162 3.1.4.1, 3.2.6).
 */
function parseFetch(r: Reader, uid: boolean): Command {
  r.sp('sequence set');
  const set = r.sequenceSet();
  r.sp('FETCH attributes');
  let attributes: FetchAttribute[];
  let macro: 'ALL' | 'FAST' | 'FULL' | null = null;
  if (r.peek() === LPAREN) {
    attributes = r.list(() => r.fetchAttribute(), 'FETCH attributes');
  } else {
    const save = r.pos;
    const word = r.run(ATOM).toUpperCase();
    if ((word === 'ALL' || word === 'FAST' || word === 'FULL') && r.atDelimiter()) {
      macro = word;
      attributes = FETCH_MACROS[word].map((kind) => ({ kind }));
    } else {
      r.pos = save;
      attributes = [r.fetchAttribute()];
    }
  }
  const modifiers: FetchModifiers = {};
  if (r.skip(SP)) {
    r.list(() => {
      const name = r.keyword('a FETCH modifier');
      if (name === 'CHANGEDSINCE') {
        r.sp();
        modifiers.changedSince = r.modSeq(true);
      } else if (name === 'VANISHED') {
        modifiers.vanished = true;
      } else {
        bad(`Unknown FETCH modifier ${short(name)}`);
      }
    }, 'FETCH modifiers');
    // rfc7162 3.2.6: VANISHED only in UID FETCH, and only with CHANGEDSINCE.
    if (modifiers.vanished === true && (!uid || modifiers.changedSince === undefined)) bad('VANISHED needs UID FETCH with CHANGEDSINCE');
  }
  return { name: 'FETCH', uid, set, attributes, modifiers, macro };
}

/**
 * rfc9051 6.4.6: store = "STORE" SP sequence-set [store-modifiers] SP store-att-flags;
 * store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)));
 * rfc7162 3.1.3: store-modifier = "UNCHANGEDSINCE" SP mod-sequence-valzer.
 */
function parseStore(r: Reader, uid: boolean): Command {
  r.sp('sequence set');
  const set = r.sequenceSet();
  r.sp('FLAGS');
  let unchangedSince: number | null = null;
  if (r.peek() === LPAREN) {
    r.list(() => {
      const name = r.keyword('a STORE modifier');
      if (name !== 'UNCHANGEDSINCE') bad(`Unknown STORE modifier ${short(name)}`);
      r.sp();
      unchangedSince = r.modSeq(true);
    }, 'STORE modifiers');
    r.sp('FLAGS');
  }
  let mode: 'add' | 'remove' | 'set' = 'set';
  if (r.skip(0x2b /* + */)) mode = 'add';
  else if (r.skip(0x2d /* - */)) mode = 'remove';
  const item = r.runOf((c) => (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a || c === 0x2e).toUpperCase();
  if (item !== 'FLAGS' && item !== 'FLAGS.SILENT') bad('Expected FLAGS, +FLAGS or -FLAGS');
  r.sp('flags');
  let flags: string[];
  if (r.peek() === LPAREN) {
    flags = r.flagList();
  } else {
    flags = [r.flag()];
    while (r.skip(SP)) flags.push(r.flag());
  }
  return { name: 'STORE', uid, set, mode, silent: item === 'FLAGS.SILENT', flags, unchangedSince };
}

function parseCopy(name: 'COPY' | 'MOVE'): CommandParser {
  return (r, uid) => {
    r.sp('sequence set');
    const set = r.sequenceSet();
    r.sp('mailbox name');
    return { name, uid, set, mailbox: r.mailbox() };
  };
}

function parseUidExpunge(r: Reader): Command {
  // rfc4315 2.1: uid-expunge = "EXPUNGE" SP sequence-set
  r.sp('sequence set');
  return { name: 'UID EXPUNGE', set: r.sequenceSet() };
}

function parseId(r: Reader): Command {
  // rfc2971 4: id = "ID" SP id-params-list; id-params-list = "(" #(string SP nstring) ")" / nil
  r.sp('ID parameters');
  if (r.peek() !== LPAREN) {
    if (r.run(ATOM).toUpperCase() !== 'NIL') bad('Expected a list of ID parameters or NIL');
    return { name: 'ID', params: null };
  }
  const params = r.list((): [string, string | null] => {
    const key = r.string('an ID field name').toString('utf8');
    r.sp('ID field value');
    const value = r.nstring('an ID field value or NIL');
    return [key, value === null ? null : value.toString('utf8')];
  }, 'ID parameters', 0);
  return { name: 'ID', params };
}

function parseGetQuota(r: Reader): Command {
  // rfc9208 4.1.1: getquota = "GETQUOTA" SP quota-root-name; quota-root-name = astring
  r.sp('quota root');
  return { name: 'GETQUOTA', root: r.text('a quota root') };
}

function parseGetQuotaRoot(r: Reader): Command {
  r.sp('mailbox name');
  return { name: 'GETQUOTAROOT', mailbox: r.mailbox() };
}

function parseSetQuota(r: Reader): Command {
  // rfc9208 4.1.3: setquota = "SETQUOTA" SP quota-root-name SP setquota-list;
  // setquota-list = "(" [setquota-resource *(SP setquota-resource)] ")";
  // setquota-resource = resource-name SP resource-limit; resource-limit = number64
  r.sp('quota root');
  const root = r.text('a quota root');
  r.sp('quota limits');
  const limits = r.list((): [string, number] => {
    const resource = r.keyword('a resource name');
    r.sp();
    return [resource, r.number('resource limit', MAX_NUMBER64)];
  }, 'quota limits', 0);
  return { name: 'SETQUOTA', root, limits };
}

function parseCompress(r: Reader): Command {
  // rfc4978 3: compress = "COMPRESS" SP algorithm; algorithm = "DEFLATE"
  r.sp('compression mechanism');
  return { name: 'COMPRESS', mechanism: r.keyword('a compression mechanism') };
}

const COMMANDS = new Map<string, CommandParser>(Object.entries({
  CAPABILITY: noArgs('CAPABILITY'),
  NOOP: noArgs('NOOP'),
  LOGOUT: noArgs('LOGOUT'),
  STARTTLS: noArgs('STARTTLS'),
  AUTHENTICATE: parseAuthenticate,
  LOGIN: parseLogin,
  ENABLE: parseEnable,
  SELECT: parseSelect('SELECT'),
  EXAMINE: parseSelect('EXAMINE'),
  CREATE: parseCreate,
  DELETE: parseMailboxOnly('DELETE'),
  RENAME: parseRename,
  SUBSCRIBE: parseMailboxOnly('SUBSCRIBE'),
  UNSUBSCRIBE: parseMailboxOnly('UNSUBSCRIBE'),
  LIST: parseList,
  LSUB: parseLsub,
  NAMESPACE: noArgs('NAMESPACE'),
  STATUS: parseStatus,
  APPEND: parseAppend,
  IDLE: noArgs('IDLE'),
  CHECK: noArgs('CHECK'),
  CLOSE: noArgs('CLOSE'),
  UNSELECT: noArgs('UNSELECT'),
  EXPUNGE: noArgs('EXPUNGE'),
  SEARCH: parseSearch,
  FETCH: parseFetch,
  STORE: parseStore,
  COPY: parseCopy('COPY'),
  MOVE: parseCopy('MOVE'),
  ID: parseId,
  GETQUOTA: parseGetQuota,
  GETQUOTAROOT: parseGetQuotaRoot,
  SETQUOTA: parseSetQuota,
  COMPRESS: parseCompress,
}));

/** rfc4315 2, rfc6851 3.3, rfc9051 6.4.9: the commands that take a UID prefix. */
const UID_COMMANDS = new Map<string, CommandParser>(Object.entries({
  FETCH: parseFetch,
  STORE: parseStore,
  SEARCH: parseSearch,
  COPY: parseCopy('COPY'),
  MOVE: parseCopy('MOVE'),
  EXPUNGE: parseUidExpunge,
}));

/**
 * Parse one framed command. `segments` is what the framer's `command` event carries (any list
 * of segments is accepted). Never throws.
 */
export function parseCommand(segments: readonly Segment[], options: ParseOptions): ParseResult {
  let tag: string | null = null;
  let name: string | null = null;
  try {
    const r = new Reader(normalize(segments), options.utf8);
    // rfc9051 9: command = tag SP (command-any / command-auth / command-nonauth / command-select) CRLF
    const t = r.run(TAG);
    if (t === '' || !(r.peek() === SP || r.atEnd())) return { ok: false, tag: null, error: 'Invalid tag' };
    tag = t;
    if (r.atEnd()) return { ok: false, tag, error: 'Missing command' };
    r.pos++;
    const word = r.run(ATOM).toUpperCase();
    if (word === '') return { ok: false, tag, error: 'Missing command' };
    if (!r.atEnd() && r.peek() !== SP) return { ok: false, tag, error: 'Invalid command name' };
    let parser = COMMANDS.get(word);
    let uid = false;
    if (word === 'UID') {
      // rfc9051 6.4.9: uid = "UID" SP (copy / move / fetch / search / store / uid-expunge)
      if (!r.skip(SP)) return { ok: false, tag, error: 'Missing command after UID' };
      const sub = r.run(ATOM).toUpperCase();
      parser = UID_COMMANDS.get(sub);
      if (parser === undefined) return { ok: false, tag, error: sub === '' ? 'Missing command after UID' : `Unknown command UID ${short(sub)}` };
      if (!r.atEnd() && r.peek() !== SP) return { ok: false, tag, error: 'Invalid command name' };
      uid = true;
      name = `UID ${sub}`;
    } else {
      if (parser === undefined) return { ok: false, tag, error: `Unknown command ${short(word)}` };
      name = word;
    }
    const command = parser(r, uid);
    if (!r.atEnd()) {
      return { ok: false, tag, error: `${name}: ${r.atLiteral() || r.peek() === SP ? 'Unexpected extra arguments' : 'Invalid arguments'}` };
    }
    return { ok: true, tag, command };
  } catch (e) {
    const message = e instanceof Bad ? e.message : 'Invalid command';
    return { ok: false, tag, error: name === null ? message : `${name}: ${message}` };
  }
}
