// Checking an operator's PostgreSQL setting (name = value) before it is stored for the shard,
// against the target server's own pg_settings rows: the name exists, the value parses as
// PostgreSQL would parse it from postgresql.conf (booleans, integers and reals with units,
// enums), it is within min_val..max_val, and Manatee does not own it (owned-settings.ts).
// Pure: the rows are read by readPgSettings() and passed in. A value that passes here can still
// be refused by a check hook inside PostgreSQL (a time zone name, say): those are strings whose
// meaning only the server knows.
import { PgError, type PgErrorCode } from './errors.js';
import { MANATEE_SETTINGS, type ParsedSettingValue } from './owned-settings.js';
import { ManateeError } from '../errors.js';

export type PgSettingContext = 'internal' | 'postmaster' | 'sighup' | 'superuser-backend' | 'backend' | 'superuser' | 'user';
export type PgSettingType = 'bool' | 'integer' | 'real' | 'string' | 'enum';

/** One row of pg_settings, the columns that checking needs. */
export interface PgSettingRow {
  readonly name: string;
  readonly vartype: PgSettingType;
  /** The base unit of a number (`8kB`, `kB`, `MB`, `ms`, `s`, `min`...), or null. */
  readonly unit: string | null;
  readonly minVal: string | null;
  readonly maxVal: string | null;
  readonly enumVals: readonly string[] | null;
  readonly context: PgSettingContext;
}

export const PG_SETTINGS_QUERY =
  'SELECT name, vartype, unit, min_val AS "minVal", max_val AS "maxVal", enumvals AS "enumVals", context FROM pg_settings ORDER BY name';

/** Reads the rows from a server (any query function: the sitter's own connection, a test's). */
export async function readPgSettings(query: (sql: string) => Promise<readonly Record<string, unknown>[]>): Promise<PgSettingsCatalog> {
  return new PgSettingsCatalog((await query(PG_SETTINGS_QUERY)) as unknown as readonly PgSettingRow[]);
}

export class PgSettingsCatalog {
  private readonly rows: ReadonlyMap<string, PgSettingRow>;

  constructor(rows: readonly PgSettingRow[]) {
    this.rows = new Map(rows.map((r) => [r.name, r]));
  }

  get(name: string): PgSettingRow | undefined {
    return this.rows.get(name);
  }

  get size(): number {
    return this.rows.size;
  }

  /** Known names within edit distance 2 of `name`, nearest first (a typo's likely meaning). */
  nearest(name: string): string[] {
    const scored = [...this.rows.keys()].map((n) => [n, editDistance(n, name)] as const).filter(([, d]) => d <= 2);
    return scored.sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0])).slice(0, 3).map(([n]) => n);
  }
}

/** A setting that passed: its name (lower case), the value as given, and how it takes effect. */
export interface CheckedSetting {
  readonly name: string;
  readonly value: string;
  readonly context: PgSettingContext;
  /** A postmaster setting: it takes effect only when PostgreSQL restarts. */
  readonly restart: boolean;
  /** For a number: the value in the setting's base unit (`unit`), as PostgreSQL stores it. */
  readonly baseValue: number | null;
  readonly unit: string | null;
}

export type SettingErrorCode = Extract<PgErrorCode, `MANATEE_ERR_PG_SETTING_${string}`>;

export interface SettingProblem {
  readonly name: string;
  readonly value: string;
  readonly code: SettingErrorCode;
  readonly message: string;
}

/** One or more settings refused; `problems` has one entry per bad setting, `code` is the first's. */
export class PgSettingsError extends PgError {
  constructor(readonly problems: readonly SettingProblem[]) {
    super(problems[0]?.code ?? 'MANATEE_ERR_PG_SETTING_INVALID', problems.map((p) => p.message).join('; '));
  }
}

/** Setting names as PostgreSQL reads them (case-insensitive); a dot for an extension's. */
const NAME_RE = /^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$/;
/** Longer than any real value, short enough to keep the state small. */
export const SETTING_VALUE_CHARS_MAX = 4096;
const NAME_CHARS_MAX = 63;

class Refusal extends ManateeError {
  declare readonly code: SettingErrorCode;
}

/** Checks every setting; throws PgSettingsError naming each bad one, else returns them all checked. */
export function checkSettings(settings: Readonly<Record<string, string>>, catalog: PgSettingsCatalog): CheckedSetting[] {
  const checked: CheckedSetting[] = [];
  const problems: SettingProblem[] = [];
  for (const [name, value] of Object.entries(settings)) {
    try {
      checked.push(checkSetting(name, value, catalog));
    } catch (err) {
      if (!(err instanceof PgSettingsError)) throw err;
      problems.push(...err.problems);
    }
  }
  if (problems.length > 0) throw new PgSettingsError(problems);
  return checked;
}

/** Checks one setting; throws PgSettingsError with one problem when it is refused. */
export function checkSetting(rawName: string, rawValue: string, catalog: PgSettingsCatalog): CheckedSetting {
  try {
    return check(rawName, rawValue, catalog);
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    throw new PgSettingsError([{ name: rawName, value: rawValue, code: err.code, message: err.message }]);
  }
}

function check(rawName: string, rawValue: string, catalog: PgSettingsCatalog): CheckedSetting {
  if (rawName.length > NAME_CHARS_MAX || !NAME_RE.test(rawName)) {
    throw new Refusal('MANATEE_ERR_PG_SETTING_UNKNOWN', `${JSON.stringify(rawName)} is not a setting name: expected letters, digits and _ (an extension's: prefix.name)`);
  }
  const name = rawName.toLowerCase();
  const value = rawValue.trim();
  // postgresql.conf cannot hold a line break or a NUL inside a value: the file would not parse,
  // and PostgreSQL would refuse to start or ignore the whole file on reload.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    throw new Refusal('MANATEE_ERR_PG_SETTING_INVALID', `${name}: the value holds a control character (a line break, a tab...), which postgresql.conf cannot hold`);
  }
  if (value.length > SETTING_VALUE_CHARS_MAX) {
    throw new Refusal('MANATEE_ERR_PG_SETTING_INVALID', `${name}: the value has ${value.length} characters, more than ${SETTING_VALUE_CHARS_MAX}`);
  }
  const ownership = MANATEE_SETTINGS.get(name);
  if (ownership?.kind === 'owned') throw new Refusal('MANATEE_ERR_PG_SETTING_OWNED', `${name} is set by Manatee and cannot be changed: ${ownership.reason}`);
  const row = catalog.get(name);
  if (row === undefined) {
    const near = catalog.nearest(name);
    const hint = name.includes('.')
      ? ': an extension\'s setting is known once its library is loaded (shared_preload_libraries, then a restart)'
      : near.length > 0 ? ` (did you mean ${near.join(' or ')}?)` : '';
    throw new Refusal('MANATEE_ERR_PG_SETTING_UNKNOWN', `unknown setting ${JSON.stringify(name)}: the target's PostgreSQL has no such parameter${hint}`);
  }
  if (row.context === 'internal') {
    throw new Refusal('MANATEE_ERR_PG_SETTING_READ_ONLY', `${name} cannot be set: it is fixed when PostgreSQL is built or the cluster is created (context internal)`);
  }
  const parsed = parseValue(row, value);
  if (ownership?.kind === 'restricted' && !ownership.allows(parsed)) {
    throw new Refusal('MANATEE_ERR_PG_SETTING_OWNED', `${name} = ${JSON.stringify(value)} is refused by Manatee: expected ${ownership.expected}, because ${ownership.reason}`);
  }
  return {
    name,
    value,
    context: row.context,
    restart: row.context === 'postmaster',
    baseValue: parsed.type === 'number' ? parsed.base : null,
    unit: parsed.type === 'number' ? row.unit : null,
  };
}

function parseValue(row: PgSettingRow, value: string): ParsedSettingValue {
  switch (row.vartype) {
    case 'bool': {
      const b = parseBool(value);
      if (b === null) throw new Refusal('MANATEE_ERR_PG_SETTING_INVALID', `${row.name} = ${JSON.stringify(value)}: expected a boolean (on, off, true, false, yes, no, 1, 0)`);
      return { type: 'bool', value: b };
    }
    case 'integer':
    case 'real':
      return { type: 'number', base: parseNumber(row, value) };
    case 'enum': {
      const allowed = row.enumVals ?? [];
      // PostgreSQL compares enum values without regard to case.
      const match = allowed.find((v) => v.toLowerCase() === value.toLowerCase());
      if (match === undefined) throw new Refusal('MANATEE_ERR_PG_SETTING_ENUM', `${row.name} = ${JSON.stringify(value)}: expected one of ${allowed.join(', ')}`);
      return { type: 'text', value: match };
    }
    case 'string':
      return { type: 'text', value };
  }
}

/** PostgreSQL's parse_bool accepts every unambiguous prefix of true/false/yes/no, on/off, 1/0, any case. */
function parseBool(raw: string): boolean | null {
  const v = raw.toLowerCase();
  if (v === '') return null;
  const prefixOf = (word: string, minChars = 1): boolean => v.length >= minChars && word.startsWith(v);
  if (prefixOf('true') || prefixOf('yes') || prefixOf('on', 2) || v === '1') return true;
  if (prefixOf('false') || prefixOf('no') || prefixOf('off', 2) || v === '0') return false;
  return null;
}

const MEMORY_UNITS: readonly (readonly [string, number])[] = [['TB', 1024 ** 4], ['GB', 1024 ** 3], ['MB', 1024 ** 2], ['kB', 1024], ['B', 1]];
const TIME_UNITS: readonly (readonly [string, number])[] = [['d', 86_400_000_000], ['h', 3_600_000_000], ['min', 60_000_000], ['s', 1_000_000], ['ms', 1000], ['us', 1]];

/** The base unit's size in bytes or microseconds, and which table it belongs to; null when unitless. */
function baseUnit(unit: string | null): { table: typeof MEMORY_UNITS; size: number; kind: 'memory' | 'time' } | null {
  if (unit === null || unit === '') return null;
  const m = /^(\d*)(\D+)$/.exec(unit);
  const factor = m?.[1] === undefined || m[1] === '' ? 1 : Number(m[1]);
  const mem = MEMORY_UNITS.find(([u]) => u === m?.[2]);
  if (mem !== undefined) return { table: MEMORY_UNITS, size: factor * mem[1], kind: 'memory' };
  const time = TIME_UNITS.find(([u]) => u === m?.[2]);
  if (time !== undefined) return { table: TIME_UNITS, size: factor * time[1], kind: 'time' };
  return null;
}

/** C's rint() in the default rounding mode: halves go to the even neighbour. */
function rint(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const INT_RE = /^[+-]?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)/;
const REAL_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/;

/** PostgreSQL's parse_int / parse_real: a number (integers also in hex or octal), then an optional unit. */
function parseNumber(row: PgSettingRow, value: string): number {
  const isInt = row.vartype === 'integer';
  const unit = baseUnit(row.unit);
  const expected = `expected ${isInt ? 'an integer' : 'a number'}${unit === null ? '' : ` with a ${unit.kind} unit (${unit.table.map(([u]) => u).join(', ')}; without one, in ${row.unit})`}`;
  const bad = (): Refusal => new Refusal('MANATEE_ERR_PG_SETTING_INVALID', `${row.name} = ${JSON.stringify(value)}: ${expected}`);
  let m = isInt ? INT_RE.exec(value) : null;
  let n: number;
  // As strtol then strtod in PostgreSQL: "1.5GB" and "1e3" are read as reals even for an integer.
  if (m !== null && !/^[.eE]/.test(value.slice(m[0].length))) {
    const digits = m[0].replace(/^[+-]/, '');
    const magnitude = /^0[xX]/.test(digits) ? parseInt(digits.slice(2), 16) : /^0[0-7]/.test(digits) ? parseInt(digits, 8) : Number(digits);
    n = m[0].startsWith('-') ? -magnitude : magnitude;
  } else {
    m = REAL_RE.exec(value);
    if (m === null) throw bad();
    n = Number(m[0]);
  }
  if (!Number.isFinite(n)) throw bad();
  const rest = value.slice(m[0].length).trim();
  if (rest !== '') {
    if (unit === null) throw new Refusal('MANATEE_ERR_PG_SETTING_INVALID', `${row.name} = ${JSON.stringify(value)}: this setting takes no unit (${expected})`);
    const i = unit.table.findIndex(([u]) => u === rest);
    if (i < 0) throw new Refusal('MANATEE_ERR_PG_SETTING_INVALID', `${row.name} = ${JSON.stringify(value)}: ${JSON.stringify(rest)} is not a unit of this setting; valid units are ${unit.table.map(([u]) => u).join(', ')}`);
    const [, size] = unit.table[i]!;
    n = (n * size) / unit.size;
    // As PostgreSQL: a fractional value ("30.1GB") is rounded to a whole number of the next smaller unit.
    const next = unit.table[i + 1];
    if (next !== undefined) n = (rint((n * unit.size) / next[1]) * next[1]) / unit.size;
  }
  if (isInt) {
    n = rint(n);
    if (n > 2_147_483_647 || n < -2_147_483_648) throw new Refusal('MANATEE_ERR_PG_SETTING_RANGE', `${row.name} = ${JSON.stringify(value)}: the value exceeds the integer range`);
  }
  const min = row.minVal === null ? null : Number(row.minVal);
  const max = row.maxVal === null ? null : Number(row.maxVal);
  if ((min !== null && n < min) || (max !== null && n > max)) {
    const inUnit = row.unit === null || row.unit === '' ? '' : ` ${row.unit}`;
    const shown = rest === '' ? '' : ` (${n}${inUnit})`;
    throw new Refusal('MANATEE_ERR_PG_SETTING_RANGE', `${row.name} = ${JSON.stringify(value)}${shown} is outside the valid range ${row.minVal ?? '-inf'} .. ${row.maxVal ?? 'inf'}${inUnit}`);
  }
  return n;
}

/** Levenshtein distance, for "did you mean". */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
