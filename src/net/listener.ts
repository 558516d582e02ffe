/**
 * TCP listeners: one service on one port over several addresses, with implicit TLS when asked.
 * `::` listens dual-stack; where the host has no IPv6 it falls back to 0.0.0.0.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { TlsMaterial } from './tls.js';

export interface ListenerOptions {
  name: string;
  addresses: string[];
  port: number;
  /** Implicit TLS (465, 993, 995): the handshake completes before onConnection. */
  implicitTls?: TlsMaterial;
  onConnection: (socket: Socket | TLSSocket) => void;
  onTlsError?: (err: Error, remoteAddress: string | undefined) => void;
}

export interface Listener {
  name: string;
  port: number;
  addresses: string[];
  close(): Promise<void>;
}

function listenOne(server: Server, address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host: address, port, exclusive: true });
  });
}

export async function startListener(options: ListenerOptions): Promise<Listener> {
  const servers: Server[] = [];
  const bound: string[] = [];
  const make = (): Server => {
    if (options.implicitTls) {
      const s = createTlsServer({ ...options.implicitTls.options, handshakeTimeout: 30_000 }, options.onConnection);
      s.on('tlsClientError', (err, socket) => options.onTlsError?.(err, socket.remoteAddress));
      return s;
    }
    return createServer({ noDelay: true }, options.onConnection);
  };
  try {
    for (const address of options.addresses) {
      const server = make();
      try {
        await listenOne(server, address, options.port);
        bound.push(address);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (address === '::' && (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL')) {
          await listenOne(server, '0.0.0.0', options.port);
          bound.push('0.0.0.0');
        } else {
          const hint = code === 'EADDRINUSE' ? ' (another program uses it; move Fulmar with --port-offset or [ports])'
            : code === 'EACCES' ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE; or use --port-offset)' : '';
          throw new Error(`cannot listen for ${options.name} on ${address} port ${options.port}: ${code ?? (e as Error).message}${hint}`);
        }
      }
      servers.push(server);
    }
  } catch (e) {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    throw e;
  }
  return {
    name: options.name,
    port: options.port,
    addresses: bound,
    close: () => Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => undefined),
  };
}
