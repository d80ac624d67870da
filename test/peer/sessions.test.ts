// The session keeper (src/peer/sessions.ts) on a fake store and clock: when it closes this peer's
// session for PostgreSQL's health, and when it opens it again (rules/session.ts decides).
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { PeerInfo } from '../../src/model/index.js';
import { DecisionLog } from '../../src/peer/decision-log.js';
import type { Decision, PgRole } from '../../src/peer/rules/index.js';
import { SessionKeeper } from '../../src/peer/sessions.js';

const SELF: PeerInfo = { id: 'a', pgUrl: 'postgres://a:5432/postgres', apiUrl: 'http://a:5433', host: 'a' };
const LIMIT_MS = 5000;

function decision(role: PgRole): Decision {
  const position = role === 'none' ? 'unassigned' : role;
  return { kind: 'none', reason: `test: ${role}`, position, role, upstream: null, downstream: null, writableWithoutSync: false, needsRebuild: false, generation: 3, write: null };
}

function rig() {
  const w = { nowMs: 100_000, unhealthyForMs: 0, open: true, opens: 0, closes: 0, failOpen: false, retries: 0 };
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } });
  const decisions = new DecisionLog({ log, metrics: { recordDecision: () => undefined } });
  const keeper = new SessionKeeper({
    self: SELF,
    store: {
      session: () => (w.open ? {} : null),
      openSession: () => {
        if (w.failOpen) return Promise.reject(new Error('no leader'));
        w.open = true;
        w.opens++;
        return Promise.resolve({});
      },
      closeSession: () => {
        w.open = false;
        w.closes++;
        return Promise.resolve();
      },
    },
    unhealthyForMs: () => w.unhealthyForMs,
    unhealthyTimeoutMs: LIMIT_MS,
    decisions,
    clock: { nowMs: () => w.nowMs },
    log,
    retrySoon: () => { w.retries++; },
  });
  const as = (role: PgRole): void => { decisions.rules(decision(role), w.nowMs); };
  return { w, keeper, lines, as };
}

describe('the session keeper', () => {
  it('closes a primary\'s session after the unhealthy limit, and reopens it only once the sync had as long again to take over', async () => {
    const r = rig();
    r.as('primary');
    r.w.unhealthyForMs = LIMIT_MS + 1;
    await r.keeper.keep();
    expect(r.w).toMatchObject({ open: false, closes: 1 });
    // Its lease fence stopped PostgreSQL: no longer counted as unhealthy, but the sync's window runs.
    r.w.unhealthyForMs = 0;
    r.w.nowMs += LIMIT_MS - 1;
    await r.keeper.keep();
    await r.keeper.keep();
    expect(r.w.open).toBe(false);
    const waits = r.lines.filter((l) => l['decision'] === 'waitForTakeover');
    expect(waits).toHaveLength(1); // one line when the wait begins, not one per evaluation
    expect(waits[0]!['reason']).toMatch(/the sync may take over for 1 ms more before I reopen it/);
    r.w.nowMs += 1;
    await r.keeper.keep();
    expect(r.w).toMatchObject({ open: true, opens: 1 });
    expect(r.lines.find((l) => l['decision'] === 'openSession')?.['reason']).toMatch(/no peer took over within 5000 ms; reopening it to renew my lease and restart PostgreSQL/);
    // Reopened: a later close starts a new window.
    r.w.unhealthyForMs = LIMIT_MS + 1;
    await r.keeper.keep();
    r.w.unhealthyForMs = 0;
    r.w.nowMs += 10;
    await r.keeper.keep();
    expect(r.w).toMatchObject({ open: false, closes: 2, opens: 1 });
  });

  it('reopens a sync\'s session as soon as its PostgreSQL is healthy again (no window to wait for)', async () => {
    const r = rig();
    r.as('sync');
    r.w.unhealthyForMs = LIMIT_MS + 1;
    await r.keeper.keep();
    expect(r.w.open).toBe(false);
    r.w.unhealthyForMs = 10;
    await r.keeper.keep();
    expect(r.w.open).toBe(false);
    r.w.unhealthyForMs = 0;
    await r.keeper.keep();
    expect(r.w).toMatchObject({ open: true, opens: 1 });
  });

  it('keeps trying to reopen when the store has no leader, and the window does not restart', async () => {
    const r = rig();
    r.as('primary');
    r.w.unhealthyForMs = LIMIT_MS + 1;
    await r.keeper.keep();
    r.w.unhealthyForMs = 0;
    r.w.nowMs += LIMIT_MS;
    r.w.failOpen = true;
    await r.keeper.keep();
    expect(r.w).toMatchObject({ open: false, retries: 1 });
    r.w.failOpen = false;
    r.w.nowMs += 1;
    await r.keeper.keep();
    expect(r.w.open).toBe(true);
  });

  it('keeps a primary without data closed while it is the primary, and reopens once it is not', async () => {
    const r = rig();
    r.as('primary');
    await r.keeper.closeForLostData();
    expect(r.w.open).toBe(false);
    r.w.nowMs += 10 * LIMIT_MS;
    await r.keeper.keep();
    expect(r.w.open).toBe(false);
    expect(r.lines.find((l) => l['decision'] === 'waitForTakeover')?.['reason']).toMatch(/my data is gone/);
    r.as('deposed');
    await r.keeper.keep();
    expect(r.w).toMatchObject({ open: true, opens: 1 });
  });
});
