// The pure parts of day-2 operations: an operator's settings change (checked against a catalog,
// refused whole), the primary's pg_settings when it cannot be read, the restart of a
// primary refused, and the order of a rolling restart.
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { changeSettings } from '../../src/peer/settings-admin.js';
import { primaryCatalog } from '../../src/peer/primary-catalog.js';
import { PostgresOps } from '../../src/peer/pg-ops.js';
import { PgSettingsCatalog, type PgSettingRow } from '../../src/postgres/settings.js';
import { restartOrder } from '../../src/cli/adm/restart.js';
import type { ShardReport } from '../../src/api/shard.js';
import type { ClusterState, PeerInfo } from '../../src/model/index.js';

const rows: PgSettingRow[] = [
  { name: 'work_mem', vartype: 'integer', unit: 'kB', minVal: '64', maxVal: '2147483647', enumVals: null, context: 'user' },
  { name: 'shared_buffers', vartype: 'integer', unit: '8kB', minVal: '16', maxVal: '1073741823', enumVals: null, context: 'postmaster' },
];
const catalog = new PgSettingsCatalog(rows);
const silent = pino({ level: 'silent' });

describe('changeSettings', () => {
  it('sets, unsets and says which changed settings need a restart', () => {
    const r = changeSettings({ work_mem: '4MB' }, { set: { SHARED_BUFFERS: '64MB' }, unset: ['work_mem'] }, catalog);
    expect(r).toMatchObject({ settings: { shared_buffers: '64MB' }, summary: 'set shared_buffers=64MB, unset work_mem', restart: ['shared_buffers'] });
  });

  it('refuses a change that is empty, mixed with replace, or sets and unsets one name', () => {
    expect(() => changeSettings({}, {}, catalog)).toThrow(expect.objectContaining({ code: 'MANATEE_ERR_INVALID_ARGUMENT', message: expect.stringMatching(/nothing to change/) as unknown }));
    expect(() => changeSettings({}, { replace: {}, set: { work_mem: '1MB' } }, catalog)).toThrow(/replaces the whole set, or sets and unsets names, not both/);
    expect(() => changeSettings({ work_mem: '1MB' }, { set: { work_mem: '2MB' }, unset: ['work_mem'] }, catalog)).toThrow(/work_mem is both set and unset/);
  });

  it('refuses to unset a name that is not set, naming the shard settings', () => {
    expect(() => changeSettings({ work_mem: '1MB' }, { unset: ['shared_buffers'] }, catalog)).toThrow(
      expect.objectContaining({ code: 'MANATEE_ERR_SETTING_NOT_SET', message: 'shared_buffers is not a shard setting (shard settings: work_mem)' }),
    );
  });

  it('refuses the whole change when one setting is bad, with every problem', () => {
    let caught: unknown;
    try {
      changeSettings({}, { set: { work_mem: '1', shared_buffers: 'x', port: '1' } }, catalog);
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ code: 'MANATEE_ERR_PG_SETTING_RANGE' });
    expect((caught as { problems: { code: string }[] }).problems.map((p) => p.code)).toEqual(['MANATEE_ERR_PG_SETTING_RANGE', 'MANATEE_ERR_PG_SETTING_INVALID', 'MANATEE_ERR_PG_SETTING_OWNED']);
  });

  it('a replace with the same settings is no change', () => {
    expect(changeSettings({ work_mem: '1MB' }, { replace: { work_mem: '1MB' } }, catalog).summary).toBe('no change');
  });
});

const peer = (id: string): PeerInfo => ({ id, host: '127.0.0.1', pgUrl: `postgres://127.0.0.1/${id}`, apiUrl: `http://127.0.0.1:1/${id}` });

describe('primaryCatalog', () => {
  it('says whose pg_settings could not be read', async () => {
    const state = { generation: 1, primary: peer('a'), sync: peer('b'), async: [], deposed: [], initWal: '0/0' } as ClusterState;
    await expect(primaryCatalog({ self: 'b', state: () => state, query: () => Promise.resolve([]), fetchRows: () => Promise.reject(new Error('ECONNREFUSED')) }))
      .rejects.toMatchObject({ code: 'MANATEE_ERR_PG_SETTINGS_UNAVAILABLE', message: expect.stringMatching(/pg_settings of the primary a could not be read \(ECONNREFUSED\)/) as unknown });
    await expect(primaryCatalog({ self: 'a', state: () => state, query: () => Promise.reject(new Error('down')) }))
      .rejects.toMatchObject({ message: expect.stringMatching(/pg_settings of this peer could not be read \(down\)/) as unknown });
  });
});

describe('PostgresOps', () => {
  const target = (running: boolean) => ({ running, reload: () => Promise.resolve([]), restart: () => Promise.resolve(), pendingRestart: () => Promise.resolve([]) });

  it('never restarts the primary, and reloads or restarts nothing that is not running', async () => {
    const primary = new PostgresOps({ peerId: 'a', postgres: target(true), role: () => 'primary', kick: () => undefined, log: silent });
    await expect(primary.restart()).rejects.toMatchObject({ code: 'MANATEE_ERR_RESTART_PRIMARY' });
    const stopped = new PostgresOps({ peerId: 'c', postgres: target(false), role: () => 'async', kick: () => undefined, log: silent });
    await expect(stopped.restart()).rejects.toMatchObject({ code: 'MANATEE_ERR_PG_NOT_RUNNING' });
    await expect(stopped.reload()).rejects.toMatchObject({ code: 'MANATEE_ERR_PG_NOT_RUNNING' });
  });

  it('runs a standby\'s restart when the loop runs what is queued, and refuses if it became the primary meanwhile', async () => {
    let role: 'async' | 'primary' = 'async';
    let restarts = 0;
    const ops = new PostgresOps({ peerId: 'c', postgres: { ...target(true), restart: () => { restarts++; return Promise.resolve(); } }, role: () => role, kick: () => undefined, log: silent });
    const done = ops.restart();
    expect(restarts).toBe(0);
    await ops.runQueued();
    await expect(done).resolves.toMatchObject({ action: 'restarted', peerId: 'c' });
    const later = ops.restart();
    role = 'primary';
    await ops.runQueued();
    await expect(later).rejects.toMatchObject({ code: 'MANATEE_ERR_RESTART_PRIMARY' });
    expect(restarts).toBe(1);
  });
});

describe('restartOrder', () => {
  const state = { generation: 1, primary: peer('a'), sync: peer('b'), async: [peer('c'), peer('d')], deposed: [], initWal: '0/0' } as ClusterState;
  const report = {
    state,
    peers: ['a', 'b', 'c', 'd'].map((id) => ({ ...peer(id), role: 'async', pendingRestart: id === 'c' || id === 'a' ? ['shared_buffers'] : [] })),
  } as unknown as ShardReport;

  it('asyncs from the end of the chain, then the sync, then the primary; --pending and --peer filter', () => {
    expect(restartOrder(report, { pending: false }).map((p) => p.id)).toEqual(['d', 'c', 'b', 'a']);
    expect(restartOrder(report, { pending: true }).map((p) => p.id)).toEqual(['c', 'a']);
    expect(restartOrder(report, { pending: false, peer: 'b' }).map((p) => p.id)).toEqual(['b']);
    expect(() => restartOrder(report, { pending: false, peer: 'zz' })).toThrow(expect.objectContaining({ code: 'MANATEE_ERR_PEER_NOT_FOUND' }));
  });
});
