/**
 * The bootstrap configuration: only what is needed to start (data folder, database, listeners,
 * ports, TLS files, hostname). Everything else is a runtime setting kept in the store.
 *
 * Sources, later ones winning: built-in defaults, the TOML file (`--config`, or `./fulmar.toml`
 * when present), command-line flags.
 */
import { existsSync, readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { resolve } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { z } from 'zod';
import { SERVICES, resolvePorts, type ServiceName } from './ports.js';

const portNumber = z.number().int().min(1).max(65535);

const portsSchema = z
  .object(Object.fromEntries(SERVICES.map((s) => [s, portNumber.optional()])) as Record<ServiceName, z.ZodOptional<typeof portNumber>>)
  .strict();

const fileSchema = z
  .object({
    hostname: z.string().min(1).optional(),
    data: z.string().min(1).optional(),
    database: z.string().min(1).optional(),
    /** PostgreSQL only: where message bytes go, "database" (default) or a folder every node shares. */
    blobs: z.string().min(1).optional(),
    listen: z.union([z.string(), z.array(z.string())]).optional(),
    port_offset: z.number().int().min(0).max(65000).optional(),
    ports: portsSchema.optional(),
    tls: z.object({ cert: z.string().optional(), key: z.string().optional() }).strict().optional(),
    log: z.object({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).optional() }).strict().optional(),
    settings: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  })
  .strict();

export type ConfigFile = z.infer<typeof fileSchema>;

export interface BootstrapConfig {
  /** The config file that was read, or null. */
  configFile: string | null;
  hostname: string;
  dataDir: string;
  database: string;
  /** PostgreSQL only: "database", or the absolute path of a folder all nodes share. */
  blobs: string;
  listen: string[];
  portOffset: number;
  ports: Record<ServiceName, number>;
  tls: { cert: string | null; key: string | null };
  logLevel: string;
  /** Runtime settings given in the config file: defaults under what the store holds. */
  settings: Record<string, string>;
}

export interface BootstrapOverrides {
  config?: string;
  data?: string;
  database?: string;
  listen?: string[];
  portOffset?: number;
  hostname?: string;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function readConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (e) {
    const where = e instanceof TomlError ? ` (line ${e.line}, column ${e.column})` : '';
    throw new ConfigError(`config file ${path} is not valid TOML${where}: ${(e as Error).message.split('\n')[0]}`);
  }
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = issue.path.join('.') || '(top level)';
    throw new ConfigError(`config file ${path}: ${key}: ${issue.message}`);
  }
  return parsed.data;
}

export function loadBootstrapConfig(overrides: BootstrapOverrides, cwd = process.cwd()): BootstrapConfig {
  let configFile: string | null = null;
  if (overrides.config) {
    configFile = resolve(cwd, overrides.config);
    if (!existsSync(configFile)) throw new ConfigError(`config file ${configFile} does not exist`);
  } else if (existsSync(resolve(cwd, 'fulmar.toml'))) {
    configFile = resolve(cwd, 'fulmar.toml');
  }
  const file: ConfigFile = configFile ? readConfigFile(configFile) : {};
  const fileListen = file.listen === undefined ? undefined : Array.isArray(file.listen) ? file.listen : [file.listen];
  const portOffset = overrides.portOffset ?? file.port_offset ?? 0;
  let ports: Record<ServiceName, number>;
  try {
    ports = resolvePorts(file.ports ?? {}, portOffset);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const settings: Record<string, string> = {};
  for (const [k, v] of Object.entries(file.settings ?? {})) settings[k] = String(v);
  return {
    configFile,
    hostname: overrides.hostname ?? file.hostname ?? osHostname(),
    dataDir: resolve(cwd, overrides.data ?? file.data ?? 'data'),
    database: overrides.database ?? file.database ?? 'sqlite',
    blobs: file.blobs === undefined || file.blobs === 'database' ? 'database' : resolve(cwd, file.blobs),
    listen: overrides.listen ?? fileListen ?? ['::'],
    portOffset,
    ports,
    tls: { cert: file.tls?.cert ?? null, key: file.tls?.key ?? null },
    logLevel: file.log?.level ?? 'info',
    settings,
  };
}
