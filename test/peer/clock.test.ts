// The sitter's periodic jobs take their clock from the Raft tick where it can keep their period
// (everyFrom): a period the shared clock refuses, or no shared clock, gets a timer of its own.
import { describe, expect, it } from 'vitest';
import { everyFrom } from '../../src/peer/clock.js';
import { waitFor } from '../../tools/lib/wait.js';

describe('everyFrom', () => {
  it('uses the shared clock when it takes the period, and its stop', () => {
    const asked: number[] = [];
    let stopped = 0;
    const shared = (ms: number): (() => void) | null => {
      asked.push(ms);
      return () => { stopped++; };
    };
    const stop = everyFrom(shared)(1000, () => undefined);
    expect(asked).toEqual([1000]);
    stop();
    expect(stopped).toBe(1);
  });

  it('falls back to a timer of its own when the shared clock refuses the period, or there is none', async () => {
    for (const every of [everyFrom(() => null), everyFrom(undefined)]) {
      let runs = 0;
      const stop = every(10, () => { runs++; });
      await waitFor('three runs of the timer', () => runs >= 3, { timeoutMs: 10_000 });
      stop();
      const at = runs;
      await new Promise((r) => setTimeout(r, 50));
      expect(runs).toBe(at);
    }
  });
});
