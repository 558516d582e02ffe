/**
 * The SMTP service: listeners on the MX port (25), submission (587) and implicit TLS (465),
 * connection limits, and the set of live sessions for a graceful stop.
 */
import type { Socket } from 'node:net';
import type { Logger } from '../../log/logger.js';
import { ConnectionCounter } from '../../net/limits.js';
import { startListener, type Listener } from '../../net/listener.js';
import type { TlsMaterial } from '../../net/tls.js';
import type { RuntimeSettings } from '../../store/runtime-settings.js';
import { formatReply } from './replies.js';
import type { SmtpServices } from './services.js';
import { normalizeIp } from '../../net/ip.js';
import { SmtpSession, type SmtpPortKind } from './session.js';

export interface SmtpServerOptions {
  addresses: string[];
  ports: { smtp: number; submission: number; smtps: number };
  tls: TlsMaterial;
  services: SmtpServices;
  settings: RuntimeSettings;
  log: Logger;
}

export class SmtpServer {
  private readonly listeners: Listener[] = [];
  private readonly sessions = new Set<SmtpSession>();
  private readonly counter = new ConnectionCounter();
  private stopping = false;

  constructor(private readonly options: SmtpServerOptions) {}

  async start(): Promise<Listener[]> {
    const { addresses, ports, tls, log } = this.options;
    const kinds: Array<[SmtpPortKind, number, boolean]> = [
      ['mx', ports.smtp, false],
      ['submission', ports.submission, false],
      ['smtps', ports.smtps, true],
    ];
    try {
      for (const [kind, port, implicitTls] of kinds) {
        this.listeners.push(
          await startListener({
            name: kind === 'mx' ? 'smtp' : kind,
            addresses,
            port,
            ...(implicitTls ? { implicitTls: tls } : {}),
            onConnection: (socket) => void this.accept(socket, kind),
            onTlsError: (err, ip) => log.info({ event: 'smtp.tls_error', ip, err: err.message }, 'TLS handshake failed'),
          }),
        );
      }
    } catch (e) {
      await Promise.all(this.listeners.map((l) => l.close()));
      throw e;
    }
    return this.listeners;
  }

  private async accept(socket: Socket, kind: SmtpPortKind): Promise<void> {
    const { log, settings } = this.options;
    socket.on('error', () => {});
    if (this.stopping) {
      socket.end(formatReply({ code: 421, enhanced: '4.3.2', text: 'Service shutting down' }));
      return;
    }
    socket.pause();
    let snapshot;
    try {
      snapshot = await settings.snapshot();
    } catch (err) {
      log.error({ event: 'smtp.internal_error', err }, 'cannot read settings');
      socket.end(formatReply({ code: 421, enhanced: '4.3.0', text: 'Service temporarily unavailable' }));
      return;
    }
    const ip = normalizeIp(socket.remoteAddress ?? 'unknown');
    const slot = this.counter.acquire(ip, snapshot.get('smtp.max_connections'), snapshot.get('smtp.max_connections_per_ip'));
    if (!slot.ok) {
      log.warn({ event: 'smtp.connection_refused', ip, reason: slot.reason }, 'connection limit reached');
      const text = slot.reason === 'per-ip' ? 'Too many connections from your IP address, try again later' : 'Too many connections, try again later';
      socket.end(formatReply({ code: 421, enhanced: '4.7.0', text }));
      setTimeout(() => socket.destroy(), 2000).unref();
      return;
    }
    const session = new SmtpSession(socket, kind, this.options.services, snapshot, this.options.tls.context, log);
    this.sessions.add(session);
    void session.closed.then(() => {
      this.sessions.delete(session);
      slot.release();
    });
    session.start();
    socket.resume();
  }

  /** Stops accepting, lets sessions in the middle of a message finish within `graceMs`, then cuts the rest. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    const closing = Promise.all(this.listeners.map((l) => l.close()));
    for (const s of this.sessions) s.shutdown();
    const all = Promise.all([...this.sessions].map((s) => s.closed));
    const timer = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([all, timer]);
    for (const s of this.sessions) s.destroy();
    await closing;
  }

  get openSessions(): number {
    return this.sessions.size;
  }
}
