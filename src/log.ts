// pino JSON logs, one line per decision, with the reason. Every room takes a Logger
// (a pino child with its room bound) instead of creating its own.
import { pino, destination, type Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  readonly level?: string;
  /** Where the JSON lines go; defaults to stdout. A path is opened for appending. */
  readonly destination?: string | number;
  readonly name?: string;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const dest = destination({ dest: opts.destination ?? 1, sync: true, mkdir: true });
  return pino({ level: opts.level ?? process.env['MANATEE_LOG_LEVEL'] ?? 'info', name: opts.name ?? 'manatee' }, dest);
}

/** A logger that writes nothing, for tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
