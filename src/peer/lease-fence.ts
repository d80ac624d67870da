// The primary's lease (DESIGN.md, "Liveness"): a primary that cannot renew its session fences
// itself before the session can expire on the Raft leader, so that no deposed primary serves a
// stale read or takes a write next to its successor.
//
// The lease runs from the moment this peer SENT the newest keepalive that a leader acknowledged
// after confirming its leadership with a quorum (store/raft-consensus.ts). No leader can expire
// the session sooner than sessionTimeoutMs after that moment on its own clock: the acknowledging
// leader noted the keepalive after it was sent, and any later leader was elected after the
// acknowledgement and gives every session a full sessionTimeoutMs of grace. Measured here with the
// monotonic clock, the lease ends sessionTimeoutMs × (1 − maxClockDrift) − margin after that send:
// the assumption is that no two peers' clocks run at rates more than maxClockDrift apart (1% by
// default, far above real quartz drift), and the margin covers the check's period and the fence
// itself. Pure: time is an argument.

/** Clocks of two peers run at rates at most this far apart (the documented assumption). */
export const LEASE_MAX_CLOCK_DRIFT = 0.01;

export interface LeaseVerdict {
  /** The primary must not serve. */
  readonly fenced: boolean;
  /** ms left on the lease (negative: past it); null when no keepalive was acknowledged yet. */
  readonly validForMs: number | null;
  readonly reason: string;
}

export class LeaseClock {
  readonly budgetMs: number;

  constructor(readonly sessionTimeoutMs: number, readonly marginMs = Math.max(100, Math.round(sessionTimeoutMs / 10)), readonly maxDrift = LEASE_MAX_CLOCK_DRIFT) {
    this.budgetMs = Math.floor(sessionTimeoutMs * (1 - maxDrift)) - marginMs;
    if (!(this.budgetMs > 0)) throw new RangeError(`sessionTimeoutMs ${sessionTimeoutMs} leaves no lease after the drift (${maxDrift}) and the margin (${marginMs} ms)`);
  }

  /**
   * The verdict at nowMs for a lease renewed at renewedAtMs (null: never). A peer that has had no
   * keepalive acknowledged since it started is not fenced: its session was just opened through the
   * log, which is itself a renewal, and its first keepalive follows within keepaliveIntervalMs.
   */
  verdict(nowMs: number, renewedAtMs: number | null): LeaseVerdict {
    if (renewedAtMs === null) return { fenced: false, validForMs: null, reason: 'no keepalive acknowledged yet' };
    const validForMs = Math.round(renewedAtMs + this.budgetMs - nowMs);
    return validForMs > 0
      ? { fenced: false, validForMs, reason: `lease valid for ${validForMs} ms` }
      : { fenced: true, validForMs, reason: `no keepalive acknowledged for ${Math.round(nowMs - renewedAtMs)} ms (lease ${this.budgetMs} ms: sessionTimeoutMs ${this.sessionTimeoutMs} less ${this.maxDrift * 100}% clock drift and a ${this.marginMs} ms margin)` };
  }
}
