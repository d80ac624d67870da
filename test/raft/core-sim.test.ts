// The randomized simulation: many seeds of a chaotic workload (faulty network, crashes, partitions,
// compaction, membership changes, leadership transfers, ReadIndex reads), with Raft's safety
// properties checked after every event and liveness checked once the network heals.
//   RAFT_SIM_SEED=<n>     replays one seed exactly, with a trace printed on failure
//   RAFT_SIM_SEEDS=<count> runs that many seeds (default 500)
//   RAFT_SIM_FIRST_SEED=<n> starts there (default 1), to explore new seeds
import { describe, expect, test } from 'vitest';
import { runWorkload, type WorkloadResult } from './sim/workload.js';
import { errorMessage } from '../../src/errors.js';

const DEFAULT_SEEDS = 500;
/** Seeds per vitest test: small enough that progress shows, large enough to keep overhead low. */
const SEEDS_PER_TEST = 50;

function runSeed(seed: number): WorkloadResult {
  try {
    return runWorkload(seed);
  } catch (first) {
    // The run is deterministic: replay it with tracing so that the failure shows what led to it.
    try {
      runWorkload(seed, { trace: true });
    } catch (traced) {
      const msg = errorMessage(traced);
      throw new Error(`seed ${seed} failed (replay: RAFT_SIM_SEED=${seed} npx vitest run test/raft/core-sim.test.ts): ${msg}`, { cause: first });
    }
    throw new Error(`seed ${seed} failed, but not when replayed with tracing: the simulation is not deterministic`, { cause: first });
  }
}

const single = process.env['RAFT_SIM_SEED'];

if (single !== undefined) {
  test(`replay seed ${single}`, () => {
    const r = runWorkload(Number(single), { trace: true });
    expect(r.committed).toBeGreaterThan(1);
  });
} else {
  const count = Number(process.env['RAFT_SIM_SEEDS'] ?? DEFAULT_SEEDS);
  describe(`randomized simulation, ${count} seeds`, () => {
    const totals = { committed: 0, elections: 0, reads: 0, snapshots: 0, confChanges: 0 };
    const first = Number(process.env['RAFT_SIM_FIRST_SEED'] ?? 1);
    for (let start = first; start < first + count; start += SEEDS_PER_TEST) {
      const end = Math.min(first + count - 1, start + SEEDS_PER_TEST - 1);
      test(`seeds ${start}..${end}: safety after every step, liveness after healing`, async () => {
        for (let seed = start; seed <= end; seed++) {
          // Let the worker's event loop breathe (vitest's RPC times out if a test never yields).
          await new Promise((resolve) => setImmediate(resolve));
          const r = runSeed(seed);
          totals.committed += r.committed;
          totals.elections += r.cluster.stats.elections;
          totals.reads += r.cluster.stats.readsDone;
          totals.snapshots += r.cluster.stats.snapshotsSent;
          totals.confChanges += r.confChanges;
        }
      });
    }
    test.runIf(count >= 100)('the workload exercised every feature', () => {
      // Guard against a workload that silently stopped doing anything interesting.
      expect(totals.committed).toBeGreaterThan(count * 10);
      expect(totals.elections).toBeGreaterThan(count);
      expect(totals.reads).toBeGreaterThan(count);
      expect(totals.snapshots).toBeGreaterThan(count / 10);
      expect(totals.confChanges).toBeGreaterThan(count / 10);
    });
  });
}
