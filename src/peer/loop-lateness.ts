// A stall of this sitter's event loop, said in its log with what the process did meanwhile. The
// keepalives that hold this peer's session (and a primary's lease, lease-fence.ts) run on this
// loop: when it runs a quarter of a session timeout late or more, one warn line says for how long,
// and how that time divides between the event loop's thread on a CPU (a synchronous step, or GC),
// waiting for a CPU (the machine is overloaded), and neither (blocked in a system
// call, e.g. a disk flush, or stopped). Before, a lease lost under load left no trace of which
// process had stalled nor why (issue #11 follow-up).
//
// It adds no wake-up of its own: the Raft node's tick calls tick() (cli/sitter-wiring.ts). Each tick
// reads the thread's counters with one pread of /proc/self/schedstat (Linux); elsewhere the
// process's CPU time stands in, with no run-queue figure.
// A Raft follower that knows its leader ticks on the leader's messages, not on a schedule: its
// lateness is then its Raft timer's (RaftNode.lastTickLateMs), and a stall that ends before that
// timer was due (at most LAZY_TICKER_HORIZON_MS ahead) goes unseen: nothing was due meanwhile.
import { closeSync, openSync, readSync } from 'node:fs';
import type { Logger } from '../log.js';
import { ManateeError } from '../errors.js';

/** The event loop's thread: ms on a CPU, and ms runnable but waiting for one (null where unknown). */
export interface ThreadTimes {
  readonly cpuMs: number;
  readonly runDelayMs: number | null;
}

/** What the time of one stall went to. */
export type StallCause = 'waiting for a CPU' | 'on CPU' | 'blocked or stopped' | 'off CPU';

export interface LoopStall {
  /** From the tick before the stall to the late one, less one tick: how late the loop ran. */
  readonly lateMs: number;
  /** On a CPU, GC included (GC pauses are not counted apart: a 'gc' PerformanceObserver cost the idle sitters a third more CPU). */
  readonly cpuMs: number;
  readonly runDelayMs: number | null;
  /** The rest: neither on a CPU nor waiting for one (null when the run-queue figure is unknown). */
  readonly blockedMs: number | null;
  readonly cause: StallCause;
}

/**
 * Reads the calling process's main thread (the event loop's) from `path`, schedstat's
 * "<ns on CPU> <ns waiting on a run queue> <slices>", keeping the file open (one pread a call).
 * Where it cannot be read, process.cpuUsage() stands in, with runDelayMs null.
 */
export class ThreadTimesReader {
  private fd: number | null = null;
  private failed = false;
  private readonly buf = Buffer.alloc(128);

  constructor(private readonly path = '/proc/self/schedstat') {}

  read(): ThreadTimes {
    if (!this.failed) {
      try {
        this.fd ??= openSync(this.path, 'r');
        const n = readSync(this.fd, this.buf, 0, this.buf.length, 0);
        const [run, wait] = this.buf.toString('latin1', 0, n).split(' ').map(Number);
        if (run !== undefined && wait !== undefined && Number.isFinite(run) && Number.isFinite(wait)) return { cpuMs: run / 1e6, runDelayMs: wait / 1e6 };
      } catch {
        // Not Linux, or no schedstat: the process's CPU time below.
      }
      this.failed = true;
      this.close();
    }
    const u = process.cpuUsage();
    return { cpuMs: (u.user + u.system) / 1000, runDelayMs: null };
  }

  /** Whether the run-queue figure is read (false once the file failed). */
  get precise(): boolean {
    return !this.failed;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

export interface LoopLatenessOptions {
  /** How often tick() is called (the Raft node's tick). */
  readonly tickMs: number;
  /** A tick this much later than due is a stall (the sitter: a quarter of the session timeout). */
  readonly thresholdMs: number;
  /** Monotonic now (performance.now()). */
  readonly nowMs: () => number;
  readonly times: () => ThreadTimes;
  readonly log: Logger;
}

/** What the largest share of a stall of `wallMs` went to ('off CPU' when the run-queue figure is unknown). */
export function stallCause(wallMs: number, cpuMs: number, runDelayMs: number | null): StallCause {
  if (runDelayMs === null) return cpuMs * 2 >= wallMs ? 'on CPU' : 'off CPU';
  const blockedMs = wallMs - cpuMs - runDelayMs;
  if (runDelayMs >= cpuMs && runDelayMs >= blockedMs) return 'waiting for a CPU';
  return cpuMs >= blockedMs ? 'on CPU' : 'blocked or stopped';
}

const WHY: Record<StallCause, string> = {
  'waiting for a CPU': 'the machine is overloaded: this process was ready to run but had no CPU',
  'on CPU': 'this process ran without yielding (a synchronous step or GC)',
  'blocked or stopped': 'this process was blocked in a system call (e.g. a disk flush) or stopped',
  'off CPU': 'this process was not on a CPU: overloaded, blocked or stopped (no run-queue figure here)',
};

/** Notes each tick's lateness; logs a stall (one warn line) and returns it. */
export class LoopLateness {
  private last: { atMs: number; times: ThreadTimes } | null = null;

  constructor(private readonly o: LoopLatenessOptions) {
    if (!(o.tickMs > 0 && o.thresholdMs > 0)) throw new ManateeError('MANATEE_ERR_INVALID_ARGUMENT', `loop lateness: tickMs and thresholdMs must be positive (got ${o.tickMs} and ${o.thresholdMs})`);
  }

  /**
   * Called on every tick. `lateMs`: how late the caller's clock ran this tick, when its ticks do not
   * come on a fixed schedule (a Raft follower ticks on its leader's messages, RaftNode.lastTickLateMs);
   * by default the gap since the last call less tickMs.
   */
  tick(lateMsGiven?: number): LoopStall | null {
    const atMs = this.o.nowMs();
    const times = this.o.times();
    const prev = this.last;
    this.last = { atMs, times };
    if (prev === null) return null;
    const lateMs = Math.round(lateMsGiven ?? atMs - prev.atMs - this.o.tickMs);
    if (lateMs < this.o.thresholdMs) return null;
    const wallMs = atMs - prev.atMs;
    const cpuMs = Math.round(times.cpuMs - prev.times.cpuMs);
    const runDelayMs = times.runDelayMs === null || prev.times.runDelayMs === null ? null : Math.round(times.runDelayMs - prev.times.runDelayMs);
    const blockedMs = runDelayMs === null ? null : Math.max(0, Math.round(wallMs - cpuMs - runDelayMs));
    const stall: LoopStall = { lateMs, cpuMs, runDelayMs, blockedMs, cause: stallCause(wallMs, cpuMs, runDelayMs) };
    const parts = [`on CPU ${stall.cpuMs} ms`];
    if (runDelayMs !== null) parts.push(`waiting for a CPU ${runDelayMs} ms`, `blocked or stopped ${blockedMs ?? 0} ms`);
    this.o.log.warn(
      { decision: 'loop-stall', ...stall, thresholdMs: this.o.thresholdMs, reason: WHY[stall.cause] },
      `event loop ran ${lateMs} ms late: ${parts.join(', ')}; ${WHY[stall.cause]}`,
    );
    return stall;
  }
}
