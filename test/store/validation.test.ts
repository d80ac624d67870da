// Every invalid cluster state is rejected by the store, with a message that names the problem
// (DESIGN.md, "The cluster state and its rules"); valid transitions of Manatee's rules pass.
import { describe, expect, it } from 'vitest';
import { STORE_ERR } from '../../src/store/errors.js';
import { stateShapeProblems, transitionProblems } from '../../src/store/validate.js';
import { compareLsn, isLsn, type ClusterState } from '../../src/model/index.js';
import { Driver, a, b, c, d, gen1, peer, rejection } from './fixtures.js';

function rejectFirst(next: unknown): string {
  const drv = new Driver();
  const r = rejection(drv.put(next, 0));
  expect(r.code).toBe(STORE_ERR.invalidState);
  expect(drv.machine.version).toBe(0);
  expect(drv.machine.state).toBeNull();
  return r.message;
}

function rejectAfter(current: ClusterState, next: unknown): string {
  const drv = new Driver();
  drv.ok(current);
  const r = rejection(drv.put(next));
  expect(r.code).toBe(STORE_ERR.invalidState);
  expect(drv.machine.version).toBe(1);
  expect(drv.machine.state).toEqual(current);
  return r.message;
}

describe('validation of one state (shape)', () => {
  const cases: [string, unknown, RegExp][] = [
    ['not an object', 'hello', /the state must be an object/],
    ['an array', [], /the state must be an object .*got an array/],
    ['primary equal to sync', gen1({ sync: a }), /primary and sync are the same peer \(a\)/],
    ['a peer in async and sync', gen1({ async: [b] }), /peer b is in two places: sync and async\[0\]/],
    ['a peer twice in async', gen1({ async: [c, c] }), /peer c is in two places: async\[0\] and async\[1\]/],
    ['the primary also deposed', gen1({ deposed: [a] }), /peer a is in two places: primary and deposed\[0\]/],
    ['an async also deposed', gen1({ deposed: [c] }), /peer c is in two places: async\[0\] and deposed\[0\]/],
    ['a missing sync outside ONWM', gen1({ sync: null }), /sync is missing \(null\) outside one-node-write mode/],
    ['ONWM with a sync', gen1({ oneNodeWriteMode: true, async: [] }), /sync must be null in one-node-write mode \(got peer b\)/],
    ['ONWM with asyncs', gen1({ oneNodeWriteMode: true, sync: null }), /async must be empty in one-node-write mode \(got \[c\]\)/],
    ['generation 0 as the first state', gen1({ generation: 0 }), /generation: must be an integer >= 1 \(got number 0\)/],
    ['a fractional generation', gen1({ generation: 1.5 }), /generation: must be an integer >= 1/],
    ['a generation that is a string', { ...gen1(), generation: '1' }, /generation: must be an integer >= 1 \(got the string "1"\)/],
    ['a malformed LSN (no slash)', gen1({ initWal: '0' }), /initWal: must be an LSN/],
    ['a malformed LSN (not hex)', gen1({ initWal: '0/XYZ' }), /initWal: must be an LSN .*got the string "0\/XYZ"/],
    ['an LSN with more than 8 digits', gen1({ initWal: '0/123456789' }), /initWal: must be an LSN/],
    ['a missing initWal', { ...gen1(), initWal: undefined }, /initWal: must be an LSN .*got missing/],
    ['a peer without pgUrl', gen1({ primary: { id: 'a', apiUrl: 'http://x', host: 'h' } as never }), /primary\.pgUrl: must be a non-empty string \(got missing\)/],
    ['a peer without id', gen1({ sync: { pgUrl: 'p', apiUrl: 'http://x', host: 'h' } as never }), /sync\.id: must be a non-empty string/],
    ['a peer with an empty host', gen1({ async: [{ ...c, host: '' }] }), /async\[0\]\.host: must be a non-empty string/],
    ['a peer without apiUrl', gen1({ deposed: [{ id: 'd', pgUrl: 'p', host: 'h' } as never] }), /deposed\[0\]\.apiUrl: must be a non-empty string/],
    ['a peer that is a string', gen1({ primary: 'a' as never }), /primary: must be a peer \{id, pgUrl, apiUrl, host\} \(got the string "a"\)/],
    ['a peer with an unknown field', gen1({ primary: { ...a, zoneId: 'z' } as never }), /primary\.zoneId: is not a known field/],
    ['an unknown field in the state', { ...gen1(), asyncs: [] }, /asyncs: is not a known field/],
    ['async that is not an array', gen1({ async: c as never }), /async: must be an array of peers \(got an object\)/],
    ['a missing deposed', { ...gen1(), deposed: undefined }, /deposed: must be an array of peers \(got missing\)/],
    ['too many asyncs', gen1({ async: Array.from({ length: 65 }, (_, i) => peer(`x${i}`)) }), /async: has 65 peers, more than the limit of 64/],
    ['freeze that is a boolean', { ...gen1(), freeze: true }, /freeze: must be \{date, reason\} \(got boolean true\)/],
    ['freeze without a date', { ...gen1(), freeze: { reason: 'r' } }, /freeze\.date: must be an ISO 8601 time/],
    ['freeze with a bad date', { ...gen1(), freeze: { date: 'yesterday', reason: 'r' } }, /freeze\.date: must be an ISO 8601 time/],
    ['freeze without a reason', { ...gen1(), freeze: { date: '2026-01-01T00:00:00Z' } }, /freeze\.reason: must be a string/],
    ['oneNodeWriteMode not a boolean', { ...gen1(), oneNodeWriteMode: 'yes' }, /oneNodeWriteMode: must be a boolean/],
    ['onwmOverride not a boolean', { ...gen1(), onwmOverride: 'on' }, /onwmOverride: must be a boolean, or absent to follow each peer's configuration \(got the string "on"\)/],
    ['onwmOverride null', { ...gen1(), onwmOverride: null }, /onwmOverride: must be a boolean.*\(got null\)/],
    ['promote with a bad role', { ...gen1(), promote: { id: 'b', role: 'primary', generation: 1, expireTime: '2026-01-01T00:01:00Z' } }, /promote\.role: must be "sync" or "async"/],
    ['promote of an async without asyncIndex', { ...gen1(), promote: { id: 'c', role: 'async', generation: 1, expireTime: '2026-01-01T00:01:00Z' } }, /promote\.asyncIndex: is required when promote\.role is "async"/],
    ['promote with a negative asyncIndex', { ...gen1(), promote: { id: 'c', role: 'async', asyncIndex: -1, generation: 1, expireTime: '2026-01-01T00:01:00Z' } }, /promote\.asyncIndex: must be an integer >= 0/],
    ['promote without a generation', { ...gen1(), promote: { id: 'b', role: 'sync', expireTime: '2026-01-01T00:01:00Z' } }, /promote\.generation: must be an integer >= 1/],
    ['promote with a bad expireTime', { ...gen1(), promote: { id: 'b', role: 'sync', generation: 1, expireTime: 'soon' } }, /promote\.expireTime: must be an ISO 8601 time/],
    ['promote without an id', { ...gen1(), promote: { role: 'sync', generation: 1, expireTime: '2026-01-01T00:01:00Z' } }, /promote\.id: must be a non-empty string/],
    ['promote with an unknown field', { ...gen1(), promote: { id: 'b', role: 'sync', generation: 1, expireTime: '2026-01-01T00:01:00Z', force: true } }, /promote\.force: is not a known field/],
  ];
  for (const [name, state, re] of cases) {
    it(`rejects ${name}`, () => {
      expect(rejectFirst(state)).toMatch(re);
    });
  }

  it('names every problem of a state, not only the first', () => {
    const msg = rejectFirst({ ...gen1(), generation: 0, initWal: 'bad' });
    expect(msg).toMatch(/generation: must be an integer >= 1/);
    expect(msg).toMatch(/initWal: must be an LSN/);
  });

  it('accepts initial setup (generation 1, initWal 0/0) and ONWM with no sync and no asyncs', () => {
    expect(stateShapeProblems(gen1())).toEqual([]);
    expect(stateShapeProblems(gen1({ oneNodeWriteMode: true, sync: null, async: [] }))).toEqual([]);
    expect(stateShapeProblems(gen1({ oneNodeWriteMode: false }))).toEqual([]);
    const full = gen1({
      generation: 7,
      deposed: [d],
      initWal: 'ffffffff/FFFFFFFF',
      freeze: { date: '2026-01-01T00:00:00.000Z', reason: 'maintenance' },
      promote: { id: 'c', role: 'async', asyncIndex: 0, generation: 7, expireTime: '2026-01-01T00:01:00.000Z' },
    });
    expect(stateShapeProblems(full)).toEqual([]);
  });

  it("keeps the operator's onwmOverride in the stored state, in either mode, and within a generation", () => {
    const drv = new Driver();
    drv.ok(gen1());
    drv.ok(gen1({ onwmOverride: true }));
    expect(drv.machine.state?.onwmOverride).toBe(true);
    // The primary's downgrade: generation+1, no sync, the override kept.
    drv.ok(gen1({ generation: 2, sync: null, async: [], oneNodeWriteMode: true, onwmOverride: true }));
    expect(drv.machine.state).toMatchObject({ generation: 2, sync: null, oneNodeWriteMode: true, onwmOverride: true });
    drv.ok(gen1({ generation: 2, sync: null, async: [], oneNodeWriteMode: true, onwmOverride: false }));
    expect(drv.machine.state?.onwmOverride).toBe(false);
  });
});

describe('validation of a change (transition)', () => {
  const g1 = gen1();
  const takeover = { generation: 2, primary: b, sync: c, async: [], deposed: [a], initWal: '0/3000060' };

  it('rejects a generation that skips ahead', () => {
    expect(rejectAfter(g1, { ...takeover, generation: 3 })).toMatch(/generation 3 must be the current generation 1 or 2/);
  });

  it('rejects a generation that goes back', () => {
    const drv = new Driver();
    drv.ok(g1);
    drv.ok(takeover);
    expect(rejection(drv.put({ ...takeover, generation: 1 })).message).toMatch(/generation 1 must be the current generation 2 or 3/);
  });

  it('rejects a new primary without a new generation', () => {
    expect(rejectAfter(g1, { ...takeover, generation: 1, initWal: '0/0' })).toMatch(
      /primary changed from a to b without a new generation \(must be 2\)/,
    );
  });

  it('rejects a new sync without a new generation', () => {
    expect(rejectAfter(g1, gen1({ sync: c, async: [b] }))).toMatch(/sync changed from b to c without a new generation \(must be 2\)/);
  });

  it('rejects a new generation that changes neither primary nor sync', () => {
    expect(rejectAfter(g1, gen1({ generation: 2, async: [] }))).toMatch(
      /generation went from 1 to 2 but neither the primary nor the sync changed/,
    );
  });

  it('rejects a generation change while frozen', () => {
    const frozen = gen1({ freeze: { date: '2026-01-01T00:00:00.000Z', reason: 'upgrade' } });
    expect(rejectAfter(frozen, { ...takeover, freeze: frozen.freeze })).toMatch(
      /the cluster is frozen \(upgrade\): no generation change \(1 to 2\) until it is unfrozen/,
    );
  });

  it('rejects an initWal change within a generation', () => {
    expect(rejectAfter(g1, gen1({ initWal: '0/10' }))).toMatch(/initWal changed from 0\/0 to 0\/10 within generation 1/);
  });

  it('rejects a new generation whose initWal is behind the current one', () => {
    const drv = new Driver();
    drv.ok(g1);
    drv.ok(takeover);
    const next = { generation: 3, primary: c, sync: d, async: [], deposed: [a, b], initWal: '0/3000000' };
    expect(rejection(drv.put(next)).message).toMatch(/initWal 0\/3000000 is behind the current initWal 0\/3000060/);
  });

  it("accepts Manatee's writes: async changes, takeover, sync replacement, freeze, ONWM upgrade, deposed removal", () => {
    const drv = new Driver();
    drv.ok(g1);
    drv.ok(gen1({ async: [c, d] })); // primary appends an async
    drv.ok(gen1({ async: [d] })); // and removes one
    drv.ok(gen1({ async: [d], freeze: { date: '2026-01-01T00:00:00.000Z', reason: 'op' } })); // freeze
    drv.ok(gen1({ async: [d] })); // unfreeze
    drv.ok({ generation: 2, primary: b, sync: d, async: [], deposed: [a], initWal: '0/3000060' }); // takeover
    drv.ok({ generation: 2, primary: b, sync: d, async: [], deposed: [], initWal: '0/3000060' }); // a rebuilt itself
    drv.ok({ generation: 2, primary: b, sync: d, async: [a], deposed: [], initWal: '0/3000060' }); // rejoins as async
    drv.ok({ generation: 3, primary: b, sync: a, async: [], deposed: [], initWal: '0/4000000' }); // sync replaced
    expect(drv.machine.version).toBe(9);

    const onwm = new Driver();
    onwm.ok(gen1({ oneNodeWriteMode: true, sync: null, async: [] }));
    onwm.ok({ generation: 2, primary: a, sync: b, async: [], deposed: [], initWal: '0/A' }); // upgrade to normal mode
    expect(onwm.machine.state?.sync?.id).toBe('b');
  });

  it('has no transition problems for a first state', () => {
    expect(transitionProblems(null, gen1({ generation: 5 }))).toEqual([]);
  });
});

describe('LSN', () => {
  it('orders LSNs by both halves', () => {
    expect(compareLsn('0/10', '0/9')).toBe(1);
    expect(compareLsn('1/0', '0/FFFFFFFF')).toBe(1);
    expect(compareLsn('0/3000060', '0/3000060')).toBe(0);
    expect(compareLsn('0/a', '0/B')).toBe(-1);
    expect(isLsn('0/0')).toBe(true);
    expect(isLsn('0/')).toBe(false);
    expect(isLsn(' 0/1')).toBe(false);
    expect(() => compareLsn('x', '0/0')).toThrow(/malformed LSN/);
  });
});
