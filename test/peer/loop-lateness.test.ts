// The event loop's stalls as a sitter logs them (src/peer/loop-lateness.ts): how late the Raft tick
// ran, and what the event loop's thread did meanwhile. With a scripted clock and counters, then for
// real on this process: a busy loop is on CPU, Atomics.wait is blocked (neither on a CPU nor waiting).
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../src/log.js';
import { LoopLateness, ThreadTimesReader, stallCause, type ThreadTimes } from '../../src/peer/loop-lateness.js';

function capture(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } }) };
}

describe('LoopLateness with a scripted clock', () => {
  function scripted() {
    let nowMs = 0;
    let times: ThreadTimes = { cpuMs: 0, runDelayMs: 0 };
    const { log, lines } = capture();
    const l = new LoopLateness({ tickMs: 50, thresholdMs: 500, nowMs: () => nowMs, times: () => times, log });
    const at = (ms: number, t: ThreadTimes, lateMs?: number) => { nowMs = ms; times = t; return l.tick(lateMs); };
    return { at, lines };
  }

  it('says nothing of ticks on time or late by less than the threshold, nor of the first tick', () => {
    const s = scripted();
    expect(s.at(10_000, { cpuMs: 5000, runDelayMs: 9000 })).toBeNull();
    expect(s.at(10_050, { cpuMs: 5001, runDelayMs: 9000 })).toBeNull();
    expect(s.at(10_549, { cpuMs: 5002, runDelayMs: 9400 })).toBeNull(); // 449 ms late
    expect(s.lines).toEqual([]);
  });

  it('ticks that come when messages do (a Raft follower): the lateness the caller gives counts, not the gap', () => {
    const s = scripted();
    s.at(1000, { cpuMs: 100, runDelayMs: 50 });
    // 900 ms since the last tick, but the caller's timer was not late: no stall.
    expect(s.at(1900, { cpuMs: 101, runDelayMs: 50 }, 0)).toBeNull();
    // A tick 40 ms after the last whose timer ran 700 ms late: a stall of 700 ms, the split over the 40 ms since.
    const stall = s.at(1940, { cpuMs: 102, runDelayMs: 85 }, 700);
    expect(stall).toMatchObject({ lateMs: 700, cpuMs: 1, runDelayMs: 35, cause: 'waiting for a CPU' });
    expect(s.lines).toHaveLength(1);
  });

  it('a stall spent waiting for a CPU: one warn line with the figures and the reason', () => {
    const s = scripted();
    s.at(1000, { cpuMs: 100, runDelayMs: 50 });
    const stall = s.at(2850, { cpuMs: 160, runDelayMs: 1650 });
    expect(stall).toEqual({ lateMs: 1800, cpuMs: 60, runDelayMs: 1600, blockedMs: 190, cause: 'waiting for a CPU' });
    expect(s.lines).toHaveLength(1);
    expect(s.lines[0]).toMatchObject({ level: 40, decision: 'loop-stall', lateMs: 1800, runDelayMs: 1600, cause: 'waiting for a CPU', thresholdMs: 500 });
    expect(s.lines[0]!['msg']).toBe('event loop ran 1800 ms late: on CPU 60 ms, waiting for a CPU 1600 ms, blocked or stopped 190 ms; the machine is overloaded: this process was ready to run but had no CPU');
  });

  it('a stall on CPU, and one blocked, are told apart', () => {
    const s = scripted();
    s.at(0, { cpuMs: 0, runDelayMs: 0 });
    expect(s.at(1050, { cpuMs: 900, runDelayMs: 100 })?.cause).toBe('on CPU');
    expect(s.at(2100, { cpuMs: 910, runDelayMs: 110 })?.cause).toBe('blocked or stopped');
    expect(s.lines.map((l) => l['reason'])).toEqual([
      'this process ran without yielding (a synchronous step or GC)',
      'this process was blocked in a system call (e.g. a disk flush) or stopped',
    ]);
  });

  it('without a run-queue figure: on CPU, or off CPU', () => {
    expect(stallCause(1000, 700, null)).toBe('on CPU');
    expect(stallCause(1000, 100, null)).toBe('off CPU');
    const s = scripted();
    s.at(0, { cpuMs: 0, runDelayMs: null });
    expect(s.at(1050, { cpuMs: 20, runDelayMs: null })).toMatchObject({ runDelayMs: null, blockedMs: null, cause: 'off CPU' });
    expect(s.lines[0]!['msg']).toBe('event loop ran 1000 ms late: on CPU 20 ms; this process was not on a CPU: overloaded, blocked or stopped (no run-queue figure here)');
  });

  it('refuses a tick or threshold that is not positive, with its code', () => {
    const { log } = capture();
    const make = (tickMs: number, thresholdMs: number) => new LoopLateness({ tickMs, thresholdMs, nowMs: () => 0, times: () => ({ cpuMs: 0, runDelayMs: 0 }), log });
    expect(() => make(0, 500)).toThrow(expect.objectContaining({ code: 'MANATEE_ERR_INVALID_ARGUMENT', message: expect.stringMatching(/tickMs and thresholdMs must be positive \(got 0 and 500\)/) as unknown }));
    expect(() => make(50, Number.NaN)).toThrow(expect.objectContaining({ code: 'MANATEE_ERR_INVALID_ARGUMENT' }));
  });
});

describe('ThreadTimesReader', () => {
  it('without its file: the process CPU time, no run-queue figure', () => {
    const r = new ThreadTimesReader('/nonexistent/schedstat');
    const t = r.read();
    expect(t.runDelayMs).toBeNull();
    expect(t.cpuMs).toBeGreaterThan(0);
    expect(r.precise).toBe(false);
  });

  it.runIf(process.platform === 'linux')('reads this thread\'s times: a 300 ms busy loop is spent on a CPU or waiting for one', () => {
    const r = new ThreadTimesReader();
    const a = r.read();
    const until = performance.now() + 300;
    while (performance.now() < until) { /* spin */ }
    const b = r.read();
    r.close();
    expect(r.precise).toBe(true);
    expect(b.cpuMs - a.cpuMs).toBeGreaterThan(50);
    expect(b.cpuMs - a.cpuMs + b.runDelayMs! - a.runDelayMs!).toBeGreaterThan(250);
  });
});

describe.runIf(process.platform === 'linux')('LoopLateness on this process, ticked by a timer', () => {
  async function stallWith(block: () => void): Promise<ReturnType<LoopLateness['tick']>[]> {
    const { log } = capture();
    const reader = new ThreadTimesReader();
    const l = new LoopLateness({ tickMs: 20, thresholdMs: 300, nowMs: () => performance.now(), times: () => reader.read(), log });
    const stalls: ReturnType<LoopLateness['tick']>[] = [];
    const timer = setInterval(() => { const s = l.tick(); if (s !== null) stalls.push(s); }, 20);
    try {
      await new Promise((r) => setTimeout(r, 100));
      block();
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      clearInterval(timer);
      reader.close();
    }
    return stalls;
  }

  it('a synchronous step of 600 ms is a stall on CPU', async () => {
    const stalls = await stallWith(() => {
      const until = performance.now() + 600;
      while (performance.now() < until) { /* spin */ }
    });
    // On a loaded machine part of it may be spent waiting for a CPU; the loop ran late either way.
    expect(stalls.length).toBe(1);
    expect(stalls[0]!.lateMs).toBeGreaterThanOrEqual(550);
    expect(stalls[0]!.cpuMs + stalls[0]!.runDelayMs!).toBeGreaterThanOrEqual(550);
    expect(stalls[0]!.blockedMs!).toBeLessThan(200);
  });

  it('a thread blocked for 600 ms (Atomics.wait) is a stall blocked, not on CPU', async () => {
    const stalls = await stallWith(() => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600); });
    expect(stalls.length).toBe(1);
    expect(stalls[0]).toMatchObject({ cause: 'blocked or stopped' });
    expect(stalls[0]!.blockedMs!).toBeGreaterThanOrEqual(500);
    expect(stalls[0]!.cpuMs).toBeLessThan(100);
  });
});
