/** What an SMTP session needs from the rest of Fulmar, built once by the server. */
import type { Directory } from '../../directory/directory.js';
import type { LoginFailures } from '../../net/limits.js';
import type { IngestServices } from '../../pipeline/ingest.js';

export interface SmtpServices extends IngestServices {
  hostname: string;
  directory: Directory;
  /** Failed logins per IP address, shared with the other protocols. */
  failures: LoginFailures;
}
