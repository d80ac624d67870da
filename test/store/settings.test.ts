// The shard-wide PostgreSQL settings in the state machine: their own compare-and-set version,
// shape checks, canonical order, the settings watch, and snapshots (with and without them).
import { describe, expect, it } from 'vitest';
import { STORE_ERR } from '../../src/store/errors.js';
import { ClusterStateMachine, type SettingsChange } from '../../src/store/state-machine.js';
import { summarizeSettingsChange } from '../../src/store/settings.js';
import { Driver, T0, gen1 } from './fixtures.js';

const putSettings = (drv: Driver, settings: unknown, expectVersion: number): unknown =>
  drv.raw(JSON.stringify({ op: 'putSettings', expectVersion, settings, time: T0 }));

describe('shard settings', () => {
  it('are written with their own version, independent of the cluster state version', () => {
    const drv = new Driver();
    drv.ok(gen1());
    expect(putSettings(drv, { work_mem: '64MB' }, 0)).toEqual({ ok: true, op: 'putSettings', version: 1 });
    expect(drv.machine.version).toBe(1);
    expect(drv.machine.settings).toEqual({ settings: { work_mem: '64MB' }, version: 1 });
    expect(putSettings(drv, { work_mem: '1MB' }, 0)).toMatchObject({ ok: false, code: STORE_ERR.versionMismatch, currentVersion: 1 });
    expect(drv.machine.settings.settings).toEqual({ work_mem: '64MB' });
  });

  it('refuse a bad shape and change nothing', () => {
    const drv = new Driver();
    expect(putSettings(drv, { 'Work Mem': '1' }, 0)).toMatchObject({ ok: false, code: STORE_ERR.invalidCommand, message: expect.stringMatching(/not a setting name/) as unknown });
    expect(putSettings(drv, { work_mem: 64 }, 0)).toMatchObject({ ok: false, message: expect.stringMatching(/work_mem: the value must be a string/) as unknown });
    expect(putSettings(drv, { work_mem: '1\n2' }, 0)).toMatchObject({ ok: false, message: expect.stringMatching(/control character/) as unknown });
    expect(putSettings(drv, ['a'], 0)).toMatchObject({ ok: false, message: expect.stringMatching(/must be an object/) as unknown });
    expect(drv.machine.settings).toEqual({ settings: {}, version: 0 });
  });

  it('are kept in name order and announced to watchers', () => {
    const drv = new Driver();
    const seen: SettingsChange[] = [];
    drv.machine.onSettings((c) => seen.push(c));
    putSettings(drv, { work_mem: '4MB', autovacuum: 'on' }, 0);
    expect(Object.keys(drv.machine.settings.settings)).toEqual(['autovacuum', 'work_mem']);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ version: 1, previous: {}, cause: 'put', settings: { autovacuum: 'on', work_mem: '4MB' } });
  });

  it('survive a snapshot, and a snapshot without them restores as none', () => {
    const drv = new Driver();
    drv.ok(gen1());
    putSettings(drv, { shared_buffers: '256MB' }, 0);
    const other = new ClusterStateMachine();
    const seen: SettingsChange[] = [];
    other.onSettings((c) => seen.push(c));
    other.restore(drv.machine.snapshot());
    expect(other.settings).toEqual({ settings: { shared_buffers: '256MB' }, version: 1 });
    expect(seen[0]).toMatchObject({ cause: 'restore', version: 1 });
    const old = JSON.parse(drv.machine.snapshot()) as Record<string, unknown>;
    delete old['shardSettings'];
    other.restore(JSON.stringify(old));
    expect(other.settings).toEqual({ settings: {}, version: 0 });
    old['shardSettings'] = { version: 2, settings: { 'BAD NAME': 'x' } };
    expect(() => { other.restore(JSON.stringify(old)); }).toThrow(/shardSettings.settings.BAD NAME: not a setting name/);
  });

  it('summarize a change in one line', () => {
    expect(summarizeSettingsChange({ a: '1', b: '2' }, { a: '3', c: '4' })).toBe('a 1 -> 3, set c=4, unset b');
  });
});
