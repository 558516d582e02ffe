/** The POP3 service: port 110 (with STLS) and 995 (implicit TLS). */
import type { Logger } from '../log/logger.js';
import type { Listener } from '../net/listener.js';
import { TcpService, type Refusal } from '../net/service.js';
import type { TlsMaterial } from '../net/tls.js';
import type { RuntimeSettings, SettingsSnapshot } from '../store/runtime-settings.js';
import type { Pop3Services } from './services.js';
import { Pop3Session } from './session.js';

export interface Pop3ServerOptions {
  addresses: string[];
  ports: { pop3: number; pop3s: number };
  tls: TlsMaterial;
  services: Pop3Services;
  settings: RuntimeSettings;
  log: Logger;
}

const REFUSALS: Record<Refusal, string> = {
  stopping: '-ERR [SYS/TEMP] Server shutting down\r\n',
  unavailable: '-ERR [SYS/TEMP] Service temporarily unavailable\r\n',
  total: '-ERR [SYS/TEMP] Too many connections, try again later\r\n',
  'per-ip': '-ERR [SYS/TEMP] Too many connections from your IP address, try again later\r\n',
};

export class Pop3Server {
  private readonly service: TcpService<'pop3', SettingsSnapshot, Pop3Session>;

  constructor(options: Pop3ServerOptions) {
    this.service = new TcpService({
      name: 'pop3',
      addresses: options.addresses,
      endpoints: [
        { name: 'pop3', port: options.ports.pop3, implicitTls: false, kind: 'pop3' },
        { name: 'pop3s', port: options.ports.pop3s, implicitTls: true, kind: 'pop3' },
      ],
      tls: options.tls,
      log: options.log,
      snapshot: () => options.settings.snapshot(),
      limits: (s) => ({ maxConnections: s.get('pop3.max_connections'), maxPerIp: s.get('pop3.max_connections_per_ip') }),
      refusal: (reason) => REFUSALS[reason],
      createSession: (socket, _kind, snapshot) => new Pop3Session(socket, options.services, snapshot, options.tls.context, options.log),
      // Sessions end without UPDATE at once: nothing is deleted by a shutdown.
      graceMs: 5000,
    });
  }

  start(): Promise<Listener[]> {
    return this.service.start();
  }

  stop(): Promise<void> {
    return this.service.stop();
  }
}
