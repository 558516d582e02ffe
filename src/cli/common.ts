/**
 * What every admin command shares: the `--data`, `--config` and `--database` options, opening
 * the services for one command, and turning errors into one clear line and a non-zero exit.
 */
import { Command, Option } from 'commander';
import { ConfigError, loadBootstrapConfig, type BootstrapOverrides } from '../config/bootstrap.js';
import { openServices, type Services } from '../app/services.js';
import { isFulmarError } from '../util/errors.js';

export interface CommonOptions {
  data?: string;
  config?: string;
  database?: string;
}

export function addCommonOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--data <dir>', 'data folder (default ./data, or `data` in the config file)'))
    .addOption(new Option('--config <file>', 'config file (default ./fulmar.toml when present)'))
    .addOption(new Option('--database <url>', 'database: "sqlite" (embedded, default) or a postgres:// URL'));
}

export function overridesFrom(opts: CommonOptions): BootstrapOverrides {
  const o: BootstrapOverrides = {};
  if (opts.data !== undefined) o.data = opts.data;
  if (opts.config !== undefined) o.config = opts.config;
  if (opts.database !== undefined) o.database = opts.database;
  return o;
}

/** The error line a command prints; our own errors are already written for people. */
export function describeError(e: unknown): string {
  if (isFulmarError(e) || e instanceof ConfigError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

export function fail(message: string): never {
  process.stderr.write(`fulmar: ${message}\n`);
  process.exit(1);
}

/** Runs one admin action with the services open, and closes them after. */
export async function withServices(opts: CommonOptions, action: (services: Services) => Promise<void>): Promise<void> {
  let services: Services | null = null;
  try {
    const config = loadBootstrapConfig(overridesFrom(opts));
    services = await openServices(config);
    await action(services);
  } catch (e) {
    if (services) await services.store.close().catch(() => {});
    fail(describeError(e));
  }
  await services.store.close();
}

/** The options object of an action's own command merged with the options of its parents. */
export function allOptions<T>(cmd: Command): T {
  return cmd.optsWithGlobals() as T;
}

export function printTable(rows: string[][]): void {
  if (rows.length === 0) return;
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows) {
    process.stdout.write(r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ') + '\n');
  }
}
