/**
 * The running server: builds every part from the bootstrap config, starts the listeners, and
 * stops them in order (listeners, sessions, store) on SIGTERM/SIGINT.
 */
import { hostname as osHostname } from 'node:os';
import type { BootstrapConfig } from '../config/bootstrap.js';
import { dropSizeTooSmall } from '../filters/size.js';
import type { Logger } from '../log/logger.js';
import type { Listener } from '../net/listener.js';
import { ensureTlsFiles, loadTlsMaterial } from '../net/tls.js';
import { collectorOwner } from '../collect/collector.js';
import { CollectSchedule, collectClock } from '../collect/schedule.js';
import { ImapServer } from '../imap/server.js';
import { LoginFailures } from '../net/limits.js';
import { MaildropLocks } from '../pop3/locks.js';
import { Pop3Server } from '../pop3/server.js';
import { QueueRunner } from '../queue/runner.js';
import { SmtpServer } from '../smtp/server/server.js';
import { openServices, type Services } from './services.js';

export class Fulmar {
  private smtp: SmtpServer | null = null;
  private pop3: Pop3Server | null = null;
  private imap: ImapServer | null = null;
  private queue: QueueRunner | null = null;
  private collect: CollectSchedule | null = null;
  /** Failed logins per IP address, shared by every protocol. */
  private readonly loginFailures = new LoginFailures();
  private services: Services | null = null;
  private stopped = false;

  constructor(
    private readonly config: BootstrapConfig,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const { config, log } = this;
    log.info({ event: 'app.starting', data: config.dataDir, database: config.database, hostname: config.hostname, config: config.configFile }, 'starting');
    const services = await openServices(config, (key, error) => log.warn({ event: 'settings.invalid', key }, error));
    this.services = services;
    const tlsFiles = await ensureTlsFiles(config.dataDir, config.hostname, config.tls);
    if (tlsFiles.selfSigned) {
      log.info({ event: 'tls.self_signed', cert: tlsFiles.cert }, `using a self-signed certificate for ${config.hostname}; set tls.cert and tls.key in the config for a real one`);
    }
    const tls = loadTlsMaterial(tlsFiles);

    const snapshot = await services.settings.snapshot();
    if (dropSizeTooSmall(snapshot.get('smtp.drop_connection_size'), snapshot.get('smtp.max_message_size'))) {
      log.warn(
        { event: 'settings.drop_size_small' },
        'smtp.drop_connection_size is below twice smtp.max_message_size: senders retry dropped connections and multiply bandwidth',
      );
    }
    if ((await services.directory.listDomains()).length === 0) {
      log.warn({ event: 'app.no_domains' }, 'no local domains yet: add one with `fulmar domain add example.com` and a user with `fulmar user add`');
    }

    const queue = new QueueRunner({
      hostname: config.hostname,
      owner: `${osHostname()}:${config.dataDir}`,
      queue: services.store.queue,
      mail: services.store.mail,
      blobs: services.store.blobs,
      directory: services.directory,
      settings: services.settings,
      log,
    });
    this.queue = queue;
    this.smtp = new SmtpServer({
      addresses: config.listen,
      ports: config.ports,
      tls,
      services: {
        hostname: config.hostname,
        directory: services.directory,
        mail: services.store.mail,
        blobs: services.store.blobs,
        failures: this.loginFailures,
        onQueued: () => queue.kick(),
      },
      settings: services.settings,
      log,
    });
    const listeners: Listener[] = await this.smtp.start();
    this.pop3 = new Pop3Server({
      addresses: config.listen,
      ports: config.ports,
      tls,
      services: {
        hostname: config.hostname,
        directory: services.directory,
        mail: services.store.mail,
        locks: new MaildropLocks(services.store.locks),
        failures: this.loginFailures,
      },
      settings: services.settings,
      log,
    });
    listeners.push(...(await this.pop3.start()));
    this.imap = new ImapServer({
      addresses: config.listen,
      ports: config.ports,
      tls,
      services: {
        hostname: config.hostname,
        directory: services.directory,
        mail: services.store.mail,
        blobs: services.store.blobs,
        events: services.store.events,
        failures: this.loginFailures,
      },
      settings: services.settings,
      log,
    });
    listeners.push(...(await this.imap.start()));
    for (const l of listeners) log.info({ event: 'app.listening', service: l.name, port: l.port, addresses: l.addresses }, `${l.name} listening on port ${l.port}`);
    queue.start();
    this.collect = new CollectSchedule({
      store: services.store,
      directory: services.directory,
      settings: services.settings,
      hostname: config.hostname,
      log,
      owner: collectorOwner(),
      now: collectClock(),
      onQueued: () => queue.kick(),
    });
    this.collect.start();
    log.info({ event: 'app.started', pid: process.pid }, 'Fulmar is running');
    // Crash leftovers: message files placed but never committed. An hour old at least, so no
    // delivery of another process can still be on its way to committing them.
    services.store.sweepOrphans(3_600_000).then(
      (removed) => {
        if (removed > 0) log.info({ event: 'store.orphans_removed', count: removed }, `removed ${removed} unreferenced message file(s)`);
      },
      (err: unknown) => log.warn({ event: 'store.sweep_failed', err }, 'could not sweep unreferenced message files'),
    );
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.log.info({ event: 'app.stopping' }, 'stopping');
    await Promise.all([this.smtp?.stop(), this.pop3?.stop(), this.imap?.stop(), this.queue?.stop(), this.collect?.stop()]);
    if (this.services) await this.services.store.close();
    this.log.info({ event: 'app.stopped' }, 'stopped');
  }
}
