/**
 * The typed form of every IMAP command: what `imap/parser.ts` produces and `imap/commands/*`
 * consume. Nothing here parses or formats; it is the contract between the two.
 *
 * Standards: rfc3501 9 and rfc9051 9 (formal syntax); rfc4315 (UIDPLUS), rfc6851 (MOVE),
 * rfc7162 (CONDSTORE/QRESYNC), rfc5258 (LIST-EXTENDED), rfc5819 (LIST-STATUS), rfc6154
 * (SPECIAL-USE), rfc4731 (ESEARCH), rfc5182 (SEARCHRES), rfc3516 (BINARY), rfc2971 (ID),
 * rfc9208 (QUOTA), rfc3502 (MULTIAPPEND), rfc7888 (LITERAL+/-), rfc4978 (COMPRESS), rfc5161
 * (ENABLE), rfc2177 (IDLE), rfc8438 (STATUS=SIZE), rfc6855 (UTF8=ACCEPT).
 */

/**
 * A sequence set: ranges of numbers, where `'*'` is the largest number in use (the last sequence
 * number, or the largest UID). `$` (SEARCHRES, rfc5182) is the saved search result.
 */
export type SeqNumber = number | '*';
export interface SeqRange {
  from: SeqNumber;
  /** Equal to `from` for a single number. Ranges are unordered (`4:2` is 2..4). */
  to: SeqNumber;
}
export type SequenceSet = { kind: 'set'; ranges: SeqRange[] } | { kind: 'saved' };

/** A literal's bytes, or (for APPEND message data) a handle to bytes streamed elsewhere. */
export type LiteralBytes = Buffer;

/** A mailbox name as sent: already decoded from modified UTF-7 unless the client uses UTF-8. */
export interface MailboxArg {
  /** Decoded name (UTF-8). */
  name: string;
  /** The bytes as given on the wire (for error messages). */
  raw: string;
}

// --- FETCH -------------------------------------------------------------------------------

/** BODY[...] section spec (rfc3501 6.4.5). `part` is the dotted part number, [] for the whole. */
export interface SectionSpec {
  part: number[];
  /** What follows the part number: nothing (whole part), HEADER, HEADER.FIELDS (NOT), TEXT, MIME. */
  text: null | 'HEADER' | 'HEADER.FIELDS' | 'HEADER.FIELDS.NOT' | 'TEXT' | 'MIME';
  /** Upper-cased field names for HEADER.FIELDS (NOT). */
  fields: string[];
}

export interface Partial {
  offset: number;
  /** Number of octets; rfc3501 <origin.size>. */
  length: number;
}

export type FetchAttribute =
  | { kind: 'FLAGS' }
  | { kind: 'INTERNALDATE' }
  | { kind: 'RFC822.SIZE' }
  | { kind: 'ENVELOPE' }
  | { kind: 'BODY' } // BODY without section: non-extensible BODYSTRUCTURE
  | { kind: 'BODYSTRUCTURE' }
  | { kind: 'UID' }
  | { kind: 'MODSEQ' }
  | { kind: 'RFC822' } // = BODY[]
  | { kind: 'RFC822.HEADER' } // = BODY.PEEK[HEADER]
  | { kind: 'RFC822.TEXT' } // = BODY[TEXT]
  | { kind: 'BODY[]'; peek: boolean; section: SectionSpec; partial: Partial | null }
  | { kind: 'BINARY'; peek: boolean; part: number[]; partial: Partial | null }
  | { kind: 'BINARY.SIZE'; part: number[] }
  | { kind: 'SAVEDATE' }
  | { kind: 'EMAILID' }
  | { kind: 'THREADID' };

export interface FetchModifiers {
  /** CHANGEDSINCE (rfc7162 3.1.4.1). */
  changedSince?: number;
  /** VANISHED (rfc7162 3.2.6); only with UID FETCH and CHANGEDSINCE. */
  vanished?: boolean;
}

// --- SEARCH ------------------------------------------------------------------------------

export type SearchKey =
  | { kind: 'all' }
  | { kind: 'flag'; flag: string; set: boolean } // ANSWERED/UNANSWERED, DELETED, DRAFT, FLAGGED, SEEN, KEYWORD/UNKEYWORD
  | { kind: 'new' } // \Recent and not \Seen; \Recent is never set here, so: nothing
  | { kind: 'old' }
  | { kind: 'recent' }
  | { kind: 'header'; field: string; value: string } // BCC, CC, FROM, SUBJECT, TO, HEADER name value (field upper-cased)
  | { kind: 'body'; value: string }
  | { kind: 'text'; value: string }
  | { kind: 'date'; which: 'internal' | 'sent'; op: 'before' | 'on' | 'since'; date: string } // YYYY-MM-DD
  | { kind: 'size'; op: 'larger' | 'smaller'; size: number }
  | { kind: 'seq'; set: SequenceSet }
  | { kind: 'uid'; set: SequenceSet }
  | { kind: 'not'; key: SearchKey }
  | { kind: 'or'; a: SearchKey; b: SearchKey }
  | { kind: 'and'; keys: SearchKey[] } // a parenthesised list, or the top level
  | { kind: 'modseq'; modSeq: number; entryName?: string; entryType?: 'priv' | 'shared' | 'all' } // MODSEQ [entry type] n (rfc7162 3.1.5); entryName as sent, e.g. "/flags/\\Seen"
  | { kind: 'older'; seconds: number } // WITHIN (rfc5032)
  | { kind: 'younger'; seconds: number };

export type SearchReturnOption = 'MIN' | 'MAX' | 'ALL' | 'COUNT' | 'SAVE';

export interface SearchProgram {
  /** null: a plain SEARCH (untagged `* SEARCH`); otherwise ESEARCH (rfc4731) with these options (empty = ALL). */
  returnOptions: SearchReturnOption[] | null;
  charset: string | null;
  criteria: SearchKey;
}

// --- LIST / STATUS -----------------------------------------------------------------------

export type StatusItem =
  | 'MESSAGES'
  | 'RECENT'
  | 'UIDNEXT'
  | 'UIDVALIDITY'
  | 'UNSEEN'
  | 'DELETED'
  | 'SIZE'
  | 'HIGHESTMODSEQ'
  | 'APPENDLIMIT';

export interface ListCommand {
  /** LIST-EXTENDED selection options, upper-cased: SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE. */
  selection: string[];
  reference: string;
  /** One or more patterns (rfc5258 allows a list); decoded like mailbox names. */
  patterns: string[];
  /** Return options: SUBSCRIBED, CHILDREN, SPECIAL-USE, and STATUS with its items (rfc5819). */
  returnOptions: { subscribed: boolean; children: boolean; specialUse: boolean; status: StatusItem[] | null };
  /** true for the basic form (no selection, no return options, one pattern). */
  basic: boolean;
}

// --- APPEND ------------------------------------------------------------------------------

export interface AppendMessage {
  flags: string[];
  internalDate: Date | null;
  /**
   * The message bytes: a literal held in memory, or (the usual case) the id of a literal the
   * session streamed into the blob store as it arrived (a `streamed` framer segment).
   */
  data: LiteralBytes | { streamed: number; size: number };
  binary: boolean;
}

// --- SELECT -------------------------------------------------------------------------------

export interface QresyncParams {
  uidValidity: number;
  modSeq: number;
  knownUids: SequenceSet | null;
  /** Optional (known-sequence-set known-uid-set) pair. */
  seqMatch: { seqs: SequenceSet; uids: SequenceSet } | null;
}

export interface SelectParams {
  condstore: boolean;
  qresync: QresyncParams | null;
}

// --- the command union ---------------------------------------------------------------------

export type Command =
  | { name: 'CAPABILITY' }
  | { name: 'NOOP' }
  | { name: 'LOGOUT' }
  | { name: 'STARTTLS' }
  | { name: 'AUTHENTICATE'; mechanism: string; initialResponse: string | null } // '=' is ''
  | { name: 'LOGIN'; username: string; password: string }
  | { name: 'ENABLE'; capabilities: string[] }
  | { name: 'SELECT' | 'EXAMINE'; mailbox: MailboxArg; params: SelectParams }
  | { name: 'CREATE'; mailbox: MailboxArg; specialUse: string[] }
  | { name: 'DELETE'; mailbox: MailboxArg }
  | { name: 'RENAME'; from: MailboxArg; to: MailboxArg }
  | { name: 'SUBSCRIBE' | 'UNSUBSCRIBE'; mailbox: MailboxArg }
  | { name: 'LIST'; list: ListCommand }
  | { name: 'LSUB'; reference: string; pattern: string }
  | { name: 'NAMESPACE' }
  | { name: 'STATUS'; mailbox: MailboxArg; items: StatusItem[] }
  | { name: 'APPEND'; mailbox: MailboxArg; messages: AppendMessage[] }
  | { name: 'IDLE' }
  | { name: 'CHECK' }
  | { name: 'CLOSE' }
  | { name: 'UNSELECT' }
  | { name: 'EXPUNGE' }
  | { name: 'UID EXPUNGE'; set: SequenceSet }
  | { name: 'SEARCH'; uid: boolean; program: SearchProgram }
  | { name: 'FETCH'; uid: boolean; set: SequenceSet; attributes: FetchAttribute[]; modifiers: FetchModifiers; macro: 'ALL' | 'FAST' | 'FULL' | null }
  | {
      name: 'STORE';
      uid: boolean;
      set: SequenceSet;
      mode: 'add' | 'remove' | 'set';
      silent: boolean;
      flags: string[];
      unchangedSince: number | null;
    }
  | { name: 'COPY' | 'MOVE'; uid: boolean; set: SequenceSet; mailbox: MailboxArg }
  | { name: 'ID'; params: Array<[string, string | null]> | null }
  | { name: 'GETQUOTA'; root: string }
  | { name: 'GETQUOTAROOT'; mailbox: MailboxArg }
  | { name: 'SETQUOTA'; root: string; limits: Array<[string, number]> }
  | { name: 'COMPRESS'; mechanism: string };

export type CommandName = Command['name'];

/** A parsed line: the tag is known even when the rest failed, so BAD carries it. */
export type ParseResult =
  | { ok: true; tag: string; command: Command }
  | { ok: false; tag: string | null; error: string };
