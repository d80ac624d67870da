// An operator's change of the shard-wide PostgreSQL settings (manatee-adm config set / unset /
// edit), computed from the current settings and checked against pg_settings of the primary.
// Pure: the catalog is read by the caller. A change with any bad setting is refused whole,
// naming every bad one, and nothing is written.
import { ManateeError } from '../errors.js';
import { checkSettings, PgSettingsError, type CheckedSetting, type PgSettingsCatalog, type SettingProblem } from '../postgres/settings.js';
import { canonicalSettings, SHARD_SETTINGS_MAX, summarizeSettingsChange, type ShardSettings } from '../store/settings.js';

/** Set some names, unset others; or replace the whole set (config edit). */
export interface SettingsChangeInput {
  readonly set?: Readonly<Record<string, string>>;
  readonly unset?: readonly string[];
  /** The whole new set (config edit): `set` and `unset` must then be absent. */
  readonly replace?: Readonly<Record<string, string>>;
  /** Write only if the settings are still at this version (config edit: the version it showed the editor). */
  readonly expectVersion?: number;
}

export interface SettingsChange {
  readonly settings: ShardSettings;
  readonly summary: string;
  /** Of the changed settings, those that take effect only at a restart (postmaster context). */
  readonly restart: readonly string[];
  /** Each setting that was checked, as checked. */
  readonly checked: readonly CheckedSetting[];
}

export class SettingsChangeError extends ManateeError {
  constructor(code: string, message: string, readonly problems: readonly SettingProblem[] = []) {
    super(code, message);
  }
}

export function changeSettings(current: ShardSettings, input: SettingsChangeInput, catalog: PgSettingsCatalog): SettingsChange {
  const { set, unset, replace } = input;
  if (replace !== undefined && (set !== undefined || unset !== undefined)) {
    throw new SettingsChangeError('MANATEE_ERR_INVALID_ARGUMENT', 'a settings change replaces the whole set, or sets and unsets names, not both');
  }
  const given = replace ?? set ?? {};
  if (replace === undefined && Object.keys(given).length === 0 && (unset ?? []).length === 0) {
    throw new SettingsChangeError('MANATEE_ERR_INVALID_ARGUMENT', 'nothing to change: give at least one name=value to set or one name to unset');
  }
  let checked: CheckedSetting[];
  try {
    checked = checkSettings(given, catalog);
  } catch (err) {
    if (err instanceof PgSettingsError) throw new SettingsChangeError(err.code, err.message, err.problems);
    throw err;
  }
  const next = new Map<string, string>(replace === undefined ? Object.entries(current) : []);
  for (const c of checked) next.set(c.name, c.value);
  for (const raw of unset ?? []) {
    const name = raw.toLowerCase();
    if (given[raw] !== undefined || checked.some((c) => c.name === name)) {
      throw new SettingsChangeError('MANATEE_ERR_INVALID_ARGUMENT', `${name} is both set and unset in one change`);
    }
    if (!next.has(name)) {
      throw new SettingsChangeError('MANATEE_ERR_SETTING_NOT_SET', `${name} is not a shard setting (shard settings: ${Object.keys(current).join(', ') || 'none'})`);
    }
    next.delete(name);
  }
  if (next.size > SHARD_SETTINGS_MAX) {
    throw new SettingsChangeError('MANATEE_ERR_INVALID_ARGUMENT', `${next.size} shard settings, more than ${SHARD_SETTINGS_MAX}`);
  }
  const settings = canonicalSettings(Object.fromEntries(next));
  const changedNames = new Set([...Object.keys(settings), ...Object.keys(current)].filter((n) => settings[n] !== current[n]));
  const restartOf = (name: string): boolean => catalog.get(name)?.context === 'postmaster';
  return {
    settings,
    summary: summarizeSettingsChange(current, settings),
    restart: [...changedNames].filter(restartOf).sort(),
    checked,
  };
}
