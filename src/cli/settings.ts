/** `fulmar settings set|get|list|unset`: runtime settings, stored in the database, live at once. */
import type { Command } from 'commander';
import { SETTINGS, formatSettingValue, isSettingKey, parseSettingValue, type SettingKey } from '../config/settings-registry.js';
import { dropSizeTooSmall } from '../filters/size.js';
import { InvalidInput } from '../util/errors.js';
import { formatSize } from '../util/size.js';
import { addCommonOptions, allOptions, printTable, withServices, type CommonOptions } from './common.js';

function knownKey(key: string): SettingKey {
  if (!isSettingKey(key)) {
    throw new InvalidInput(`unknown setting "${key}"; \`fulmar settings list\` shows them all`);
  }
  return key;
}

export function registerSettingsCommands(program: Command): void {
  const settings = program.command('settings').description('read and change runtime settings (the running server sees changes at once)');

  addCommonOptions(
    settings.command('set').argument('<key>').argument('<value>').description('change a setting, e.g. settings set smtp.max_message_size 20MB'),
  ).action(async (key: string, value: string, _o: unknown, cmd: Command) => {
    await withServices(allOptions<CommonOptions>(cmd), async ({ store, settings: runtime }) => {
      const k = knownKey(key);
      const parsed = parseSettingValue(k, value);
      if (!parsed.ok) throw new InvalidInput(parsed.error);
      // Stored as text that parses back to the same value: a duration's bare number means
      // seconds to the parser, so milliseconds must carry their unit.
      await store.settings.set(k, SETTINGS[k].kind === 'duration' ? `${String(parsed.value)}ms` : String(parsed.value));
      process.stdout.write(`${k} = ${formatSettingValue(k, parsed.value)}\n`);
      const snap = await runtime.snapshot();
      const drop = snap.get('smtp.drop_connection_size');
      const max = snap.get('smtp.max_message_size');
      if ((k === 'smtp.drop_connection_size' || k === 'smtp.max_message_size') && dropSizeTooSmall(drop, max)) {
        process.stderr.write(
          `warning: smtp.drop_connection_size (${formatSize(drop)}) is below twice smtp.max_message_size (${formatSize(max)}). ` +
            'Senders treat a dropped connection as temporary and retry, multiplying bandwidth; ' +
            'oversized messages are already refused with 552. Use it only against disk-fill attacks, at 2-3x the message limit or more.\n',
        );
      }
    });
  });

  addCommonOptions(settings.command('get').argument('<key>').description('show one setting')).action(
    async (key: string, _o: unknown, cmd: Command) => {
      await withServices(allOptions<CommonOptions>(cmd), async ({ settings: runtime }) => {
        const k = knownKey(key);
        const snap = await runtime.snapshot();
        process.stdout.write(`${formatSettingValue(k, snap.get(k))}\n`);
      });
    },
  );

  addCommonOptions(settings.command('unset').argument('<key>').description('return a setting to its default')).action(
    async (key: string, _o: unknown, cmd: Command) => {
      await withServices(allOptions<CommonOptions>(cmd), async ({ store }) => {
        const k = knownKey(key);
        await store.settings.delete(k);
        process.stdout.write(`${k} reset to its default\n`);
      });
    },
  );

  addCommonOptions(settings.command('list').option('-v, --verbose', 'also describe each setting').description('show every setting with its value')).action(
    async (_o: unknown, cmd: Command) => {
      const opts = allOptions<CommonOptions & { verbose?: boolean }>(cmd);
      await withServices(opts, async ({ store, settings: runtime }) => {
        const snap = await runtime.snapshot();
        const stored = new Set((await store.settings.list()).map((s) => s.key));
        const rows = (Object.keys(SETTINGS) as SettingKey[]).sort().map((k) => {
          const row = [k, formatSettingValue(k, snap.get(k)), stored.has(k) ? 'set' : 'default'];
          if (opts.verbose) row.push(SETTINGS[k].description);
          return row;
        });
        printTable([['KEY', 'VALUE', 'SOURCE', ...(opts.verbose ? ['DESCRIPTION'] : [])], ...rows]);
      });
    },
  );
}
