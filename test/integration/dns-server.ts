/**
 * A real DNS server on loopback for tests (dns2, UDP on 127.0.0.1 and a random port), serving
 * a zone held in memory that a test can change while it runs, and a node:dns Resolver pointed
 * at it (the same kind src/net/dns.ts builds from `dns.servers`).
 *
 * Names not in the zone answer NXDOMAIN. A name listed in `servfail` answers SERVFAIL, one in
 * `silent` never answers (a timeout). Every question is recorded in `queries`.
 */
import dns2 from 'dns2';
import { Resolver } from 'node:dns/promises';

const { Packet } = dns2;
/** rfc1035 4.1.1 RCODE values (dns2's typings lack Packet.RCODE). */
const SERVFAIL = 2;
const NXDOMAIN = 3;

export interface ZoneEntry {
  mx?: Array<{ exchange: string; preference: number }>;
  a?: string[];
  aaaa?: string[];
  txt?: string[][];
}

export class TestDnsServer {
  readonly zone = new Map<string, ZoneEntry>();
  readonly servfail = new Set<string>();
  readonly silent = new Set<string>();
  readonly queries: Array<{ name: string; type: string }> = [];
  private server: ReturnType<typeof dns2.createServer> | null = null;
  port = 0;

  /** `host:port`, for `setServers` or the `dns.servers` setting. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  set(name: string, entry: ZoneEntry): this {
    this.zone.set(name.toLowerCase(), entry);
    return this;
  }

  async start(): Promise<this> {
    const server = dns2.createServer({
      udp: true,
      handle: (request, send) => {
        const response = Packet.createResponseFromRequest(request);
        const question = request.questions[0];
        if (question === undefined) {
          send(response);
          return;
        }
        const name = question.name.toLowerCase().replace(/\.$/, '');
        const type = Object.entries(Packet.TYPE).find(([, v]) => v === question.type)?.[0] ?? String(question.type);
        this.queries.push({ name, type });
        if (this.silent.has(name)) return;
        if (this.servfail.has(name)) {
          response.header.rcode = SERVFAIL;
          send(response);
          return;
        }
        const entry = this.zone.get(name);
        if (entry === undefined) {
          response.header.rcode = NXDOMAIN;
          send(response);
          return;
        }
        const base = { name: question.name, class: Packet.CLASS.IN, ttl: 60 };
        // Plain records: dns2 encodes them, though its typings want Resource objects.
        const answers = response.answers as unknown as Array<Record<string, unknown>>;
        if (question.type === Packet.TYPE.MX) {
          for (const mx of entry.mx ?? []) {
            answers.push({ ...base, type: Packet.TYPE.MX, exchange: mx.exchange.replace(/\.$/, ''), priority: mx.preference });
          }
        } else if (question.type === Packet.TYPE.A) {
          for (const address of entry.a ?? []) answers.push({ ...base, type: Packet.TYPE.A, address });
        } else if (question.type === Packet.TYPE.AAAA) {
          for (const address of entry.aaaa ?? []) answers.push({ ...base, type: Packet.TYPE.AAAA, address });
        } else if (question.type === Packet.TYPE.TXT) {
          for (const data of entry.txt ?? []) answers.push({ ...base, type: Packet.TYPE.TXT, data });
        }
        send(response);
      },
    });
    const addresses = await server.listen({ udp: { port: 0, address: '127.0.0.1' } });
    this.server = server;
    this.port = (addresses.udp as { port: number }).port;
    return this;
  }

  /** A resolver that asks only this server; short timeouts so failures show fast. */
  resolver(timeoutMs = 500, tries = 1): Resolver {
    // Node 20 aborts the process (a C++ assertion) on setServers with port 0.
    if (this.port === 0) throw new Error('TestDnsServer: start() first');
    const resolver = new Resolver({ timeout: timeoutMs, tries });
    resolver.setServers([this.address]);
    return resolver;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) await server.close();
  }
}
