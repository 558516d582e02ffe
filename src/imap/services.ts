/** What an IMAP session needs from the rest of Fulmar, built once by the server. */
import type { Directory } from '../directory/directory.js';
import type { LoginFailures } from '../net/limits.js';
import type { BlobStore, EventBus, MailStore } from '../store/types.js';

export interface ImapServices {
  hostname: string;
  directory: Directory;
  mail: MailStore;
  blobs: BlobStore;
  events: EventBus;
  failures: LoginFailures;
}
