/** The POP3 service: port 110 (with STLS) and 995 (implicit TLS), connection limits, shutdown. */
import type { Socket } from 'node:net';
import type { Logger } from '../log/logger.js';
import { normalizeIp } from '../net/ip.js';
import { ConnectionCounter } from '../net/limits.js';
import { startListener, type Listener } from '../net/listener.js';
import type { TlsMaterial } from '../net/tls.js';
import type { RuntimeSettings } from '../store/runtime-settings.js';
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

export class Pop3Server {
  private readonly listeners: Listener[] = [];
  private readonly sessions = new Set<Pop3Session>();
  private readonly counter = new ConnectionCounter();
  private stopping = false;

  constructor(private readonly options: Pop3ServerOptions) {}

  async start(): Promise<Listener[]> {
    const { addresses, ports, tls, log } = this.options;
    try {
      for (const [name, port, implicit] of [['pop3', ports.pop3, false], ['pop3s', ports.pop3s, true]] as const) {
        this.listeners.push(
          await startListener({
            name,
            addresses,
            port,
            ...(implicit ? { implicitTls: tls } : {}),
            onConnection: (socket) => void this.accept(socket),
            onTlsError: (err, ip) => log.info({ event: 'pop3.tls_error', ip, err: err.message }, 'TLS handshake failed'),
          }),
        );
      }
    } catch (e) {
      await Promise.all(this.listeners.map((l) => l.close()));
      throw e;
    }
    return this.listeners;
  }

  private async accept(socket: Socket): Promise<void> {
    const { log, settings } = this.options;
    socket.on('error', () => {});
    if (this.stopping) {
      socket.end('-ERR [SYS/TEMP] Server shutting down\r\n');
      return;
    }
    socket.pause();
    let snapshot;
    try {
      snapshot = await settings.snapshot();
    } catch (err) {
      log.error({ event: 'pop3.internal_error', err }, 'cannot read settings');
      socket.end('-ERR [SYS/TEMP] Service temporarily unavailable\r\n');
      return;
    }
    const ip = normalizeIp(socket.remoteAddress ?? 'unknown');
    const slot = this.counter.acquire(ip, snapshot.get('pop3.max_connections'), snapshot.get('pop3.max_connections_per_ip'));
    if (!slot.ok) {
      log.warn({ event: 'pop3.connection_refused', ip, reason: slot.reason }, 'connection limit reached');
      socket.end(`-ERR [SYS/TEMP] Too many connections${slot.reason === 'per-ip' ? ' from your IP address' : ''}, try again later\r\n`);
      setTimeout(() => socket.destroy(), 2000).unref();
      return;
    }
    const session = new Pop3Session(socket, this.options.services, snapshot, this.options.tls.context, log);
    this.sessions.add(session);
    void session.closed.then(() => {
      this.sessions.delete(session);
      slot.release();
    });
    session.start();
    socket.resume();
  }

  /** Ends every session without UPDATE (nothing is deleted), then closes the listeners. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    const closing = Promise.all(this.listeners.map((l) => l.close()));
    for (const s of this.sessions) s.shutdown();
    const all = Promise.all([...this.sessions].map((s) => s.closed));
    await Promise.race([all, new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref())]);
    for (const s of this.sessions) s.destroy();
    await closing;
  }
}
