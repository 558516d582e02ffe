/** `fulmar migrate --to postgres://...`: copies the embedded (SQLite) site into PostgreSQL. */
import type { Command } from 'commander';
import { Option } from 'commander';
import { migrateToPostgres } from '../app/migrate.js';
import { loadBootstrapConfig } from '../config/bootstrap.js';
import { addCommonOptions, allOptions, describeError, fail, overridesFrom, type CommonOptions } from './common.js';

interface MigrateOptions extends CommonOptions {
  to: string;
  blobs?: string;
}

export function registerMigrateCommand(program: Command): void {
  addCommonOptions(
    program
      .command('migrate')
      .description('copy this site (the embedded SQLite store and its message files) into a PostgreSQL database; stop the server first')
      .addOption(new Option('--to <url>', 'the PostgreSQL database, e.g. postgres://fulmar@db.example.com/fulmar (created when absent)').makeOptionMandatory())
      .addOption(new Option('--blobs <where>', 'where message bytes go: "database" (default) or a folder every node mounts')),
  ).action(async (_o: unknown, cmd: Command) => {
    const opts = allOptions<MigrateOptions>(cmd);
    if (!/^postgres(ql)?:\/\//.test(opts.to)) fail(`--to takes a postgres:// URL, not "${opts.to}"`);
    let config;
    try {
      config = loadBootstrapConfig(overridesFrom(opts));
    } catch (e) {
      fail(describeError(e));
    }
    if (config.database !== 'sqlite' && !config.database.startsWith('sqlite:')) fail(`this site already runs on ${config.database}; migrate copies an embedded (SQLite) site`);
    const started = Date.now();
    try {
      const log = (line: string): void => void process.stderr.write(`${line}\n`);
      const report = await migrateToPostgres(config, { url: opts.to, blobs: opts.blobs ?? config.blobs }, log);
      const rows = report.tables.reduce((n, t) => n + t.rows, 0);
      process.stdout.write(
        `copied ${rows} rows and ${report.blobs} message bodies (${(report.blobBytes / 1024 / 1024).toFixed(1)} MB) in ${((Date.now() - started) / 1000).toFixed(1)} s\n` +
          `to run on PostgreSQL, set in the config file:  database = "${opts.to}"${opts.blobs && opts.blobs !== 'database' ? `\n  blobs = "${opts.blobs}"` : ''}\n`,
      );
    } catch (e) {
      fail(`migration failed, nothing was kept in PostgreSQL: ${describeError(e)}`);
    }
  });
}
