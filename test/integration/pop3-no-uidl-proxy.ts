/**
 * A TCP proxy in front of a plain POP3 server that plays an old ISP server without UIDL
 * (RFC 1939 makes it optional): the proxy answers `-ERR unknown command` to UIDL itself (the
 * server never sees it) and drops the `UIDL` line from CAPA replies. Everything else goes
 * through unchanged, byte for byte.
 *
 * It reads client commands line by line, and follows the server's replies only as far as it
 * must to know which reply answers which command (one line, or a multi-line reply up to "."
 * for CAPA, LIST, RETR and TOP; AUTH exchanges until the final +OK/-ERR), so that its own
 * answers keep their place among pipelined commands and only the CAPA reply is rewritten.
 *
 * STLS: the bytes after it are TLS, which the proxy could not read, so by default it answers
 * STLS with -ERR itself and drops STLS from CAPA (the old server has no TLS either). Given
 * `tls` (a certificate and key, e.g. DovecotPop3's certFile and keyFile) it does the STLS
 * itself: it answers +OK, takes the TLS handshake from the client, and goes on speaking plain
 * POP3 with the server, which never knows (CAPA then lists no STLS, as a server under TLS).
 * Point it at the plain port: an implicit-TLS port is TLS from the first byte.
 */
import { readFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

export interface NoUidlProxy {
  port: number;
  close(): Promise<void>;
}

export interface NoUidlProxyOptions {
  /** Terminate STLS in the proxy with this certificate and key (PEM files). */
  tls?: { certFile: string; keyFile: string };
}

/** What the proxy waits for from the server, or answers itself, for each command in order. */
type Pending =
  | { kind: 'server'; multiLine: boolean; capa: boolean; auth: boolean }
  | { kind: 'local'; reply: string; then?: () => void };

const LF = 0x0a;

export async function startNoUidlProxy(targetPort: number, options: NoUidlProxyOptions = {}): Promise<NoUidlProxy> {
  const tls = options.tls ? { cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile) } : null;
  const sockets = new Set<Socket>();

  const server = createServer((downstream) => {
    sockets.add(downstream);
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(upstream);
    // The client side: a plain socket until STLS, then the TLS socket on top of it.
    let client: Socket = downstream;
    let secured = false;
    // The greeting is the first reply the client waits for.
    const queue: Pending[] = [{ kind: 'server', multiLine: false, capa: false, auth: false }];
    /** Bytes for the client, written in one piece at the end of each event (RETR is many lines). */
    let out: Buffer[] = [];
    const flushOut = (): void => {
      if (out.length > 0) client.write(out.length === 1 ? out[0]! : Buffer.concat(out));
      out = [];
    };
    let fromClient: Buffer = Buffer.alloc(0);
    let fromServer: Buffer = Buffer.alloc(0);
    let inMultiLine = false;
    let stlsDone = false;

    const closeBoth = (): void => {
      downstream.destroy();
      upstream.destroy();
    };
    // The server hanging up (after QUIT, or a timeout) ends the client's side once it has all.
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.end();
    });
    upstream.on('error', closeBoth);
    downstream.on('close', () => {
      sockets.delete(downstream);
      upstream.destroy();
    });
    downstream.on('error', closeBoth);

    /** Sends the proxy's own replies that are now due (nothing of the server's ahead of them). */
    const flushLocal = (): void => {
      while (queue[0]?.kind === 'local') {
        const head = queue.shift() as Extract<Pending, { kind: 'local' }>;
        out.push(Buffer.from(head.reply, 'latin1'));
        if (head.then) {
          flushOut();
          head.then();
        }
      }
    };

    const onClientLine = (line: Buffer): void => {
      const text = line.toString('latin1').replace(/\r?\n$/, '');
      const head = queue[queue.length - 1];
      // A line sent while an AUTH exchange is open is a SASL response, not a command.
      if (head?.kind === 'server' && head.auth) {
        upstream.write(line);
        return;
      }
      const [verb = '', ...args] = text.split(' ');
      const command = verb.toUpperCase();
      if (command === 'UIDL') {
        queue.push({ kind: 'local', reply: '-ERR unknown command\r\n' });
        flushLocal();
        return;
      }
      if (command === 'STLS') {
        if (tls === null || secured) {
          queue.push({ kind: 'local', reply: '-ERR unknown command\r\n' });
          flushLocal();
          return;
        }
        stlsDone = true;
        queue.push({ kind: 'local', reply: '+OK Begin TLS negotiation now.\r\n', then: startTls });
        flushLocal();
        return;
      }
      const bare = args.every((a) => a === '');
      // AUTH alone lists the mechanisms (Dovecot does, for old Outlooks); AUTH MECH starts an exchange.
      const multiLine = command === 'CAPA' || command === 'RETR' || command === 'TOP' || ((command === 'LIST' || command === 'AUTH') && bare);
      queue.push({ kind: 'server', multiLine, capa: command === 'CAPA', auth: command === 'AUTH' && !bare });
      upstream.write(line);
    };

    const onClientData = (d: Buffer): void => {
      // After STLS the client's next bytes are its TLS handshake, read by startTls's socket.
      if (stlsDone && !secured) return;
      fromClient = fromClient.length === 0 ? d : Buffer.concat([fromClient, d]);
      let nl: number;
      while ((nl = fromClient.indexOf(LF)) >= 0) {
        const line = fromClient.subarray(0, nl + 1);
        fromClient = fromClient.subarray(nl + 1);
        onClientLine(line);
        if (stlsDone && !secured) {
          // Commands pipelined after STLS are dropped, as a server must (RFC 2595 4).
          fromClient = Buffer.alloc(0);
          break;
        }
      }
      flushOut();
    };

    const startTls = (): void => {
      if (tls === null) return;
      downstream.removeListener('data', onClientData);
      const secure = new TLSSocket(downstream, { isServer: true, cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' });
      client = secure;
      secure.on('error', closeBoth);
      secure.on('secure', () => {
        secured = true;
      });
      secure.on('data', onClientData);
    };

    /** One line of the server's output: passed on, or (in a CAPA reply) dropped. */
    const onServerLine = (line: Buffer): void => {
      const head = queue[0];
      if (head === undefined || head.kind !== 'server') {
        // Nothing asked (e.g. a disconnect notice): pass it on.
        out.push(line);
        return;
      }
      if (inMultiLine) {
        if (line.equals(Buffer.from('.\r\n')) || line.equals(Buffer.from('.\n'))) {
          inMultiLine = false;
          out.push(line);
          queue.shift();
          flushLocal();
          return;
        }
        if (head.capa) {
          const name = line.toString('latin1').trim().split(' ')[0]?.toUpperCase();
          if (name === 'UIDL' || (name === 'STLS' && (tls === null || secured))) return;
        }
        out.push(line);
        return;
      }
      out.push(line);
      const ok = line.subarray(0, 3).toString('latin1') === '+OK';
      if (head.auth && !ok && line.subarray(0, 4).toString('latin1') !== '-ERR') return; // "+ challenge"
      if (ok && head.multiLine) {
        inMultiLine = true;
        return;
      }
      queue.shift();
      flushLocal();
    };

    upstream.on('data', (d: Buffer) => {
      fromServer = fromServer.length === 0 ? d : Buffer.concat([fromServer, d]);
      let nl: number;
      while ((nl = fromServer.indexOf(LF)) >= 0) {
        const line = fromServer.subarray(0, nl + 1);
        fromServer = fromServer.subarray(nl + 1);
        onServerLine(line);
      }
      flushOut();
    });
    downstream.on('data', onClientData);
  });

  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => res());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    port: address.port,
    close: () =>
      new Promise<void>((res) => {
        for (const s of sockets) s.destroy();
        server.close(() => res());
      }),
  };
}
