// Checking an operator's setting against a real PostgreSQL 15's pg_settings. The parser is
// compared case by case with PostgreSQL's own (set_config in a rolled-back transaction): both
// must accept or refuse the same values, and agree on the value in the base unit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { connect, makePgSandbox, TEST_SUPER_PASSWORD, type PgSandbox } from '../helpers/pg.js';
import { checkSetting, checkSettings, readPgSettings, PgSettingsError, type PgSettingsCatalog } from '../../src/postgres/index.js';

let sandbox: PgSandbox;
let client: pg.Client;
/** Over TCP: the tcp_keepalives_* settings read 0 on a unix socket. */
let tcpClient: pg.Client;
let catalog: PgSettingsCatalog;

beforeAll(async () => {
  sandbox = await makePgSandbox('settings');
  const server = await sandbox.primary('p');
  client = await connect(server);
  tcpClient = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'postgres', password: TEST_SUPER_PASSWORD, database: 'postgres', ssl: await sandbox.clientSsl() });
  await tcpClient.connect();
  catalog = await readPgSettings(async (sql) => (await client.query(sql)).rows as Record<string, unknown>[]);
}, 120_000);

afterAll(async () => {
  await client.end().catch(() => undefined);
  await tcpClient.end().catch(() => undefined);
  await sandbox.cleanup();
});

/** What PostgreSQL itself makes of `value`: its stored setting (base unit), or its error. */
async function postgresSays(name: string, value: string): Promise<{ ok: true; setting: string } | { ok: false; error: string }> {
  const c = name.startsWith('tcp_') ? tcpClient : client;
  await c.query('BEGIN');
  try {
    await c.query('SELECT set_config($1, $2, true)', [name, value]);
    const r = await c.query<{ setting: string }>('SELECT setting FROM pg_settings WHERE name = $1', [name]);
    return { ok: true, setting: r.rows[0]!.setting };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  } finally {
    await c.query('ROLLBACK');
  }
}

function oursSays(name: string, value: string): { ok: true; base: number | null } | { ok: false; code: string; message: string } {
  try {
    const c = checkSetting(name, value, catalog);
    return { ok: true, base: c.baseValue };
  } catch (err) {
    if (!(err instanceof PgSettingsError)) throw err;
    return { ok: false, code: err.code, message: err.message };
  }
}

// Settings a session may change (so set_config can judge them), one per kind of parsing.
const CASES: readonly (readonly [string, readonly string[]])[] = [
  ['work_mem', ['64MB', '1GB', '1.5MB', '1024', '0x400', '010', ' 4MB ', '64 MB', '1TB', '1e3', '4s', '64mb', '63', '2147483648kB', '-1', 'x', '', '1.5', '30.1GB']],
  ['temp_buffers', ['8MB', '1kB', '800kB', '100', '99', '1.5GB', '12345B']],
  ['statement_timeout', ['10s', '1.5s', '1min', '100us', '1500us', '1d', '500', '2h', '10 s', '10S', '25d', '0']],
  ['tcp_keepalives_idle', ['1min', '1500ms', '2500ms', '3500ms', '7', '1h', '5MB']],
  ['log_parameter_max_length', ['1kB', '-1', '1MB', '0.5kB', '2GB', '3GB']],
  ['random_page_cost', ['1.1', '4', '1e1', '.5', '-1', 'abc', '1.5ms', '0']],
  ['jit', ['on', 'OFF', 'tr', 'y', 'of', 'o', '2', 'yes', '0', 'No', '']],
  ['client_min_messages', ['warning', 'WARNING', 'loud', 'debug1']],
  ['bytea_output', ['hex', 'escape', 'base64']],
  ['geqo_threshold', ['12', '12ms', '0x0c', '1', '2']],
  ['application_name', ['reporting', "it's", '']],
];

describe('checkSetting agrees with PostgreSQL', () => {
  it('accepts and refuses the same values, with the same value in the base unit', async () => {
    const disagreements: string[] = [];
    let compared = 0;
    for (const [name, values] of CASES) {
      for (const value of values) {
        const theirs = await postgresSays(name, value);
        const ours = oursSays(name, value);
        compared++;
        if (theirs.ok !== ours.ok) {
          disagreements.push(`${name}=${JSON.stringify(value)}: PostgreSQL ${theirs.ok ? `accepts (${theirs.setting})` : `refuses (${theirs.error})`}, we ${ours.ok ? 'accept' : `refuse (${ours.message})`}`);
        } else if (theirs.ok && ours.ok && ours.base !== null && Number(theirs.setting) !== ours.base) {
          disagreements.push(`${name}=${JSON.stringify(value)}: PostgreSQL stores ${theirs.setting}, we computed ${ours.base}`);
        }
      }
    }
    expect(disagreements).toEqual([]);
    expect(compared).toBeGreaterThan(80);
  });

  it('a postmaster setting is accepted in its units and marked for a restart; a user setting is not', () => {
    expect(checkSetting('shared_buffers', '256MB', catalog)).toEqual({ name: 'shared_buffers', value: '256MB', context: 'postmaster', restart: true, baseValue: 32768, unit: '8kB' });
    expect(checkSetting('Work_Mem', '64MB', catalog)).toMatchObject({ name: 'work_mem', context: 'user', restart: false, baseValue: 65536, unit: 'kB' });
    expect(checkSetting('checkpoint_timeout', '10min', catalog)).toMatchObject({ context: 'sighup', restart: false, baseValue: 600, unit: 's' });
    expect(checkSetting('wal_level', 'LOGICAL', catalog)).toMatchObject({ restart: true, baseValue: null });
  });
});

describe('refusals name the problem', () => {
  const refused = (name: string, value: string): { code: string; message: string } => {
    const r = oursSays(name, value);
    if (r.ok) throw new Error(`${name}=${value} was accepted`);
    return { code: r.code, message: r.message };
  };

  it('an unknown name, with the likely one', () => {
    expect(refused('shared_bufers', '1GB')).toEqual({
      code: 'MANATEE_ERR_PG_SETTING_UNKNOWN',
      message: 'unknown setting "shared_bufers": the target\'s PostgreSQL has no such parameter (did you mean shared_buffers?)',
    });
    expect(refused('pg_stat_statements.max', '1000').message).toContain('known once its library is loaded');
    expect(refused('work mem', '1').message).toBe('"work mem" is not a setting name: expected letters, digits and _ (an extension\'s: prefix.name)');
  });

  it('a wrong type, a wrong unit, a control character', () => {
    expect(refused('shared_buffers', 'lots')).toEqual({
      code: 'MANATEE_ERR_PG_SETTING_INVALID',
      message: 'shared_buffers = "lots": expected an integer with a memory unit (TB, GB, MB, kB, B; without one, in 8kB)',
    });
    expect(refused('work_mem', '4s').message).toBe('work_mem = "4s": "s" is not a unit of this setting; valid units are TB, GB, MB, kB, B');
    expect(refused('max_connections', '100MB').message).toContain('this setting takes no unit');
    expect(refused('jit', 'maybe').message).toBe('jit = "maybe": expected a boolean (on, off, true, false, yes, no, 1, 0)');
    expect(refused('application_name', 'a\nb')).toMatchObject({ code: 'MANATEE_ERR_PG_SETTING_INVALID', message: expect.stringContaining('control character') });
  });

  it('out of range, in the unit given and in the base unit', () => {
    expect(refused('shared_buffers', '64kB')).toEqual({
      code: 'MANATEE_ERR_PG_SETTING_RANGE',
      message: 'shared_buffers = "64kB" (8 8kB) is outside the valid range 16 .. 1073741823 8kB',
    });
    expect(refused('max_connections', '0').message).toBe('max_connections = "0" is outside the valid range 1 .. 262143');
  });

  it('a bad enum value lists the valid ones', () => {
    expect(refused('wal_level', 'everything')).toEqual({ code: 'MANATEE_ERR_PG_SETTING_ENUM', message: 'wal_level = "everything": expected one of minimal, replica, logical' });
  });

  it('a setting Manatee owns, whatever its value, and values Manatee cannot live with', () => {
    expect(refused('synchronous_standby_names', '*')).toEqual({
      code: 'MANATEE_ERR_PG_SETTING_OWNED',
      message: "synchronous_standby_names is set by Manatee and cannot be changed: Manatee sets it for the peer's role at every role change (manatee-enforced.conf): it names the sync of the current generation, which changes at each takeover",
    });
    for (const name of ['port', 'listen_addresses', 'primary_conninfo', 'default_transaction_read_only', 'hba_file', 'data_directory', 'ssl_cert_file', 'restore_command', 'PORT']) {
      expect(refused(name, '1').code).toBe('MANATEE_ERR_PG_SETTING_OWNED');
    }
    expect(refused('synchronous_commit', 'off').message).toBe(
      'synchronous_commit = "off" is refused by Manatee: expected one of on, remote_apply, because a commit is acknowledged only once the sync has flushed it, ' +
        'so that a takeover loses no acknowledged commit; off, local and remote_write acknowledge commits the sync may not hold',
    );
    expect(refused('wal_level', 'minimal').code).toBe('MANATEE_ERR_PG_SETTING_OWNED');
    expect(refused('full_page_writes', 'off').code).toBe('MANATEE_ERR_PG_SETTING_OWNED');
    expect(refused('max_wal_senders', '2').message).toContain('expected at least 3');
    expect(oursSays('synchronous_commit', 'remote_apply').ok).toBe(true);
    expect(oursSays('max_wal_senders', '20').ok).toBe(true);
    expect(oursSays('archive_mode', 'on').ok).toBe(true);
  });

  it('a setting fixed at build or initdb time', () => {
    expect(refused('block_size', '8192')).toEqual({ code: 'MANATEE_ERR_PG_SETTING_READ_ONLY', message: 'block_size cannot be set: it is fixed when PostgreSQL is built or the cluster is created (context internal)' });
  });

  it('checkSettings names every bad setting at once, and returns all when all pass', () => {
    let err: unknown = null;
    try {
      checkSettings({ work_mem: '64MB', port: '5', shared_buffers: 'x' }, catalog);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PgSettingsError);
    const e = err as PgSettingsError;
    expect(e.code).toBe('MANATEE_ERR_PG_SETTING_OWNED');
    expect(e.problems.map((p) => [p.name, p.code])).toEqual([['port', 'MANATEE_ERR_PG_SETTING_OWNED'], ['shared_buffers', 'MANATEE_ERR_PG_SETTING_INVALID']]);
    expect(checkSettings({ work_mem: '64MB', shared_buffers: '1GB' }, catalog).map((c) => c.name)).toEqual(['work_mem', 'shared_buffers']);
  });
});
