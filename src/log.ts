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

/** What a log line shows instead of a secret. */
export const REDACTED = '[redacted]';

// Every field that can hold a secret, wherever a log line carries it (a configuration, a request's
// headers, an error's options): its value is replaced by REDACTED before the line is written. Logs
// are shipped and kept; the shard secret is the root credential (the database passwords derive
// from it). pino's `*` stands for one level, so each name is listed at the depths it can appear.
const SECRET_KEYS = [
  'secret', 'secrets', 'adminToken', 'adminTokens', 'token', 'password', 'passwords', 'superuserPassword', 'replicationPassword',
  'privateKey', 'authorization', '["x-manatee-secret"]', 'PGPASSWORD',
] as const;
export const REDACT_PATHS: readonly string[] = [
  ...SECRET_KEYS.flatMap((k) => {
    const key = k.startsWith('[') ? k : `.${k}`;
    const top = k.startsWith('[') ? `*${k}` : k;
    return [top, `*${key}`, `*.*${key}`, `*.*.*${key}`];
  }),
  'options.key', '*.options.key', 'tls.key', '*.tls.key',
];

export function createLogger(opts: LoggerOptions = {}): Logger {
  const dest = destination({ dest: opts.destination ?? 1, sync: true, mkdir: true });
  return pino({
    level: opts.level ?? process.env['MANATEE_LOG_LEVEL'] ?? 'info',
    name: opts.name ?? 'manatee',
    redact: { paths: [...REDACT_PATHS], censor: REDACTED },
  }, dest);
}

/** A logger that writes nothing, for tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
