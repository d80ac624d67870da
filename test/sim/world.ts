// The simulated world's clock and timers. Time moves only when the simulator says so (one unit =
// UNIT_MS of simulated time); every timer, network delay and PostgreSQL operation resolves on it,
// so that one seed replays a run exactly.
import { Rng } from '../helpers/rng.js';

/** Simulated milliseconds per step of the simulator (and per Raft time unit). */
export const UNIT_MS = 10;
/** The simulated epoch: wall-clock times in the run start here (2026-01-01T00:00:00Z). */
export const EPOCH_MS = Date.UTC(2026, 0, 1);

interface Timer {
  readonly atMs: number;
  readonly seq: number;
  readonly fn: () => void;
}

/** A failure of an invariant: carries the seed so that it can be replayed. */
export class SimInvariantError extends Error {
  constructor(readonly seed: number, readonly invariant: string, message: string) {
    super(`seed ${seed}: ${invariant}: ${message}`);
    this.name = 'SimInvariantError';
  }
}

export class World {
  readonly rng: Rng;
  /** Simulated milliseconds since the start of the run. */
  nowMs = 0;
  private timers: Timer[] = [];
  private seq = 0;
  readonly trace: string[] | null;
  private recordSeq = 0;
  /** Told whenever a PostgreSQL turns writable (the invariants watch it). */
  onWritable: (peerId: string) => void = () => undefined;

  constructor(readonly seed: number, opts: { trace?: boolean } = {}) {
    this.rng = new Rng(seed);
    this.trace = opts.trace === true ? [] : null;
  }

  /** A WAL record id, unique in the run. */
  nextRecordId(): number {
    return ++this.recordSeq;
  }

  /** Wall-clock time of the run (what Date.now would say), for the rules and the store. */
  wallMs(): number {
    return EPOCH_MS + this.nowMs;
  }

  log(line: () => string): void {
    if (this.trace !== null) this.trace.push(`[${(this.nowMs / 1000).toFixed(2)}s] ${line()}`);
  }

  /** Runs `fn` once `delayMs` of simulated time has passed (at the first step at or after it). */
  after(delayMs: number, fn: () => void): void {
    this.timers.push({ atMs: this.nowMs + Math.max(0, delayMs), seq: this.seq++, fn });
  }

  /** A promise resolved after `delayMs` of simulated time. */
  sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => { this.after(delayMs, resolve); });
  }

  /** Fires the timers that are due, in time order then creation order. */
  fireDue(): void {
    if (this.timers.length === 0) return;
    const due: Timer[] = [];
    const later: Timer[] = [];
    for (const t of this.timers) (t.atMs <= this.nowMs ? due : later).push(t);
    if (due.length === 0) return;
    this.timers = later;
    due.sort((a, b) => a.atMs - b.atMs || a.seq - b.seq);
    for (const t of due) t.fn();
  }
}

/** Lets every promise chain that can move, move: all microtasks run before a setImmediate callback. */
export function drain(): Promise<void> {
  return new Promise((resolve) => { setImmediate(resolve); });
}
