/** `fulmar queue list|show|retry|delete|hold|release`: the outbound queue, as Postfix's postqueue/postsuper. */
import type { Command } from 'commander';
import type { QueuedMessage } from '../store/types.js';
import { addCommonOptions, allOptions, fail, printTable, withServices, type CommonOptions } from './common.js';

function parseId(text: string): number {
  if (!/^\d+$/.test(text)) fail(`"${text}" is not a queue id; see the ID column of fulmar queue list`);
  return Number(text);
}

function age(date: Date): string {
  const s = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

function pending(m: QueuedMessage): QueuedMessage['recipients'] {
  return m.recipients.filter((r) => r.status === 'queued' || r.status === 'deferred');
}

export function registerQueueCommands(program: Command): void {
  const queue = program.command('queue').description('inspect and manage the outbound queue (mail waiting for other servers)');

  addCommonOptions(queue.command('list').description('list queued messages with their waiting recipients and last error')).action(
    async (_o: unknown, cmd: Command) => {
      await withServices(allOptions<CommonOptions>(cmd), async ({ store }) => {
        const messages = await store.queue.listQueued();
        if (messages.length === 0) {
          process.stderr.write('the queue is empty\n');
          return;
        }
        const rows = [['ID', 'AGE', 'SIZE', 'FROM', 'WAITING', 'NEXT', 'LAST ERROR']];
        for (const m of messages) {
          const waiting = pending(m);
          const next = waiting.length > 0 ? new Date(Math.min(...waiting.map((r) => r.nextAttemptAt.getTime()))) : null;
          const lastError = waiting.find((r) => r.lastError)?.lastError ?? '';
          rows.push([
            `${m.id}${m.held ? ' (held)' : ''}`,
            age(m.createdAt),
            String(m.size),
            m.mailFrom === '' ? '<>' : m.mailFrom,
            waiting.map((r) => r.address).join(', '),
            next ? (next.getTime() <= Date.now() ? 'now' : `in ${age(new Date(2 * Date.now() - next.getTime()))}`) : '-',
            lastError.length > 60 ? `${lastError.slice(0, 57)}...` : lastError,
          ]);
        }
        printTable(rows);
      });
    },
  );

  addCommonOptions(queue.command('show').argument('<id>').description('show one queued message and every recipient')).action(
    async (id: string, _o: unknown, cmd: Command) => {
      await withServices(allOptions<CommonOptions>(cmd), async ({ store }) => {
        const m = await store.queue.getQueued(parseId(id));
        if (!m) fail(`no message ${id} in the queue`);
        const out = [
          `id:         ${m.id}${m.held ? ' (held: fulmar queue release ' + m.id + ')' : ''}`,
          `from:       ${m.mailFrom === '' ? '<> (a delivery notification)' : m.mailFrom}`,
          `queued:     ${m.createdAt.toISOString()} (${age(m.createdAt)} ago)`,
          `size:       ${m.size}`,
          ...(m.envId ? [`envid:      ${m.envId}`] : []),
          ...(m.ret ? [`ret:        ${m.ret}`] : []),
          'recipients:',
        ];
        for (const r of m.recipients) {
          out.push(`  ${r.address}  ${r.status}, ${r.attempts} attempt(s)${r.status === 'deferred' || r.status === 'queued' ? `, next ${r.nextAttemptAt.toISOString()}` : ''}`);
          if (r.lastError) out.push(`    last error: ${r.lastError}${r.remoteMta ? ` (${r.remoteMta})` : ''}`);
        }
        process.stdout.write(`${out.join('\n')}\n`);
      });
    },
  );

  addCommonOptions(queue.command('retry').argument('[id]').description('make deferred mail due now (one message, or all)')).action(
    async (id: string | undefined, _o: unknown, cmd: Command) => {
      await withServices(allOptions<CommonOptions>(cmd), async ({ store }) => {
        const n = await store.queue.retryNow(id === undefined ? undefined : parseId(id));
        process.stdout.write(`${n} recipient(s) due now; the running server delivers them within seconds\n`);
      });
    },
  );

  for (const [name, description] of [
    ['delete', 'remove a message from the queue without telling its sender'],
    ['hold', 'keep a message in the queue without delivering it'],
    ['release', 'let a held message be delivered again'],
  ] as const) {
    addCommonOptions(queue.command(name).argument('<id>').description(description)).action(async (id: string, _o: unknown, cmd: Command) => {
      await withServices(allOptions<CommonOptions>(cmd), async ({ store }) => {
        const queueId = parseId(id);
        if (name === 'delete') await store.queue.deleteQueued(queueId);
        else await store.queue.setHeld(queueId, name === 'hold');
        // A released message is tried at once, not at the time its schedule had reached.
        if (name === 'release') await store.queue.retryNow(queueId);
        process.stdout.write(`${name === 'delete' ? 'deleted' : name === 'hold' ? 'held' : 'released'} message ${queueId}\n`);
      });
    });
  }
}
