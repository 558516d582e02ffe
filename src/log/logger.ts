/**
 * Structured logging: one JSON line per event on stdout (pino). Events carry a stable `event`
 * name and, inside a session, the session id `sid`, so one grep follows one connection.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level = 'info', destination: NodeJS.WritableStream = process.stdout): Logger {
  return pino(
    {
      level,
      base: { svc: 'fulmar' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination as pino.DestinationStream,
  );
}

/** A logger that drops everything (for CLI commands and tests that do not want output). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
