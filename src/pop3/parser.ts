/**
 * POP3 command lines (RFC 1939, RFC 2449, RFC 5034, RFC 2595, RFC 6856), parsed without I/O.
 *
 * Security: the line is untrusted; the session bounds its length (RFC 2449 4: 255 octets) before
 * it gets here. Message numbers are decimal and bounded, so no argument can become a huge
 * allocation or a negative index.
 */

export type Pop3Command =
  | { verb: 'USER'; name: string }
  | { verb: 'PASS'; password: string }
  | { verb: 'APOP'; name: string; digest: string }
  | { verb: 'AUTH'; mechanism: string | null; initialResponse: string | null }
  | { verb: 'STAT' | 'NOOP' | 'RSET' | 'QUIT' | 'CAPA' | 'STLS' | 'UTF8' }
  | { verb: 'LIST' | 'UIDL'; msg: number | null }
  | { verb: 'RETR' | 'DELE'; msg: number }
  | { verb: 'TOP'; msg: number; lines: number };

export type Pop3Verb = Pop3Command['verb'];

export type Pop3Parse = { ok: true; command: Pop3Command } | { ok: false; verb: Pop3Verb | null; error: string };

const MAX_NUMBER = 2 ** 31 - 1;
const NO_ARGS = new Set(['STAT', 'NOOP', 'RSET', 'QUIT', 'CAPA', 'STLS', 'UTF8']);

function number(text: string | undefined): number | null {
  if (text === undefined || !/^\d{1,10}$/.test(text)) return null;
  const n = Number(text);
  return n <= MAX_NUMBER ? n : null;
}

export function parsePop3Command(line: string): Pop3Parse {
  const space = line.indexOf(' ');
  const keyword = (space < 0 ? line : line.slice(0, space)).toUpperCase();
  const rest = space < 0 ? '' : line.slice(space + 1);
  // rfc1939 3: keywords and arguments are separated by a single space; arguments are printable.
  const args = rest === '' ? [] : rest.split(' ');
  const bad = (verb: Pop3Verb, error: string): Pop3Parse => ({ ok: false, verb, error });

  if (/[\x00-\x1f\x7f]/.test(line)) return { ok: false, verb: null, error: 'Invalid character in command' };
  if (NO_ARGS.has(keyword)) {
    if (args.length > 0) return bad(keyword as Pop3Verb, `${keyword} takes no arguments`);
    return { ok: true, command: { verb: keyword as 'STAT' } };
  }
  switch (keyword) {
    case 'USER':
      if (args.length !== 1 || args[0] === '') return bad('USER', 'Usage: USER name');
      return { ok: true, command: { verb: 'USER', name: args[0]! } };
    case 'PASS':
      // The password is the rest of the line: some clients send passwords with spaces.
      if (rest === '') return bad('PASS', 'Usage: PASS password');
      return { ok: true, command: { verb: 'PASS', password: rest } };
    case 'APOP':
      if (args.length !== 2 || !/^[0-9a-fA-F]{32}$/.test(args[1]!)) return bad('APOP', 'Usage: APOP name digest');
      return { ok: true, command: { verb: 'APOP', name: args[0]!, digest: args[1]!.toLowerCase() } };
    case 'AUTH':
      if (args.length > 2 || args.some((a) => a === '')) return bad('AUTH', 'Usage: AUTH mechanism [initial-response]');
      return { ok: true, command: { verb: 'AUTH', mechanism: args[0]?.toUpperCase() ?? null, initialResponse: args[1] ?? null } };
    case 'LIST':
    case 'UIDL': {
      if (args.length === 0) return { ok: true, command: { verb: keyword, msg: null } };
      const msg = number(args[0]);
      if (args.length !== 1 || msg === null) return bad(keyword, 'Invalid message number');
      return { ok: true, command: { verb: keyword, msg } };
    }
    case 'RETR':
    case 'DELE': {
      const msg = number(args[0]);
      if (args.length !== 1 || msg === null) return bad(keyword, 'Invalid message number');
      return { ok: true, command: { verb: keyword, msg } };
    }
    case 'TOP': {
      const msg = number(args[0]);
      const lines = number(args[1]);
      if (args.length !== 2 || msg === null || lines === null) return bad('TOP', 'Usage: TOP msg lines');
      return { ok: true, command: { verb: 'TOP', msg, lines } };
    }
    default:
      return { ok: false, verb: null, error: 'Unknown command' };
  }
}
