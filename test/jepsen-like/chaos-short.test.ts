// The short chaos run of `npm test`: three minutes of faults of every kind against a real shard in
// network namespaces, with a fixed seed, and checked histories (nothing lost; the register linearizable). A failure prints the seed, the
// problems and the results directory; replay it with `npm run chaos -- --seed <seed> --time 180`.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_OPTIONS, ownedByAnotherLiveRun, runChaos, verdictLines } from './harness.js';
import { canManageNetworks, leftoverPrefixes } from './net.js';

const SEED = 20261124;


describe.skipIf(!canManageNetworks())('chaos (short)', () => {
  it('loses no acknowledged write, and the register history is linearizable, through three minutes of every kind of fault', { timeout: 15 * 60_000 }, async () => {
    const before = new Set(await leftoverPrefixes());
    const lines: string[] = [];
    const summary = await runChaos({
      ...DEFAULT_OPTIONS,
      timeS: 180,
      seed: SEED,
      eachKind: true,
      // Bounded: whatever kinds are still missing after 180 s get at most this much more time.
      extraS: 240,
      log: (l) => { lines.push(l); },
    });
    const verdict = [...verdictLines(summary), '  last lines of the run:', ...lines.slice(-40)].join('\n');
    expect(summary.problems, verdict).toEqual([]);
    expect(summary.valid).toBe(true);
    expect(summary.durationS).toBeGreaterThanOrEqual(180);
    expect(summary.faults.missingKinds, verdict).toEqual([]);
    for (const k of DEFAULT_OPTIONS.faults) expect(summary.faults.byKind[k] ?? 0, k).toBeGreaterThanOrEqual(1);
    expect(summary.check.counts.writes.ok).toBeGreaterThan(100);
    expect(summary.check.lost.count).toBe(0);
    // The register workload ran through the same faults, and its history is linearizable.
    const register = summary.linearizability.register!;
    expect(register.verdict, verdict).toBe('linearizable');
    expect(register.operations).toBeGreaterThan(100);
    expect(register.keys).toBeGreaterThan(1);
    // The results directory holds everything the issue asks for.
    for (const f of ['seed', 'config.json', 'history.jsonl', 'register.jsonl', 'register-history.jsonl', 'faults.jsonl', 'summary.json', 'timeline.svg', 'peers/peer1.log']) {
      expect(existsSync(join(summary.resultsDir, f)), f).toBe(true);
    }
    expect(readFileSync(join(summary.resultsDir, 'timeline.svg'), 'utf8')).toMatch(/^<svg/);
    // Nothing of this run is left behind (a run that another process started meanwhile is not ours).
    const after = (await leftoverPrefixes()).filter((p) => !before.has(p) && !ownedByAnotherLiveRun(p));
    expect(after).toEqual([]);
  });
});
