// The sitter's clock, behind an interface so that a simulation drives time.

export interface Clock {
  /** Wall-clock time in milliseconds since the epoch. */
  nowMs(): number;
}

export const systemClock: Clock = { nowMs: () => Date.now() };

/** Runs `fn` about every `ms` until the returned stop is called. */
export type Every = (ms: number, fn: () => void) => () => void;

/** One timer of its own per caller. */
export const timerEvery: Every = (ms, fn) => {
  const t = setInterval(fn, ms);
  return () => { clearInterval(t); };
};

/** One timer of its own per caller that does not keep the process alive. */
export const unrefTimerEvery: Every = (ms, fn) => {
  const t = setInterval(fn, ms);
  t.unref();
  return () => { clearInterval(t); };
};

/**
 * The sitter's periodic jobs run from the Raft node's tick (RaftNode.every) where it can keep their
 * period, so that they wake the process when the tick does and never on their own: on a small
 * machine every wake-up takes CPU and cache from PostgreSQL (issue #11). A period shorter than a
 * tick, or no such clock, gets a timer.
 */
export function everyFrom(shared: ((ms: number, fn: () => void) => (() => void) | null) | undefined): Every {
  if (shared === undefined) return timerEvery;
  return (ms, fn) => shared(ms, fn) ?? timerEvery(ms, fn);
}
