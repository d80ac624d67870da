// The evaluation loop's part of GET /status (src/peer/loop.ts status): when it last ran, since
// when one runs, and its last progress (a restore's, when later than the evaluation's start).
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { EvaluationLoop } from '../../src/peer/loop.js';

describe('EvaluationLoop.status', () => {
  it('reports the running evaluation, its progress, and the last one ended', async () => {
    let nowMs = Date.parse('2026-01-01T00:00:00.000Z');
    let release = (): void => undefined;
    const loop = new EvaluationLoop({
      evaluate: () => new Promise<void>((r) => { release = r; }),
      clock: { nowMs: () => nowMs },
      log: silentLogger(),
    });
    expect(loop.status(0, 300_000)).toEqual({ lastEvaluatedAt: null, evaluatingSince: null, lastProgressAt: null, stuckAfterMs: 300_000 });
    loop.kick();
    // Running since 00:00:00; a restore reported progress at 00:00:05.
    expect(loop.status(Date.parse('2026-01-01T00:00:05.000Z'), 300_000)).toMatchObject({
      evaluatingSince: '2026-01-01T00:00:00.000Z', lastProgressAt: '2026-01-01T00:00:05.000Z',
    });
    // A progress older than the evaluation's start counts from the start.
    expect(loop.status(0, 300_000).lastProgressAt).toBe('2026-01-01T00:00:00.000Z');
    nowMs += 7000;
    release();
    await loop.stop(1000);
    expect(loop.status(0, 300_000)).toEqual({ lastEvaluatedAt: '2026-01-01T00:00:07.000Z', evaluatingSince: null, lastProgressAt: null, stuckAfterMs: 300_000 });
  });
});
