// One log line per decision: a line that repeats itself every evaluation (waiting for a sync to
// catch up, a restore's backoff) is logged at info once, then at debug. While it goes on it is
// logged at info again every `everyMs`, with how many times it repeated meanwhile, so that a step
// repeated for a bad reason (PostgreSQL restarted again and again) still shows at info.

export interface RepeatVerdict {
  readonly level: 'info' | 'debug';
  /** At info after repeats: how many times the line repeated since it was last logged at info. */
  readonly repeated: number;
  /** When it was last logged at info before now (epoch ms), when repeated > 0. */
  readonly sinceMs: number;
}

export class RepeatFilter {
  private last: { key: string; count: number; infoAtMs: number } | null = null;

  constructor(private readonly everyMs: number) {}

  /** The level for `key` now; `null` as the key ends a run (nothing to log). */
  next(key: string | null, nowMs: number): RepeatVerdict | null {
    if (key === null) {
      this.last = null;
      return null;
    }
    const last = this.last;
    if (last?.key === key) {
      last.count++;
      if (nowMs - last.infoAtMs < this.everyMs) return { level: 'debug', repeated: last.count, sinceMs: last.infoAtMs };
      const verdict: RepeatVerdict = { level: 'info', repeated: last.count, sinceMs: last.infoAtMs };
      this.last = { key, count: 0, infoAtMs: nowMs };
      return verdict;
    }
    this.last = { key, count: 0, infoAtMs: nowMs };
    return { level: 'info', repeated: 0, sinceMs: nowMs };
  }
}
