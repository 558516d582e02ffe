/**
 * The mailbox event bus across nodes: events are published to this process's listeners at once
 * (as the in-memory bus does) and to the other nodes through PostgreSQL NOTIFY; a dedicated
 * connection LISTENs and republishes what other nodes sent.
 *
 * Invariants
 * - publish() never throws and never waits: a NOTIFY that fails is logged away; an IMAP session
 *   on another node then learns of the change at its next command instead of at once.
 * - One node's events reach the others in the order it published them: notifications are sent
 *   in batches, one statement at a time, from one chain.
 * - A node ignores its own notifications (they carry its random node id).
 * - The LISTEN connection is re-opened after a failure, with a delay.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { MemoryEventBus } from '../memory-events.js';
import type { EventBus, MailEvent } from '../types.js';
import type { Db } from './db.js';

/** NOTIFY payloads must stay under 8000 bytes. */
const MAX_PAYLOAD = 7900;

export class PgEventBus implements EventBus {
  private readonly local = new MemoryEventBus();
  private readonly node = randomUUID();
  private readonly channel: string;
  private listener: pg.Client | null = null;
  private pending: string[] = [];
  private sending: Promise<void> | null = null;
  private closed = false;
  private retry: NodeJS.Timeout | null = null;

  constructor(private readonly db: Db) {
    this.channel = `fulmar_events_${db.options.schema ?? 'public'}`;
  }

  /** Starts listening for other nodes' events; resolves once LISTEN is in place. */
  async start(): Promise<void> {
    const client = await this.db.dedicatedClient();
    client.on('notification', (message) => this.receive(message.channel, message.payload));
    client.on('error', () => this.reconnect(client));
    client.on('end', () => this.reconnect(client));
    await client.query(`LISTEN "${this.channel}"`);
    this.listener = client;
  }

  publish(event: MailEvent): void {
    this.local.publish(event);
    if (this.closed) return;
    const payload = JSON.stringify({ n: this.node, e: event });
    if (payload.length > MAX_PAYLOAD) return;
    this.pending.push(payload);
    this.sending ??= this.flush();
  }

  subscribe(accountId: number, listener: (event: MailEvent) => void): () => void {
    return this.local.subscribe(accountId, listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    await this.sending;
    const client = this.listener;
    this.listener = null;
    await client?.end().catch(() => {});
  }

  private async flush(): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        await this.db.query('SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, i) ORDER BY i', [this.channel, batch]);
      } catch {
        // The other nodes miss these; their sessions catch up at the next command.
      }
    }
    this.sending = null;
  }

  private receive(channel: string, payload: string | undefined): void {
    if (channel !== this.channel || !payload) return;
    try {
      const { n, e } = JSON.parse(payload) as { n: string; e: MailEvent };
      if (n !== this.node && typeof e?.accountId === 'number') this.local.publish(e);
    } catch {
      // Not ours.
    }
  }

  private reconnect(client: pg.Client): void {
    if (this.listener !== client || this.closed) return;
    this.listener = null;
    client.end().catch(() => {});
    const again = (): void => {
      this.retry = null;
      if (this.closed) return;
      this.start().catch(() => {
        this.retry = setTimeout(again, 1000);
        this.retry.unref();
      });
    };
    this.retry = setTimeout(again, 200);
    this.retry.unref();
  }
}
