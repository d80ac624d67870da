// The whole shard in a seeded simulation (issue 13, item 4): the real rules, reconciler and store
// on the simulated Raft, PostgreSQL, network and clock, with the invariants checked after every
// step (test/sim/invariants.ts) and liveness once the faults stop.
//   SHARD_SIM_SEEDS=n   run seeds 1..n (default 1000)
//   SHARD_SIM_SEED=n    replay one seed and print its trace
// A failing seed replays exactly: `npm run sim -- --seed n` prints its trace.
import { describe, expect, it } from 'vitest';
import { runShardSim, type ShardSimResult } from './shard.js';
import { ALL_FIXES } from './sitter.js';

function envInt(name: string): number | null {
  const text = process.env[name];
  if (text === undefined || text === '') return null;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name}: expected a non-negative integer, got ${JSON.stringify(text)}`);
  return n;
}

const ONE_SEED = envInt('SHARD_SIM_SEED');
const SEEDS = envInt('SHARD_SIM_SEEDS') ?? 1000;

function failure(r: ShardSimResult): string {
  return `${r.error?.message ?? `seed ${r.seed}`} (replay: SHARD_SIM_SEED=${r.seed} npx vitest run test/sim/shard-sim.test.ts, or npm run sim -- --seed ${r.seed})`;
}

describe('the whole shard, simulated', () => {
  if (ONE_SEED !== null) {
    it(`replays seed ${ONE_SEED}`, async () => {
      const r = await runShardSim({ seed: ONE_SEED, trace: true });
      console.log((r.trace ?? []).join('\n'));
      expect(r.error?.message ?? null).toBeNull();
    });
    return;
  }

  it(`keeps every invariant, and heals after the faults stop, on seeds 1..${SEEDS}`, async () => {
    const unexpected: string[] = [];
    let takeovers = 0;
    let acks = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = await runShardSim({ seed });
      takeovers += r.stats.takeovers;
      acks += r.stats.acks;
      if (!r.ok) unexpected.push(failure(r));
    }
    expect(unexpected).toEqual([]);
    // The runs did exercise failovers and writes (a simulator that never fails over proves little).
    expect(takeovers).toBeGreaterThan(SEEDS / 4);
    expect(acks).toBeGreaterThan(SEEDS * 10);
  }, 600_000);

  it('with an operator who requests switchovers and freezes the shard, on seeds 1..100', async () => {
    const unexpected: string[] = [];
    for (let seed = 1; seed <= Math.min(SEEDS, 100); seed++) {
      const r = await runShardSim({ seed, operator: true });
      if (!r.ok) unexpected.push(`${failure(r)} with --operator`);
    }
    expect(unexpected).toEqual([]);
  }, 600_000);

  it('finds the sync that diverged from its primary and stalls the shard (seed 41) when its rebuild is off', async () => {
    // b's sitter restarts and cannot read the store for seconds (messages lost); its PostgreSQL
    // follows the old primary a meanwhile and receives WAL that c never had; c takes over with b
    // as sync. b, past initWal but on an older timeline, never streams: the primary stays read-only.
    const broken = await runShardSim({ seed: 41, fixes: { ...ALL_FIXES, rebuildDivergedSync: false } });
    expect(broken.error?.invariant).toBe('the shard is whole again after the faults stop');
    expect(broken.error?.message).toMatch(/primary c is not writable/);
    const fixed = await runShardSim({ seed: 41 });
    expect(fixed.error).toBeNull();
  });

  it('finds the sync on another fork of the same timeline number, stalled for good (seed 50019), when divergence is judged on the numbers', async () => {
    // c takes over (generation 3) with a as sync, but a holds WAL of b's timeline 2 past c's switch
    // point and never streams; c is cut off, a takes over (generation 4) and promotes to timeline 3,
    // the number c had already used. b, rebuilt from c, is a's sync: the same number, another
    // history. Judged on the numbers ("3 is not older than 3") it keeps its data, and the primary
    // stays read-only; judged on the histories (as pg_rewind does) it rebuilds.
    const seed = 50019;
    // (The read-only primary's rebuild of its sync heals this seed too: both are off.)
    const broken = await runShardSim({ seed, fixes: { ...ALL_FIXES, timelineHistories: false, rebuildSyncOfReadOnlyPrimary: false } });
    expect(broken.error?.invariant).toBe('the shard is whole again after the faults stop');
    expect(broken.error?.message).toMatch(/primary a is not writable/);
    const fixed = await runShardSim({ seed, trace: true });
    expect(fixed.error).toBeNull();
    expect(fixed.trace!.join('\n')).toMatch(/b stream-stalled-rebuild-sync: .*I am on timeline 3 \(from 2 at 0\/4C0, from 1 at 0\/280\) and the primary on timeline 3 \(from 2 at 0\/500, from 1 at 0\/280\)/);
  });

  it('finds the sync on another fork of the same timeline begun at the same position, stalled for good (seed 110731), unless a read-only primary\'s sync rebuilds', async () => {
    // b takes over (generation 2) and promotes to timeline 2 at 0/180 while its sync c is cut off;
    // a, deposed, is rebuilt from b. b is cut off in turn, c takes over (generation 3) at 0/180 too
    // and promotes to timeline 2: the same number from the same point, so the same history. a, now
    // c's sync, holds b's promotion and never streams; c waits for it, read-only.
    const seed = 110731;
    const broken = await runShardSim({ seed, fixes: { ...ALL_FIXES, rebuildSyncOfReadOnlyPrimary: false } });
    expect(broken.error?.invariant).toBe('the shard is whole again after the faults stop');
    expect(broken.error?.message).toMatch(/primary c is not writable/);
    const fixed = await runShardSim({ seed, trace: true });
    expect(fixed.error).toBeNull();
    expect(fixed.trace!.join('\n')).toMatch(/a stream-stalled-rebuild-sync: .*my primary is read-only, waiting for me \(and my timeline 2 \(from 1 at 0\/180\) is the primary's\)/);
  });

  it('finds the sync past initWal on another timeline history losing an acknowledged write (seed 136570 with an operator) when the LSN alone decides', async () => {
    // b, primary of generation 5 on timeline 2 (begun at 0/6C0), acknowledges write 103 with a as
    // sync. The operator's promote of the async makes c the sync (generation 6, initWal 0/780), but
    // c had followed the old primary a on timeline 1 past 0/6C0 (to 0/7C0) and never streams from b.
    // b is cut off; c's 0/7C0 is "past" 0/780 by the numbers, on a history that parts from b's at
    // 0/6C0: it must not take over (it does not hold write 103). It waits, b comes back, and c,
    // diverged, is rebuilt from b.
    const seed = 136570;
    const broken = await runShardSim({ seed, operator: true, fixes: { ...ALL_FIXES, initWalOnHistory: false } });
    expect(broken.error?.invariant).toBe('every acknowledged commit is on the new primary');
    expect(broken.error?.message).toMatch(/write 103 \(acknowledged by b in generation 5\) is not in c's WAL at the takeover of generation 7/);
    const fixed = await runShardSim({ seed, operator: true, trace: true });
    expect(fixed.error).toBeNull();
    const trace = fixed.trace!.join('\n');
    expect(trace).toMatch(/c divergedFromInitWal: primary "b" has no session, but my timeline 1 leaves timeline 2 \(from 1 at 0\/6C0\), where initWal 0\/780 is, at 0\/6C0/);
    expect(trace).toMatch(/c rebuilt from b in generation 6/);
  });

  it('keeps the sync fenced while its takeover write has no answer (seed 19644 with an operator)', async () => {
    // c, sync of b in generation 2, takes over on the operator's promote and detaches from b; its
    // write times out (50% of messages lost). It used to lift the fence at once: attached to b
    // again as its sync, it let b acknowledge write 133, and then its takeover (generation 3)
    // committed without it. Now it stays detached and proposes the same write again until the
    // store shows the outcome: b's writes wait, and none is acknowledged outside its generation.
    // Switched off (the real jobs, with a write without an answer taken for one never proposed):
    const broken = await runShardSim({ seed: 19644, operator: true, fixes: { ...ALL_FIXES, holdFenceUntilSettled: false } });
    expect(broken.error?.invariant).toBe('no commit acknowledged outside the current generation');
    expect(broken.error?.message).toMatch(/write 133 acknowledged by b, but the primary of generation 3 is c/);
    const fixed = await runShardSim({ seed: 19644, operator: true, trace: true });
    expect(fixed.error).toBeNull();
    const trace = fixed.trace!.join('\n');
    expect(trace).toMatch(/c promoteSync-unknown: the promoteSync write of generation 3 has no answer \(proposal \d+ not applied in time\); it may still commit, so the fence holds/);
    expect(trace).toMatch(/c promoteSync-committed: the promoteSync write of generation 3, whose outcome was unknown, committed: version 9 \(generation 3\)/);
    expect(trace).not.toMatch(/write 133 acknowledged by b in generation 2/);
  });

  it('on a loaded machine (stalled sitters, hung PostgreSQL, the primary\'s lease fence), on seeds 1..100', async () => {
    const unexpected: string[] = [];
    let takeovers = 0;
    for (let seed = 1; seed <= Math.min(SEEDS, 100); seed++) {
      const r = await runShardSim({ seed, load: true });
      takeovers += r.stats.takeovers;
      if (!r.ok) unexpected.push(`${failure(r)} with --load`);
    }
    expect(unexpected).toEqual([]);
    expect(takeovers).toBeGreaterThan(Math.min(SEEDS, 100) / 4);
  }, 600_000);

  it('finds the loaded primary stuck for good after closing its session (seed 23 with --load) when its lease fence counts as unhealthy', async () => {
    // b, primary of generation 2 (a deposed, c its sync, no async), fences itself again and again as
    // its sitter stalls; the fenced time counts as unhealthy and b closes its session. With no session
    // it sends no keepalive, so its fence never lifts and PostgreSQL never restarts; c cannot take
    // over with no async to be its sync, and a cannot rebuild from a primary without a session.
    const seed = 23;
    const broken = await runShardSim({ seed, load: true, fixes: { ...ALL_FIXES, fencedPrimaryRecovers: false } });
    expect(broken.error?.invariant).toBe('the shard is whole again after the faults stop');
    expect(broken.error?.message).toMatch(/deposed \[a\]/);
    const fixed = await runShardSim({ seed, load: true, trace: true });
    expect(fixed.error).toBeNull();
    const trace = fixed.trace!.join('\n');
    expect(trace).toMatch(/b lease-fence: fencing this primary/);
    expect(trace).toMatch(/a rebuilt from b in generation 2/);
  });

  it('fences a restarted primary cut off before its first acknowledged keepalive, from its session open, before the sync takes over', async () => {
    // The primary's sitter restarts (its PostgreSQL runs on), opens its session, and is isolated
    // before any keepalive of the new process is acknowledged. Its lease runs from when it sent the
    // open (store.ts leaseRenewedAtMs); before, it had no lease at all (null) and was never fenced:
    // its PostgreSQL served on while the sync took over.
    let oldPrimary = '';
    let cutAtMs = -1;
    const r = await runShardSim({
      seed: 1, load: true, trace: true,
      scenario: async (shard) => {
        const until = async (what: string, cond: () => boolean, limitMs = 20_000): Promise<void> => {
          const end = shard.world.nowMs + limitMs;
          while (!cond()) {
            if (shard.world.nowMs > end) throw new Error(`scenario: no ${what} within ${limitMs} ms`);
            await shard.world.sleep(1);
          }
        };
        await until('writable primary', () => shard.notWhole() === null);
        oldPrimary = shard.checker.committed.state!.primary.id;
        shard.killSitter(oldPrimary);
        shard.restartSitter(oldPrimary);
        const sitter = shard.sitters.get(oldPrimary)!;
        await until('session open of the restarted primary', () => sitter.store.session() !== null);
        expect(sitter.consensus.leaseRenewedAtMs()).toBeNull(); // no keepalive of this process acknowledged yet
        shard.partition([oldPrimary], shard.ids.filter((id) => id !== oldPrimary));
        cutAtMs = shard.world.nowMs;
        await until('takeover', () => shard.checker.committed.state!.primary.id !== oldPrimary);
        await shard.world.sleep(1000);
      },
    });
    expect(r.error).toBeNull();
    const trace = r.trace!;
    const at = (line: string): number => Number(/^\[(\d+\.\d+)s\]/.exec(line)![1]) * 1000;
    const fence = trace.find((l) => l.includes(`${oldPrimary} lease-fence: fencing this primary`) && at(l) >= cutAtMs);
    expect(fence, 'the isolated primary fenced itself').toBeDefined();
    const takeover = trace.find((l) => / (takeover|promoteSync)-committed: /.test(l) && at(l) >= cutAtMs);
    expect(takeover).toBeDefined();
    expect(at(fence!)).toBeLessThan(at(takeover!));
  });

  it('replays a seed exactly: the same trace twice', async () => {
    const first = await runShardSim({ seed: 7, trace: true });
    const second = await runShardSim({ seed: 7, trace: true });
    expect(first.trace!.length).toBeGreaterThan(100);
    expect(second.trace).toEqual(first.trace);
  });

  // The sitter bugs that the chaos harness found, ported as named seeds: with the fix switched
  // off the simulator finds the bug on a default seed; with it, the same seed passes.
  it('finds the restarted sitter acting on the state replayed from its own log (9415432) when the catch-up read is off', async () => {
    // As the chaos harness found it: before the diverged sync's rebuild existed (that rebuild now
    // also heals what this bug did, so it is off here, and the seed passes with only it off).
    // Seed 51: c's sitter restarts, replays generation 1 from its log (c the sync of b) although
    // generation 2 made a the sync, and points its PostgreSQL at b; it receives b's WAL beyond a's,
    // a takes over, and c, now a's sync, holds WAL that a never had: it never streams, and the
    // primary stays read-only (as the chaos harness saw it: "diverged, and stalled the shard as its sync").
    const seed = 51;
    const before = { ...ALL_FIXES, rebuildDivergedSync: false };
    const broken = await runShardSim({ seed, fixes: { ...before, readBeforeActing: false }, trace: true });
    expect(broken.error?.invariant).toBe('the shard is whole again after the faults stop');
    expect(broken.trace!.join('\n')).toMatch(/c decides none \(g1\): no action: I am the sync of generation 1, replicating from primary "b"/);
    expect((await runShardSim({ seed, fixes: before })).error).toBeNull();
    expect((await runShardSim({ seed })).error).toBeNull();
  });

  it('finds the deposed primary rejoining on a stale rebuild fact (d68a9ea, 881ee1d) when both fixes are off', async () => {
    const seed = 825;
    const broken = await runShardSim({ seed, fixes: { ...ALL_FIXES, forgetRebuildAsPrimary: false, rebuildOfThisGeneration: false } });
    expect(broken.error?.invariant).toBe('a deposed peer rejoins only rebuilt');
    expect(broken.error?.message).toMatch(/b left deposed in generation 4/);
    const fixed = await runShardSim({ seed });
    expect(fixed.error).toBeNull();
  });
});
