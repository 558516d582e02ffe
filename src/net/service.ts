/**
 * A TCP service: its listeners (plain and implicit-TLS ports), the connection limits checked at
 * each accept, the set of live sessions, and a graceful stop. Each protocol gives a session
 * factory and its own wording for refusals; the rest is the same for SMTP, POP3 and IMAP.
 */
import type { Socket } from 'node:net';
import type { Logger } from '../log/logger.js';
import { normalizeIp } from './ip.js';
import { ConnectionCounter } from './limits.js';
import { startListener, type Listener } from './listener.js';
import type { TlsMaterial } from './tls.js';

export interface ServiceSession {
  readonly closed: Promise<void>;
  start(): void;
  /** Ends the session for a shutdown, at once or after the work in hand. */
  shutdown(): void;
  destroy(): void;
}

export type Refusal = 'stopping' | 'unavailable' | 'total' | 'per-ip';

export interface TcpServiceOptions<Kind, Snapshot, S extends ServiceSession> {
  /** Prefix of log events, e.g. `pop3`. */
  name: string;
  addresses: string[];
  endpoints: Array<{ name: string; port: number; implicitTls: boolean; kind: Kind }>;
  tls: TlsMaterial;
  log: Logger;
  /** Settings as of this connection (read at each accept, so changes apply to the next one). */
  snapshot: () => Promise<Snapshot>;
  limits: (snapshot: Snapshot) => { maxConnections: number; maxPerIp: number };
  /** The protocol's line that refuses a connection, with its line end. */
  refusal: (reason: Refusal) => string;
  createSession: (socket: Socket, kind: Kind, snapshot: Snapshot) => S;
  /** How long a stop waits for sessions to finish their work. */
  graceMs: number;
}

export class TcpService<Kind, Snapshot, S extends ServiceSession> {
  private readonly listeners: Listener[] = [];
  private readonly sessions = new Set<S>();
  private readonly counter = new ConnectionCounter();
  private stopping = false;

  constructor(private readonly options: TcpServiceOptions<Kind, Snapshot, S>) {}

  async start(): Promise<Listener[]> {
    const { addresses, endpoints, tls, log, name } = this.options;
    try {
      for (const e of endpoints) {
        this.listeners.push(
          await startListener({
            name: e.name,
            addresses,
            port: e.port,
            ...(e.implicitTls ? { implicitTls: tls } : {}),
            onConnection: (socket) => void this.accept(socket, e.kind),
            onTlsError: (err, ip) => log.info({ event: `${name}.tls_error`, ip, err: err.message }, 'TLS handshake failed'),
          }),
        );
      }
    } catch (e) {
      await Promise.all(this.listeners.map((l) => l.close()));
      throw e;
    }
    return this.listeners;
  }

  private async accept(socket: Socket, kind: Kind): Promise<void> {
    const { log, name, refusal } = this.options;
    socket.on('error', () => {});
    if (this.stopping) {
      socket.end(refusal('stopping'));
      return;
    }
    socket.pause();
    let snapshot: Snapshot;
    try {
      snapshot = await this.options.snapshot();
    } catch (err) {
      log.error({ event: `${name}.internal_error`, err }, 'cannot read settings');
      socket.end(refusal('unavailable'));
      return;
    }
    const ip = normalizeIp(socket.remoteAddress ?? 'unknown');
    const limits = this.options.limits(snapshot);
    const slot = this.counter.acquire(ip, limits.maxConnections, limits.maxPerIp);
    if (!slot.ok) {
      log.warn({ event: `${name}.connection_refused`, ip, reason: slot.reason }, 'connection limit reached');
      socket.end(refusal(slot.reason));
      setTimeout(() => socket.destroy(), 2000).unref();
      return;
    }
    const session = this.options.createSession(socket, kind, snapshot);
    this.sessions.add(session);
    void session.closed.then(() => {
      this.sessions.delete(session);
      slot.release();
    });
    session.start();
    socket.resume();
  }

  /** Stops accepting, lets sessions finish their work within graceMs, then cuts the rest. */
  async stop(): Promise<void> {
    this.stopping = true;
    const closing = Promise.all(this.listeners.map((l) => l.close()));
    for (const s of this.sessions) s.shutdown();
    const all = Promise.all([...this.sessions].map((s) => s.closed));
    await Promise.race([all, new Promise<void>((resolve) => setTimeout(resolve, this.options.graceMs).unref())]);
    for (const s of this.sessions) s.destroy();
    await closing;
  }
}
