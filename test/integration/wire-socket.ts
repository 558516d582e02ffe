/**
 * What the raw protocol clients of the tests (smtp-wire.ts, pop3-wire.ts, imap-wire.ts) share:
 * connecting (plain or implicit TLS, from a chosen local address), the socket's events, waiting
 * for more bytes with a deadline, and the STARTTLS/STLS handshake on the open socket. Each
 * client keeps its own buffer and reply parsing (`received`).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

export interface ConnectOptions {
  /** Implicit TLS from the first byte (465, 995, 993). */
  tls?: boolean;
  host?: string;
  localAddress?: string;
}

/** A connected socket (TLS without certificate checks: the servers use self-signed ones). */
export function connectSocket(port: number, options: ConnectOptions = {}): Promise<Socket> {
  const host = options.host ?? '127.0.0.1';
  const local = options.localAddress ? { localAddress: options.localAddress } : {};
  return new Promise<Socket>((res, rej) => {
    const s: Socket = options.tls
      ? tlsConnect({ host, port, rejectUnauthorized: false, servername: 'localhost', ...local }, () => res(s))
      : netConnect({ host, port, ...local }, () => res(s));
    s.once('error', rej);
  }).then((s) => {
    s.setNoDelay(true);
    return s;
  });
}

export abstract class WireSocket {
  protected ended = false;
  readonly closed: Promise<void>;
  private closedResolve!: () => void;
  private waiter: (() => void) | null = null;
  protected readonly onData = (d: Buffer): void => this.accept(d);

  protected constructor(public socket: Socket | TLSSocket) {
    this.closed = new Promise((res) => (this.closedResolve = res));
    this.attach(socket);
  }

  /** Keeps the bytes and calls wake() when a reader may find something new. */
  protected abstract accept(d: Buffer): void;

  get isClosed(): boolean {
    return this.ended;
  }

  protected attach(socket: Socket): void {
    socket.on('data', this.onData);
    socket.on('error', () => {});
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
      this.closedResolve();
    });
  }

  protected wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Resolves at the next wake() (data, end, close) or after `ms`. */
  protected nextWake(ms: number): Promise<void> {
    return new Promise<void>((res) => {
      const t = setTimeout(() => {
        this.waiter = null;
        res();
      }, ms);
      this.waiter = () => {
        clearTimeout(t);
        res();
      };
    });
  }

  /** Runs the TLS handshake on the current socket (after the server's yes to STARTTLS or STLS). */
  async upgrade(): Promise<void> {
    const plain = this.socket;
    plain.removeListener('data', this.onData);
    plain.removeAllListeners('end');
    plain.removeAllListeners('close');
    const secure = await new Promise<TLSSocket>((res, rej) => {
      const s = tlsConnect({ socket: plain, rejectUnauthorized: false, servername: 'localhost' }, () => res(s));
      s.once('error', rej);
    });
    this.socket = secure;
    this.attach(secure);
  }
}
