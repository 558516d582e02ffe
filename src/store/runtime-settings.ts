/**
 * Typed access to runtime settings. A value comes from the store when set there, else from the
 * config file's `[settings]` table, else from the registry's default.
 *
 * Sessions take a `snapshot()` when they start (one query) and use it throughout, so a session
 * sees one consistent set of settings while every new session sees the latest values.
 */
import {
  SETTINGS,
  isSettingKey,
  parseSettingValue,
  type SettingKey,
  type SettingValue,
} from '../config/settings-registry.js';
import type { SettingsStore } from './types.js';

export class SettingsSnapshot {
  constructor(private readonly values: ReadonlyMap<string, number | boolean | string>) {}

  get<K extends SettingKey>(key: K): SettingValue<K> {
    const v = this.values.get(key);
    return (v === undefined ? SETTINGS[key].default : v) as SettingValue<K>;
  }
}

export class RuntimeSettings {
  constructor(
    private readonly store: SettingsStore,
    private readonly fileDefaults: Record<string, string> = {},
    private readonly onInvalid: (key: string, error: string) => void = () => {},
  ) {}

  async snapshot(): Promise<SettingsSnapshot> {
    const values = new Map<string, number | boolean | string>();
    const apply = (key: string, text: string, source: string): void => {
      if (!isSettingKey(key)) return;
      const parsed = parseSettingValue(key, text);
      if (parsed.ok) values.set(key, parsed.value);
      else this.onInvalid(key, `${source}: ${parsed.error}`);
    };
    for (const [key, text] of Object.entries(this.fileDefaults)) apply(key, text, 'config file');
    for (const { key, value } of await this.store.list()) apply(key, value, 'stored setting');
    return new SettingsSnapshot(values);
  }

  async get<K extends SettingKey>(key: K): Promise<SettingValue<K>> {
    return (await this.snapshot()).get(key);
  }
}
