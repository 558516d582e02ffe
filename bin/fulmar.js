#!/usr/bin/env node
// The `fulmar` command: runs the compiled entry point (built by `npm run build`, which `npm ci` runs through `prepare`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const entry = new URL('../dist/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  console.error('fulmar: dist/main.js is missing; run `npm run build` (or `npm ci`) in the project folder first');
  process.exit(1);
}
await import(entry.href);
