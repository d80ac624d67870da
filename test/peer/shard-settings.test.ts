// The sitter's job for the shard settings, on a fake PostgreSQL: it applies each version once,
// reports pending restarts and the lines PostgreSQL refuses (logged once when they change, not
// every tick), and a failed apply is shown in the status and tried again.
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { ShardSettingsKeeper, PG_ERR_SETTING_REJECTED, type SettingsTarget } from '../../src/peer/shard-settings.js';
import type { RejectedSetting } from '../../src/model/index.js';
import { PgError } from '../../src/postgres/index.js';

const unknownName: RejectedSetting = {
  name: 'wrok_mem', value: '1MB', file: 'manatee-overrides.conf', source: 'peer overrides file', line: 2,
  error: 'unrecognized configuration parameter', blocksReload: true, reason: 'unknown setting "wrok_mem" in manatee-overrides.conf line 2: ...',
};

function setup() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } });
  let rejected: RejectedSetting[] = [];
  let failApply: Error | null = null;
  const applied: number[] = [];
  let tries = 0;
  const target: SettingsTarget = {
    running: true,
    applyShardSettings: (_s, version) => {
      tries++;
      if (failApply !== null) return Promise.reject(failApply);
      applied.push(version);
      return Promise.resolve({ version, reloaded: true, pendingRestart: ['shared_buffers'] });
    },
    settingsReport: () => Promise.resolve([{ name: 'shared_buffers', value: '48MB', source: 'shard', running: '128MB', pendingRestart: true }]),
    rejectedSettings: () => Promise.resolve(rejected),
  };
  let version = 1;
  const keeper = new ShardSettingsKeeper({ target, settings: () => ({ settings: { shared_buffers: '48MB' }, version }), log, ready: () => true });
  return {
    keeper, lines, applied, tries: () => tries,
    setRejected: (r: RejectedSetting[]) => { rejected = r; },
    failApply: (e: Error | null) => { failApply = e; },
    bump: () => { version++; },
    decisions: (d: string) => lines.filter((l) => l['decision'] === d),
  };
}

describe('ShardSettingsKeeper', () => {
  it('reports the lines PostgreSQL refuses, logs them once while they stay, and once more when they are gone', async () => {
    const t = setup();
    t.setRejected([unknownName]);
    t.keeper.changed();
    await t.keeper.settled();
    t.keeper.changed();
    await t.keeper.settled();
    expect(t.applied).toEqual([1]);
    expect(t.keeper.status()).toMatchObject({ version: 1, appliedVersion: 1, pendingRestart: ['shared_buffers'], rejected: [unknownName], error: null });
    const warned = t.decisions('shard-settings-rejected');
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 40, code: PG_ERR_SETTING_REJECTED });
    expect(warned[0]!['msg']).toBe(`PostgreSQL refuses 1 line of its configuration files: ${unknownName.reason}`);
    t.setRejected([]);
    t.keeper.changed();
    await t.keeper.settled();
    expect(t.keeper.status().rejected).toEqual([]);
    expect(t.decisions('shard-settings-rejected').map((l) => l['msg'])).toEqual([warned[0]!['msg'], 'PostgreSQL accepts every line of its configuration files again']);
  });

  it('a failed apply is in the status with its reason, logged once, and applied at the next try', async () => {
    const t = setup();
    t.failApply(new Error('PostgreSQL is restarting'));
    t.keeper.changed();
    await t.keeper.settled();
    t.keeper.changed();
    await t.keeper.settled();
    expect(t.keeper.status()).toMatchObject({ appliedVersion: null, error: 'PostgreSQL is restarting' });
    expect(t.decisions('shard-settings-failed')).toHaveLength(1);
    t.failApply(null);
    t.bump();
    t.keeper.changed();
    await t.keeper.settled();
    expect(t.keeper.status()).toMatchObject({ appliedVersion: 2, error: null });
    expect(t.applied).toEqual([2]);
  });

  it('a reload blocked by a bad line is not sent again until the report shows the line gone; then the version is applied', async () => {
    const t = setup();
    t.setRejected([unknownName]);
    t.failApply(new PgError('MANATEE_ERR_PG_RELOAD_BLOCKED', 'reload: PostgreSQL applied no change: unknown setting "wrok_mem"'));
    for (let i = 0; i < 3; i++) {
      t.keeper.changed();
      await t.keeper.settled();
    }
    expect(t.tries()).toBe(1);
    expect(t.keeper.status()).toMatchObject({ appliedVersion: null, error: 'reload: PostgreSQL applied no change: unknown setting "wrok_mem"', rejected: [unknownName] });
    expect(t.decisions('shard-settings-failed')).toHaveLength(1);
    // The operator fixes the file: the next tick sees no blocking line, the one after applies.
    t.setRejected([]);
    t.failApply(null);
    t.keeper.changed();
    await t.keeper.settled();
    t.keeper.changed();
    await t.keeper.settled();
    expect(t.tries()).toBe(2);
    expect(t.keeper.status()).toMatchObject({ appliedVersion: 1, error: null, rejected: [] });
  });
});
