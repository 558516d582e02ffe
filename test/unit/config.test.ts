import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadBootstrapConfig } from '../../src/config/bootstrap.js';
import { resolvePorts, STANDARD_PORTS } from '../../src/config/ports.js';
import { formatSettingValue, parseSettingValue } from '../../src/config/settings-registry.js';
import { parseDuration } from '../../src/util/duration.js';
import { formatSize, parseSize } from '../../src/util/size.js';
import { dropSizeTooSmall, effectiveLimit } from '../../src/filters/size.js';

test('sizes as administrators write them', () => {
  assert.equal(parseSize('12345'), 12345);
  assert.equal(parseSize('512KB'), 512 * 1024);
  assert.equal(parseSize('10MB'), 10 * 1024 * 1024);
  assert.equal(parseSize('1GB'), 1024 ** 3);
  assert.equal(parseSize('10mb'), 10 * 1024 * 1024);
  assert.equal(parseSize('1.5M'), 1.5 * 1024 * 1024);
  assert.equal(parseSize('0'), 0);
  for (const bad of ['', 'ten', '10XB', '-1', '1 2', 'MB']) assert.equal(parseSize(bad), null, bad);
  assert.equal(formatSize(25 * 1024 * 1024), '25MB');
  assert.equal(formatSize(1000), '1000');
});

test('durations', () => {
  assert.equal(parseDuration('300'), 300_000);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('2h'), 7_200_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('soon'), null);
});

test('port offset moves every standard port; explicit ports win', () => {
  const p = resolvePorts({}, 10000);
  assert.equal(p.smtp, 10025);
  assert.equal(p.imap, 10143);
  assert.equal(p.minger, 14069);
  assert.equal(p.webmail, 13000);
  const q = resolvePorts({ smtp: 2525 }, 10000);
  assert.equal(q.smtp, 2525);
  assert.equal(q.submission, 10587);
  assert.deepEqual(resolvePorts({}, 0), STANDARD_PORTS);
  assert.throws(() => resolvePorts({}, 65000), /ports must be 1-65535/);
});

test('settings values are parsed and checked per key', () => {
  assert.deepEqual(parseSettingValue('smtp.max_message_size', '10MB'), { ok: true, value: 10 * 1024 * 1024 });
  assert.equal(parseSettingValue('smtp.max_message_size', 'big').ok, false);
  assert.deepEqual(parseSettingValue('auth.allow_plaintext', 'yes'), { ok: true, value: true });
  assert.equal(parseSettingValue('smtp.bare_newline', 'maybe').ok, false);
  assert.equal(parseSettingValue('smtp.idle_timeout', '0').ok, false);
  assert.deepEqual(parseSettingValue('auth.failure_delay', '0'), { ok: true, value: 0 });
  assert.equal(parseSettingValue('smtp.max_recipients', '0').ok, false);
  assert.equal(formatSettingValue('smtp.max_message_size', 20 * 1024 * 1024), '20MB');
});

test('size policy: the smallest limit among global and recipient domains', () => {
  assert.equal(effectiveLimit(1000, [null, 500, 800]), 500);
  assert.equal(effectiveLimit(0, [null]), Infinity);
  assert.equal(effectiveLimit(0, [300]), 300);
  assert.ok(dropSizeTooSmall(15, 10));
  assert.ok(!dropSizeTooSmall(20, 10));
  assert.ok(!dropSizeTooSmall(0, 10));
});

test('bootstrap config: file, flags and clear errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fulmar-config-'));
  writeFileSync(join(dir, 'fulmar.toml'), 'hostname = "mx.example.com"\nport_offset = 100\n[ports]\nimap = 1143\n[settings]\n"smtp.max_message_size" = "5MB"\n');
  const c = loadBootstrapConfig({}, dir);
  assert.equal(c.hostname, 'mx.example.com');
  assert.equal(c.ports.smtp, 125);
  assert.equal(c.ports.imap, 1143);
  assert.equal(c.settings['smtp.max_message_size'], '5MB');
  assert.equal(c.dataDir, join(dir, 'data'));
  const flags = loadBootstrapConfig({ portOffset: 10000, data: 'elsewhere' }, dir);
  assert.equal(flags.ports.smtp, 10025);
  assert.equal(flags.dataDir, join(dir, 'elsewhere'));

  writeFileSync(join(dir, 'bad.toml'), 'hostname = \n');
  assert.throws(() => loadBootstrapConfig({ config: 'bad.toml' }, dir), (e) => e instanceof ConfigError && /not valid TOML/.test(e.message));
  writeFileSync(join(dir, 'typo.toml'), 'hostnme = "x"\n');
  assert.throws(() => loadBootstrapConfig({ config: 'typo.toml' }, dir), ConfigError);
  assert.throws(() => loadBootstrapConfig({ config: 'missing.toml' }, dir), /does not exist/);
});
