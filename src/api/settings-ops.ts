// The shard-wide PostgreSQL settings through the API (manatee-adm config): read them, and change
// them with a compare-and-set on the store, each change checked against pg_settings of the
// primary first (src/peer/settings-admin.ts). A lost race (another operator wrote meanwhile) is
// retried on the new settings, checks and all.
import { ManateeError } from '../errors.js';
import { redactValuesIn } from '../model/index.js';
import { changeSettings, type SettingsChangeInput } from '../peer/settings-admin.js';
import type { PgSettingsCatalog } from '../postgres/settings.js';
import type { ShardSettings, VersionedSettings } from '../store/settings.js';

export interface SettingsStore {
  readSettings(): Promise<VersionedSettings>;
  putSettings(settings: ShardSettings, expectVersion: number): Promise<{ readonly version: number }>;
}

/** The answer to a settings change. */
export interface SettingsResult {
  readonly summary: string;
  readonly settings: ShardSettings;
  readonly version: number;
  /** Changed settings that take effect only when each peer's PostgreSQL restarts (manatee-adm restart --pending). */
  readonly restart: readonly string[];
  /** The summary with the values of secret-looking settings redacted, for the log (not sent: not in the answer's schema). */
  readonly logSummary?: string;
}

export interface SettingsOperations {
  read(): Promise<VersionedSettings>;
  change(input: SettingsChangeInput): Promise<SettingsResult>;
}

const ATTEMPTS_MAX = 5;

export function storeSettingsOperations(opts: {
  readonly store: SettingsStore;
  /** pg_settings of the primary (the settings' target), or an error naming why it cannot be read. */
  readonly catalog: () => Promise<PgSettingsCatalog>;
}): SettingsOperations {
  return {
    read: () => opts.store.readSettings(),
    async change(input) {
      const catalog = await opts.catalog();
      for (let attempt = 1; ; attempt++) {
        const { settings, version } = await opts.store.readSettings();
        if (input.expectVersion !== undefined && input.expectVersion !== version) {
          throw new ManateeError('MANATEE_ERR_STORE_VERSION_MISMATCH',
            `the shard settings changed meanwhile: version ${version}, not ${input.expectVersion}; nothing was written (show them again, and edit again)`);
        }
        const next = changeSettings(settings, input, catalog);
        if (next.summary === 'no change') return { summary: next.summary, settings, version, restart: [] };
        try {
          const written = await opts.store.putSettings(next.settings, version);
          return {
            summary: next.summary, settings: next.settings, version: written.version, restart: next.restart,
            logSummary: redactValuesIn(next.summary, settings, next.settings),
          };
        } catch (err) {
          if (!(err instanceof ManateeError && err.code === 'MANATEE_ERR_STORE_VERSION_MISMATCH') || attempt >= ATTEMPTS_MAX) throw err;
        }
      }
    },
  };
}
