// The Raft transport's throttle for the log lines a flood repeats once per socket (no hello, a
// failed TLS handshake): the first at once, then one line per interval with the count, none lost.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { ThrottledLog } from '../../src/raft/transport/throttled-log.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } });
  return { lines, log };
}

describe('ThrottledLog', () => {
  let nowMs = 0;
  beforeEach(() => { vi.useFakeTimers(); nowMs = 1_000_000; });
  afterEach(() => { vi.useRealTimers(); });
  const advance = (ms: number): void => { nowMs += ms; vi.advanceTimersByTime(ms); };

  it('writes the first at once, sums a flood into one line per interval, and loses no count', () => {
    const { lines, log } = capture();
    const t = new ThrottledLog({ log, msg: 'refused', intervalMs: 5000, nowMs: () => nowMs });
    t.note({ remote: 'a:1' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ remote: 'a:1', count: 1, countTotal: 1, msg: 'refused' });
    // 1000 more within the interval: nothing until it ends, then one line with their count and the last one's fields.
    for (let i = 0; i < 1000; i++) { advance(4); t.note({ remote: `b:${i}` }); }
    expect(lines).toHaveLength(1);
    advance(1000);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ remote: 'b:999', count: 1000, countTotal: 1001, msg: 'refused: 1000 since the last line' });
    // Still inside the next interval: held again.
    advance(1000);
    t.note({ remote: 'c:1' });
    expect(lines).toHaveLength(2);
    advance(4000);
    expect(lines[2]).toMatchObject({ remote: 'c:1', count: 1, countTotal: 1002 });
    // After a quiet spell longer than the interval, the next is written at once.
    advance(20_000);
    t.note({ remote: 'd:1' });
    expect(lines).toHaveLength(4);
    expect(t.count).toBe(1003);
  });

  it('flush() writes what is held (a closing transport), and nothing when nothing is', () => {
    const { lines, log } = capture();
    const t = new ThrottledLog({ log, msg: 'refused', intervalMs: 5000, nowMs: () => nowMs });
    t.flush();
    expect(lines).toHaveLength(0);
    t.note({ remote: 'a:1' });
    t.note({ remote: 'a:2' });
    t.note({ remote: 'a:3' });
    t.flush();
    expect(lines.map((l) => l['count'])).toEqual([1, 2]);
    advance(10_000);
    expect(lines).toHaveLength(2);
  });

  it('refuses an interval that is not above 0', () => {
    const { log } = capture();
    expect(() => new ThrottledLog({ log, msg: 'x', intervalMs: 0, nowMs: () => 0 })).toThrow(expect.objectContaining({ code: 'MANATEE_ERR_RAFT_CONFIG', message: expect.stringMatching(/intervalMs must be above 0, got 0/) }));
  });
});
