/** `fulmar start`: runs every service in the foreground until SIGTERM or SIGINT. */
import { Command, Option } from 'commander';
import { loadBootstrapConfig } from '../config/bootstrap.js';
import { addCommonOptions, allOptions, describeError, fail, overridesFrom, type CommonOptions } from './common.js';

interface StartOptions extends CommonOptions {
  listen?: string[];
  portOffset?: string;
  hostname?: string;
}

export function registerStartCommand(program: Command): void {
  addCommonOptions(
    program
      .command('start')
      .description('run the mail server in the foreground (logs one JSON line per event on stdout)')
      .addOption(new Option('--listen <addr...>', 'addresses to listen on (default all: ::, falling back to 0.0.0.0)'))
      .addOption(new Option('--port-offset <n>', 'add N to every standard port, e.g. 10000 puts SMTP on 10025'))
      .addOption(new Option('--hostname <name>', 'the server name in greetings and Received headers (default: the machine name)')),
  ).action(async (_o: unknown, cmd: Command) => {
    const opts = allOptions<StartOptions>(cmd);
    const overrides = overridesFrom(opts);
    if (opts.listen) overrides.listen = opts.listen;
    if (opts.hostname) overrides.hostname = opts.hostname;
    if (opts.portOffset !== undefined) {
      if (!/^\d+$/.test(opts.portOffset)) fail(`--port-offset takes a whole number, got "${opts.portOffset}"`);
      overrides.portOffset = Number(opts.portOffset);
    }
    let config;
    try {
      config = loadBootstrapConfig(overrides);
    } catch (e) {
      fail(describeError(e));
    }
    // Loaded here, so that admin commands do not pay for the servers' modules.
    const { Fulmar } = await import('../app/fulmar.js');
    const { createLogger } = await import('../log/logger.js');
    const log = createLogger(config.logLevel);
    const app = new Fulmar(config, log);
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        log.warn({ event: 'app.forced_exit', signal }, 'second signal: exiting at once');
        process.exit(1);
      }
      stopping = true;
      log.info({ event: 'app.signal', signal }, `received ${signal}`);
      app.stop().then(
        () => process.exit(0),
        (err) => {
          log.error({ event: 'app.stop_failed', err }, 'error while stopping');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    try {
      await app.start();
    } catch (e) {
      log.fatal({ event: 'app.start_failed', err: describeError(e) }, describeError(e));
      await app.stop().catch(() => {});
      fail(describeError(e));
    }
  });
}
