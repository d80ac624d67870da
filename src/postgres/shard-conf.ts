// The shard-wide settings as PostgreSQL reads them (issue 15): manatee-shard.conf, included after
// Manatee's defaults and before the operator's per-peer overrides file, which stays the last word
// for its peer. And the report of where each effective value comes from, read from
// pg_file_settings (the files as they are now, reload or not) and pg_settings (what runs, and
// what waits for a restart).
import { basename } from 'node:path';
import { confValue } from './config.js';
import { MANATEE_SETTINGS } from './owned-settings.js';
import { checkSetting, PgSettingsError, type PgSettingsCatalog } from './settings.js';
import { isSecretSetting, SETTING_REDACTED, type PeerSettingReport, type RejectedSetting, type SettingSource } from '../model/index.js';

export const FILE_SHARD_CONF = 'manatee-shard.conf';

export function renderShardConf(settings: Readonly<Record<string, string>>, version: number): string {
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${confValue(v)}`);
  return [
    `# Managed by Manatee: the shard-wide settings (manatee-adm config), version ${version}.`,
    '# manatee-overrides.conf, read after this file, still wins for this peer.',
    ...lines,
    '',
  ].join('\n');
}

export type { PeerSettingReport, RejectedSetting, SettingSource } from '../model/index.js';

export function sourceOfFile(file: string | null): SettingSource {
  if (file === null) return 'default';
  switch (basename(file)) {
    case FILE_SHARD_CONF: return 'shard';
    case 'manatee-overrides.conf': return 'peer overrides file';
    case 'manatee.conf': return 'manatee default';
    case 'manatee-enforced.conf': return 'manatee enforced';
    case 'postgresql.auto.conf': return 'ALTER SYSTEM';
    default: return 'other file';
  }
}

/**
 * One query: for each name of `names` and each name set in the overrides file or the shard file,
 * the winning file entry (the last one read), the running value and pending_restart.
 */
export const SETTINGS_REPORT_QUERY = `
WITH f AS (
  SELECT DISTINCT ON (name) name, setting, sourcefile FROM pg_file_settings
  WHERE name IS NOT NULL ORDER BY name, seqno DESC
), wanted AS (
  SELECT unnest($1::text[]) AS name
  UNION SELECT name FROM pg_file_settings WHERE sourcefile LIKE '%/manatee-overrides.conf' OR sourcefile LIKE '%/${FILE_SHARD_CONF}'
)
SELECT w.name, f.setting AS value, f.sourcefile, current_setting(w.name, true) AS running, coalesce(s.pending_restart, false) AS pending
FROM wanted w LEFT JOIN f ON f.name = w.name LEFT JOIN pg_settings s ON s.name = w.name
ORDER BY w.name`;

export interface SettingsReportRow extends Record<string, unknown> {
  readonly name: string;
  readonly value: string | null;
  readonly sourcefile: string | null;
  readonly running: string | null;
  readonly pending: boolean;
}

export function settingsReport(rows: readonly SettingsReportRow[]): PeerSettingReport[] {
  return rows.map((r) => ({
    name: r.name,
    value: r.value,
    source: sourceOfFile(r.sourcefile),
    running: r.running,
    pendingRestart: r.pending,
  }));
}

/** Most lines of the configuration files with an error that one report lists. */
export const REJECTED_SETTINGS_MAX = 50;

/**
 * The lines of the configuration files that PostgreSQL refuses, as pg_file_settings reads the
 * files now (the same parse as a reload's), with pg_settings.pending_restart of each name.
 */
export const REJECTED_SETTINGS_QUERY = `
SELECT f.name, f.setting AS value, f.sourcefile, f.sourceline, f.error, coalesce(s.pending_restart, false) AS pending
FROM pg_file_settings f LEFT JOIN pg_settings s ON s.name = f.name
WHERE f.error IS NOT NULL ORDER BY f.seqno LIMIT ${REJECTED_SETTINGS_MAX}`;

export interface RejectedSettingRow extends Record<string, unknown> {
  readonly name: string | null;
  readonly value: string | null;
  readonly sourcefile: string | null;
  readonly sourceline: number | null;
  readonly error: string;
  readonly pending: boolean;
}

/** pg_file_settings.error of a line read, whose value PostgreSQL did not take (a bad value, or a postmaster setting changed). */
const NOT_APPLIED = 'setting could not be applied';

/**
 * The rows PostgreSQL refused, told apart from the postmaster settings that only wait for a
 * restart: both say "setting could not be applied", but only a pending one has
 * pg_settings.pending_restart. Any other error (an unknown name, a syntax error) makes PostgreSQL
 * skip every change of every file at a reload ("no changes were applied"), and every error of
 * either kind makes it refuse to start ("configuration file ... contains errors").
 */
export function rejectedSettings(rows: readonly RejectedSettingRow[]): RejectedSetting[] {
  return rows.filter((r) => !(r.error === NOT_APPLIED && r.pending)).map((r) => {
    const value = r.name !== null && r.value !== null && isSecretSetting(r.name) ? SETTING_REDACTED : r.value;
    const file = r.sourcefile === null ? null : basename(r.sourcefile);
    const where = `${file ?? 'a configuration file'}${r.sourceline === null ? '' : ` line ${r.sourceline}`}`;
    const blocksReload = r.error !== NOT_APPLIED;
    const what = r.error === 'unrecognized configuration parameter' && r.name !== null
      ? `unknown setting "${r.name}" in ${where}`
      : blocksReload
        ? `${where}: ${r.error}`
        : `invalid value ${JSON.stringify(value ?? '')} for ${r.name ?? '?'} in ${where}`;
    const effect = blocksReload
      ? 'PostgreSQL applies no change of any configuration file at a reload while it is there'
      : 'PostgreSQL keeps the previous value';
    return {
      name: r.name, value, file, source: sourceOfFile(r.sourcefile), line: r.sourceline, error: r.error, blocksReload,
      reason: `${what}: ${effect}, and would not start with it; correct or remove it`,
    };
  });
}

/** A row that may hide a bad value: pending_restart is one flag per setting and stays set. */
export function mayHideBadValue(r: RejectedSettingRow): boolean {
  return r.pending && r.error === NOT_APPLIED && r.name !== null && r.value !== null;
}

/**
 * pending_restart stays set once a postmaster setting changed, even when a later value in the
 * files is bad (shared_buffers = 'lots' in the overrides file after the shard set 48MB): checked
 * against the catalog here, such a row counts as refused, since PostgreSQL would not start with it.
 */
export function unmaskBadPendingValues(rows: readonly RejectedSettingRow[], catalog: PgSettingsCatalog): RejectedSettingRow[] {
  return rows.map((r) => {
    if (!mayHideBadValue(r)) return r;
    try {
      checkSetting(r.name!, r.value!, catalog);
      return r;
    } catch (err) {
      if (!(err instanceof PgSettingsError)) throw err;
      const valueRefused = err.problems.some((p) => ['MANATEE_ERR_PG_SETTING_INVALID', 'MANATEE_ERR_PG_SETTING_RANGE', 'MANATEE_ERR_PG_SETTING_ENUM'].includes(p.code));
      return valueRefused ? { ...r, pending: false } : r;
    }
  });
}

/** Of the settings pending a restart, those Manatee owns: a configure() restarts for these at once. */
export function ownedPending(names: readonly string[], enforced: readonly string[]): string[] {
  return names.filter((n) => enforced.includes(n) || MANATEE_SETTINGS.has(n));
}
