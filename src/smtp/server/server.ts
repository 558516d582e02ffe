/** The SMTP service: the MX port (25), submission (587) and implicit TLS (465). */
import type { Logger } from '../../log/logger.js';
import type { Listener } from '../../net/listener.js';
import { TcpService, type Refusal } from '../../net/service.js';
import type { TlsMaterial } from '../../net/tls.js';
import type { RuntimeSettings, SettingsSnapshot } from '../../store/runtime-settings.js';
import { formatReply } from './replies.js';
import type { SmtpServices } from './services.js';
import { SmtpSession, type SmtpPortKind } from './session.js';

export interface SmtpServerOptions {
  addresses: string[];
  ports: { smtp: number; submission: number; smtps: number };
  tls: TlsMaterial;
  services: SmtpServices;
  settings: RuntimeSettings;
  log: Logger;
}

const REFUSALS: Record<Refusal, string> = {
  stopping: formatReply({ code: 421, enhanced: '4.3.2', text: 'Service shutting down' }),
  unavailable: formatReply({ code: 421, enhanced: '4.3.0', text: 'Service temporarily unavailable' }),
  total: formatReply({ code: 421, enhanced: '4.7.0', text: 'Too many connections, try again later' }),
  'per-ip': formatReply({ code: 421, enhanced: '4.7.0', text: 'Too many connections from your IP address, try again later' }),
};

export class SmtpServer {
  private readonly service: TcpService<SmtpPortKind, SettingsSnapshot, SmtpSession>;

  constructor(options: SmtpServerOptions) {
    this.service = new TcpService({
      name: 'smtp',
      addresses: options.addresses,
      endpoints: [
        { name: 'smtp', port: options.ports.smtp, implicitTls: false, kind: 'mx' },
        { name: 'submission', port: options.ports.submission, implicitTls: false, kind: 'submission' },
        { name: 'smtps', port: options.ports.smtps, implicitTls: true, kind: 'smtps' },
      ],
      tls: options.tls,
      log: options.log,
      snapshot: () => options.settings.snapshot(),
      limits: (s) => ({ maxConnections: s.get('smtp.max_connections'), maxPerIp: s.get('smtp.max_connections_per_ip') }),
      refusal: (reason) => REFUSALS[reason],
      createSession: (socket, kind, snapshot) => new SmtpSession(socket, kind, options.services, snapshot, options.tls.context, options.log),
      // A message in progress may finish; idle sessions get 421 at once.
      graceMs: 10_000,
    });
  }

  start(): Promise<Listener[]> {
    return this.service.start();
  }

  stop(): Promise<void> {
    return this.service.stop();
  }
}
