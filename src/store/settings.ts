// The shard-wide PostgreSQL settings (issue 15): name -> value, as an operator set them with
// manatee-adm config. They live in the store beside the cluster state, with their own version
// (a compare-and-set token of their own), so that an operator's settings change never races the
// sitters' state writes. The store checks only their shape here: whether a value is valid for
// PostgreSQL is checked by the API against the primary's pg_settings before the write
// (src/api/settings-ops.ts), because the store knows nothing of PostgreSQL.

/** Shard settings: lower-case name -> value as postgresql.conf would hold it (unquoted). */
export type ShardSettings = Readonly<Record<string, string>>;

export interface VersionedSettings {
  readonly settings: ShardSettings;
  /** 0 before the first write; +1 for each accepted putSettings. */
  readonly version: number;
}

/** More than any real configuration sets: bounds the command and the state. */
export const SHARD_SETTINGS_MAX = 256;
export const SHARD_SETTING_NAME_CHARS_MAX = 63;
export const SHARD_SETTING_VALUE_CHARS_MAX = 4096;

const NAME_RE = /^[a-z_][a-z0-9_$]*(\.[a-z_][a-z0-9_$]*)?$/;

/** Problems with a settings object (an empty list means valid). Names must already be lower case. */
export function settingsProblems(value: unknown, where = 'settings'): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${where}: must be an object of name -> value`];
  const entries = Object.entries(value as Record<string, unknown>);
  const problems: string[] = [];
  if (entries.length > SHARD_SETTINGS_MAX) problems.push(`${where}: ${entries.length} settings, more than ${SHARD_SETTINGS_MAX}`);
  for (const [name, v] of entries) {
    if (name.length > SHARD_SETTING_NAME_CHARS_MAX || !NAME_RE.test(name)) {
      problems.push(`${where}.${name}: not a setting name (lower-case letters, digits and _, an extension's as prefix.name)`);
    }
    if (typeof v !== 'string') problems.push(`${where}.${name}: the value must be a string`);
    else if (v.length > SHARD_SETTING_VALUE_CHARS_MAX) problems.push(`${where}.${name}: the value is longer than ${SHARD_SETTING_VALUE_CHARS_MAX} characters`);
    // eslint-disable-next-line no-control-regex -- postgresql.conf cannot hold them
    else if (/[\u0000-\u001f\u007f]/.test(v)) problems.push(`${where}.${name}: the value holds a control character`);
  }
  return problems;
}

/** The same settings with names in sorted order (what the store keeps, so that every node renders alike). */
export function canonicalSettings(settings: ShardSettings): ShardSettings {
  const out: Record<string, string> = {};
  for (const name of Object.keys(settings).sort()) out[name] = settings[name]!;
  return out;
}

/** One line for the log: what a settings write changed. */
export function summarizeSettingsChange(before: ShardSettings, after: ShardSettings): string {
  const parts: string[] = [];
  for (const [name, v] of Object.entries(after)) {
    if (before[name] === undefined) parts.push(`set ${name}=${v}`);
    else if (before[name] !== v) parts.push(`${name} ${before[name]} -> ${v}`);
  }
  for (const name of Object.keys(before)) if (after[name] === undefined) parts.push(`unset ${name}`);
  return parts.length === 0 ? 'no change' : parts.join(', ');
}
