// The sitter's "one line per decision" rule for reconcile actions that repeat every evaluation.
import { describe, expect, it } from 'vitest';
import { RepeatFilter } from '../../src/peer/repeat-log.js';

describe('RepeatFilter', () => {
  it('logs a new line at info, its repeats at debug, and at info again once a minute with the count', () => {
    const f = new RepeatFilter(60_000);
    expect(f.next('waiting for the sync', 0)).toEqual({ level: 'info', repeated: 0, sinceMs: 0 });
    expect(f.next('waiting for the sync', 1000)).toEqual({ level: 'debug', repeated: 1, sinceMs: 0 });
    expect(f.next('waiting for the sync', 59_999)).toEqual({ level: 'debug', repeated: 2, sinceMs: 0 });
    expect(f.next('waiting for the sync', 60_000)).toEqual({ level: 'info', repeated: 3, sinceMs: 0 });
    expect(f.next('waiting for the sync', 61_000)).toEqual({ level: 'debug', repeated: 1, sinceMs: 60_000 });
  });

  it('a different line, or a run ended by nothing to log, starts again at info', () => {
    const f = new RepeatFilter(60_000);
    expect(f.next('a', 0)?.level).toBe('info');
    expect(f.next('b', 1)).toEqual({ level: 'info', repeated: 0, sinceMs: 1 });
    expect(f.next('a', 2)?.level).toBe('info');
    expect(f.next(null, 3)).toBeNull();
    expect(f.next('a', 4)).toEqual({ level: 'info', repeated: 0, sinceMs: 4 });
    expect(f.next('a', 5)?.level).toBe('debug');
  });
});
