/** The IMAP service: port 143 (with STARTTLS) and 993 (implicit TLS). */
import type { Logger } from '../log/logger.js';
import type { Listener } from '../net/listener.js';
import { TcpService, type Refusal } from '../net/service.js';
import type { TlsMaterial } from '../net/tls.js';
import type { RuntimeSettings, SettingsSnapshot } from '../store/runtime-settings.js';
import type { ImapServices } from './services.js';
import { ImapSession } from './session.js';

export interface ImapServerOptions {
  addresses: string[];
  ports: { imap: number; imaps: number };
  tls: TlsMaterial;
  services: ImapServices;
  settings: RuntimeSettings;
  log: Logger;
}

const REFUSALS: Record<Refusal, string> = {
  stopping: '* BYE [UNAVAILABLE] Server shutting down\r\n',
  unavailable: '* BYE [UNAVAILABLE] Service temporarily unavailable\r\n',
  total: '* BYE [UNAVAILABLE] Too many connections, try again later\r\n',
  'per-ip': '* BYE [UNAVAILABLE] Too many connections from your IP address, try again later\r\n',
};

export class ImapServer {
  private readonly service: TcpService<'imap', SettingsSnapshot, ImapSession>;

  constructor(options: ImapServerOptions) {
    this.service = new TcpService({
      name: 'imap',
      addresses: options.addresses,
      endpoints: [
        { name: 'imap', port: options.ports.imap, implicitTls: false, kind: 'imap' },
        { name: 'imaps', port: options.ports.imaps, implicitTls: true, kind: 'imap' },
      ],
      tls: options.tls,
      log: options.log,
      snapshot: () => options.settings.snapshot(),
      limits: (s) => ({ maxConnections: s.get('imap.max_connections'), maxPerIp: s.get('imap.max_connections_per_ip') }),
      refusal: (reason) => REFUSALS[reason],
      createSession: (socket, _kind, snapshot) => new ImapSession(socket, options.services, snapshot, options.tls.context, options.log),
      // Every acknowledged change is already durable: sessions can end at once.
      graceMs: 2000,
    });
  }

  start(): Promise<Listener[]> {
    return this.service.start();
  }

  stop(): Promise<void> {
    return this.service.stop();
  }
}
