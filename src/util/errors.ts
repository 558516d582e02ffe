/**
 * The closed set of errors that services throw and protocol edges map to replies
 * (after Dovecot's mail_error). Each edge keeps one table from `kind` to its own reply.
 *
 * `userError` marks a client's mistake: logged at info, without a stack.
 */
export type FulmarErrorKind =
  | 'temp' // temporary failure: try again later
  | 'not-found'
  | 'exists'
  | 'expunged'
  | 'no-quota'
  | 'in-use'
  | 'limit'
  | 'too-big'
  | 'invalid' // bad input from the caller (a name, an address, a value)
  | 'denied';

export class FulmarError extends Error {
  readonly kind: FulmarErrorKind;
  readonly userError: boolean;
  constructor(kind: FulmarErrorKind, message: string, options: { userError?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FulmarError';
    this.kind = kind;
    this.userError = options.userError ?? kind !== 'temp';
  }
}

export class NotFound extends FulmarError {
  constructor(message: string) {
    super('not-found', message);
  }
}
export class AlreadyExists extends FulmarError {
  constructor(message: string) {
    super('exists', message);
  }
}
export class InvalidInput extends FulmarError {
  constructor(message: string) {
    super('invalid', message);
  }
}
export class QuotaExceeded extends FulmarError {
  constructor(message: string) {
    super('no-quota', message);
  }
}
export class MessageTooLarge extends FulmarError {
  constructor(message: string) {
    super('too-big', message);
  }
}
export class TemporaryFailure extends FulmarError {
  constructor(message: string, cause?: unknown) {
    super('temp', message, { cause, userError: false });
  }
}

export function isFulmarError(e: unknown): e is FulmarError {
  return e instanceof FulmarError;
}
