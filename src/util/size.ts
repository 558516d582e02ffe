/**
 * Byte sizes as administrators write them: `12345`, `512KB`, `10MB`, `1GB` (binary units:
 * 1KB = 1024 bytes, as MDaemon and Postfix's documentation count them). `0` means "no limit"
 * wherever a limit is configured.
 */
const UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  K: 1024,
  KB: 1024,
  KIB: 1024,
  M: 1024 ** 2,
  MB: 1024 ** 2,
  MIB: 1024 ** 2,
  G: 1024 ** 3,
  GB: 1024 ** 3,
  GIB: 1024 ** 3,
  T: 1024 ** 4,
  TB: 1024 ** 4,
  TIB: 1024 ** 4,
};

/** Parses a size; returns null when the text is not a size. */
export function parseSize(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!m) return null;
  const unit = UNITS[m[2]!.toUpperCase()];
  if (unit === undefined) return null;
  const value = Number(m[1]) * unit;
  if (!Number.isFinite(value) || value > Number.MAX_SAFE_INTEGER) return null;
  return Math.round(value);
}

/** Formats bytes in the largest unit that divides them exactly, else with one decimal. */
export function formatSize(bytes: number): string {
  if (bytes === 0) return '0';
  const units: Array<[string, number]> = [
    ['GB', 1024 ** 3],
    ['MB', 1024 ** 2],
    ['KB', 1024],
  ];
  for (const [name, n] of units) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${name}`;
  }
  for (const [name, n] of units) {
    if (bytes >= n) return `${(bytes / n).toFixed(1)}${name}`;
  }
  return `${bytes}`;
}
