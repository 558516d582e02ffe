/** What a POP3 session needs from the rest of Fulmar, built once by the server. */
import type { Directory } from '../directory/directory.js';
import type { LoginFailures } from '../net/limits.js';
import type { MailStore } from '../store/types.js';
import type { MaildropLocks } from './locks.js';

export interface Pop3Services {
  hostname: string;
  directory: Directory;
  mail: MailStore;
  locks: MaildropLocks;
  failures: LoginFailures;
}
