/**
 * DNS servers on loopback for the sender-authentication tests: one (dns2, UDP and TCP on one
 * port) that serves TXT and A records from a table the test changes as it goes, and one that
 * reads queries and never answers (a dead resolver: lookups time out).
 */
import { createSocket, type Socket } from 'node:dgram';
import { createServer, Packet, type DnsServer } from 'dns2';

type RecordType = 'TXT' | 'A' | 'MX';

/** rfc1035 4.1.1 RCODE 3: the name does not exist (node:dns reports ENOTFOUND). */
const NXDOMAIN = 3;

interface ZoneRecord {
  type: RecordType;
  /** TXT: the character-strings; A: the address; MX: `priority exchange`. */
  data: string[] | string;
}

export class TestDns {
  private readonly zone = new Map<string, ZoneRecord[]>();
  readonly queries: string[] = [];

  private constructor(
    private readonly server: DnsServer,
    readonly port: number,
  ) {}

  static async start(): Promise<TestDns> {
    let dns: TestDns | null = null;
    const server = createServer({
      udp: true,
      tcp: true,
      handle: (request, send) => {
        const response = Packet.createResponseFromRequest(request);
        const question = request.questions[0];
        if (!question || !dns) {
          void send(response);
          return;
        }
        const name = question.name.toLowerCase().replace(/\.$/, '');
        const records = dns.zone.get(name);
        const typeName = Object.entries(Packet.TYPE).find(([, v]) => v === question.type)?.[0] ?? String(question.type);
        dns.queries.push(`${name}/${typeName}`);
        if (!records) {
          response.header.rcode = NXDOMAIN;
        } else {
          for (const r of records.filter((x) => x.type === typeName)) {
            const base = { name: question.name, type: Packet.TYPE[r.type], class: Packet.CLASS.IN, ttl: 60 };
            if (r.type === 'TXT') response.answers.push({ ...base, data: r.data } as never);
            else if (r.type === 'A') response.answers.push({ ...base, address: r.data as string } as never);
            else {
              const [priority, exchange] = (r.data as string).split(' ');
              response.answers.push({ ...base, priority: Number(priority), exchange } as never);
            }
          }
        }
        void send(response);
      },
    });
    // UDP first on any free port, then TCP on the same one (node:dns falls back to TCP for large answers).
    for (let attempt = 0; ; attempt++) {
      const probe = createSocket('udp4');
      const port = await new Promise<number>((res) => probe.bind(0, '127.0.0.1', () => res(probe.address().port)));
      await new Promise<void>((res) => probe.close(() => res()));
      try {
        await server.listen({ udp: { port, address: '127.0.0.1' }, tcp: { port, address: '127.0.0.1' } });
        dns = new TestDns(server, port);
        return dns;
      } catch (err) {
        if (attempt >= 5) throw err;
      }
    }
  }

  /** `127.0.0.1:PORT`, for the `dns.servers` setting. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Sets the TXT record of a name (replacing earlier TXT records); long values are split in 255-octet strings. */
  txt(name: string, value: string | string[]): void {
    const strings = Array.isArray(value) ? value : splitTxt(value);
    this.put(name, { type: 'TXT', data: strings });
  }

  a(name: string, address: string): void {
    this.put(name, { type: 'A', data: address });
  }

  private put(name: string, record: ZoneRecord): void {
    const key = name.toLowerCase().replace(/\.$/, '');
    const list = (this.zone.get(key) ?? []).filter((r) => r.type !== record.type);
    list.push(record);
    this.zone.set(key, list);
  }

  async close(): Promise<void> {
    await this.server.close();
  }
}

export function splitTxt(value: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < value.length; i += 255) out.push(value.slice(i, i + 255));
  return out;
}

/** A UDP "DNS server" that takes queries and never answers. */
export class SilentDns {
  private constructor(
    private readonly socket: Socket,
    readonly port: number,
  ) {}

  static async start(): Promise<SilentDns> {
    const socket = createSocket('udp4');
    socket.on('message', () => {});
    const port = await new Promise<number>((res) => socket.bind(0, '127.0.0.1', () => res(socket.address().port)));
    return new SilentDns(socket, port);
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    await new Promise<void>((res) => this.socket.close(() => res()));
  }
}
