/**
 * The services every entry point needs (the server and each admin command): the store, the
 * directory and the runtime settings, built from the bootstrap config.
 */
import type { BootstrapConfig } from '../config/bootstrap.js';
import { Directory } from '../directory/directory.js';
import { RuntimeSettings } from '../store/runtime-settings.js';
import type { Store } from '../store/types.js';
import { openStore } from './open-store.js';

export interface Services {
  config: BootstrapConfig;
  store: Store;
  directory: Directory;
  settings: RuntimeSettings;
}

export async function openServices(
  config: BootstrapConfig,
  onInvalidSetting?: (key: string, error: string) => void,
): Promise<Services> {
  const store = await openStore(config);
  return {
    config,
    store,
    directory: new Directory(store.directory),
    settings: new RuntimeSettings(store.settings, config.settings, onInvalidSetting),
  };
}
