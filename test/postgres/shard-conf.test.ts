// Which lines of the configuration files PostgreSQL refuses, from pg_file_settings.error and
// pg_settings.pending_restart: PostgreSQL says "setting could not be applied" both for a bad value
// and for a postmaster setting that only waits for a restart; an unknown name or a syntax error
// blocks every change of a reload. (server.test.ts checks the same against a real PostgreSQL.)
import { describe, expect, it } from 'vitest';
import { rejectedSettings, type RejectedSettingRow } from '../../src/postgres/index.js';
import { unmaskBadPendingValues } from '../../src/postgres/shard-conf.js';
import { PgSettingsCatalog } from '../../src/postgres/settings.js';

const row = (r: Partial<RejectedSettingRow>): RejectedSettingRow => ({
  name: 'work_mem', value: '1MB', sourcefile: '/data/pgdata/manatee-overrides.conf', sourceline: 3, error: 'setting could not be applied', pending: false, ...r,
});

describe('rejectedSettings', () => {
  it('leaves out a postmaster setting that only waits for a restart', () => {
    expect(rejectedSettings([row({ name: 'shared_buffers', value: '48MB', sourcefile: '/d/manatee-shard.conf', pending: true })])).toEqual([]);
  });

  it('a bad value: named with its file and line; the previous value stays, and PostgreSQL would not start', () => {
    expect(rejectedSettings([row({ name: 'maintenance_work_mem', value: 'lots' })])).toEqual([{
      name: 'maintenance_work_mem', value: 'lots', file: 'manatee-overrides.conf', source: 'peer overrides file', line: 3,
      error: 'setting could not be applied', blocksReload: false,
      reason: 'invalid value "lots" for maintenance_work_mem in manatee-overrides.conf line 3: PostgreSQL keeps the previous value, and would not start with it; correct or remove it',
    }]);
  });

  it('an unknown name blocks every change of a reload, in whichever file it is', () => {
    const [r] = rejectedSettings([row({ name: 'wrok_mem', error: 'unrecognized configuration parameter', sourcefile: '/d/manatee-shard.conf', sourceline: 7 })]);
    expect(r).toMatchObject({ name: 'wrok_mem', file: 'manatee-shard.conf', source: 'shard', line: 7, blocksReload: true });
    expect(r!.reason).toBe('unknown setting "wrok_mem" in manatee-shard.conf line 7: PostgreSQL applies no change of any configuration file at a reload while it is there, and would not start with it; correct or remove it');
  });

  it('a line that is no setting at all (a syntax error) blocks a reload too', () => {
    const [r] = rejectedSettings([row({ name: null, value: null, error: 'syntax error', sourceline: 9 })]);
    expect(r).toMatchObject({ name: null, value: null, blocksReload: true });
    expect(r!.reason).toMatch(/^manatee-overrides\.conf line 9: syntax error: PostgreSQL applies no change of any configuration file/);
  });

  it('a refused value of a setting that may hold a credential is not shown, in the value nor the reason', () => {
    const [r] = rejectedSettings([row({ name: 'myext.api_key', value: 'hunter2hunter2' })]);
    expect(r!.value).toBe('[redacted]');
    expect(JSON.stringify(r)).not.toContain('hunter2');
  });

  it('a bad value of a postmaster setting pending nothing is refused like any other', () => {
    expect(rejectedSettings([row({ name: 'shared_buffers', value: 'huge', pending: false })]).map((r) => r.name)).toEqual(['shared_buffers']);
  });

  it('a bad value of a postmaster setting already pending a restart (the flag stays set) is refused once checked against the catalog', () => {
    const catalog = new PgSettingsCatalog([
      { name: 'shared_buffers', vartype: 'integer', unit: '8kB', minVal: '16', maxVal: '1073741823', enumVals: null, context: 'postmaster' },
      { name: 'port', vartype: 'integer', unit: null, minVal: '1', maxVal: '65535', enumVals: null, context: 'postmaster' },
    ]);
    const rows = unmaskBadPendingValues([
      row({ name: 'shared_buffers', value: 'huge', pending: true }),
      row({ name: 'shared_buffers', value: '1', pending: true, sourceline: 4 }),
      row({ name: 'shared_buffers', value: '64MB', pending: true, sourceline: 5 }),
      // Owned by Manatee, but a valid value: pending, not refused.
      row({ name: 'port', value: '5999', pending: true, sourceline: 6 }),
    ], catalog);
    expect(rejectedSettings(rows).map((r) => [r.value, r.line])).toEqual([['huge', 3], ['1', 4]]);
  });
});
