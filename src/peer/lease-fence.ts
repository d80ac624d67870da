// The primary's lease (DESIGN.md, "Liveness"): a primary that cannot renew its session fences
// itself before the session can expire on the Raft leader, so that no deposed primary serves a
// stale read or takes a write next to its successor.
//
// The lease runs from the moment this peer SENT the newest keepalive that a leader acknowledged
// after confirming its leadership with a quorum (store/raft-consensus.ts), or the newest open of its
// own session that committed (store/store.ts leaseRenewedAtMs): a (re)started primary's lease runs
// from its open until its first keepalive is acknowledged. No leader can expire the session sooner
// than sessionTimeoutMs after that moment on its own clock: the acknowledging leader noted the
// keepalive after it was sent, any later leader was elected after the acknowledgement and gives
// every session a full sessionTimeoutMs of grace, and every node starts counting a session's
// silence when it applies its open, after the open was sent. Measured here with the
// monotonic clock, the lease ends sessionTimeoutMs × (1 − maxClockDrift) − margin after that send:
// the assumption is that no two peers' clocks run at rates more than maxClockDrift apart (1% by
// default, far above real quartz drift), and the margin covers the timer's lateness and the fence
// itself. LeaseClock is pure (time is an argument); PrimaryLeaseFence applies it with one timer at the lease's end.
import type { Logger } from '../log.js';
import { ManateeError } from '../errors.js';

/** Clocks of two peers run at rates at most this far apart (the documented assumption). */
export const LEASE_MAX_CLOCK_DRIFT = 0.01;

export interface LeaseVerdict {
  /** The primary must not serve. */
  readonly fenced: boolean;
  /** ms left on the lease (negative: past it); null when nothing renewed it yet (no open committed, no keepalive acknowledged). */
  readonly validForMs: number | null;
  readonly reason: string;
}

export class LeaseClock {
  readonly budgetMs: number;

  constructor(readonly sessionTimeoutMs: number, readonly marginMs = Math.max(100, Math.round(sessionTimeoutMs / 10)), readonly maxDrift = LEASE_MAX_CLOCK_DRIFT) {
    this.budgetMs = Math.floor(sessionTimeoutMs * (1 - maxDrift)) - marginMs;
    if (!(this.budgetMs > 0)) throw new ManateeError('MANATEE_ERR_INVALID_ARGUMENT', `sessionTimeoutMs ${sessionTimeoutMs} leaves no lease after the drift (${maxDrift}) and the margin (${marginMs} ms)`);
  }

  /**
   * The verdict at nowMs for a lease renewed at renewedAtMs (null: never, since this process
   * started: its session's open has not committed yet, and no keepalive was acknowledged). Renewed
   * means: this peer sent a keepalive that was acknowledged, or an open of its session that committed.
   */
  verdict(nowMs: number, renewedAtMs: number | null): LeaseVerdict {
    if (renewedAtMs === null) return { fenced: false, validForMs: null, reason: 'not renewed yet (no session open committed, no keepalive acknowledged)' };
    const validForMs = Math.round(renewedAtMs + this.budgetMs - nowMs);
    return validForMs > 0
      ? { fenced: false, validForMs, reason: `lease valid for ${validForMs} ms` }
      : { fenced: true, validForMs, reason: `lease not renewed for ${Math.round(nowMs - renewedAtMs)} ms (no keepalive acknowledged nor session open committed since; lease ${this.budgetMs} ms: sessionTimeoutMs ${this.sessionTimeoutMs} less ${this.maxDrift * 100}% clock drift and a ${this.marginMs} ms margin)` };
  }
}

export interface PrimaryLeaseFenceOptions {
  readonly leaseClock: LeaseClock;
  /** Monotonic now (performance.now()). */
  readonly nowMs: () => number;
  /** When this peer sent its newest acknowledged keepalive or committed session open (ClusterStore.leaseRenewedAtMs). */
  readonly renewedAtMs: () => number | null;
  /** This peer is the primary in the committed state. */
  readonly isPrimary: () => boolean;
  /**
   * Calls `changed` each time the lease is renewed (a keepalive acknowledged, an open of its session
   * committed) or the committed state changes (either can move the lease's end or make this peer
   * the primary); returns the unsubscribe. Absent where
   * a caller drives check() on its own timer (the simulator).
   */
  readonly subscribe?: (changed: () => void) => () => void;
  /** Stops PostgreSQL at once (immediate shutdown). */
  readonly stopPostgres: () => Promise<void>;
  /** The reconciler must render PostgreSQL again (it was stopped behind its back). */
  readonly invalidate: () => void;
  /** Evaluate again (the fence lifted). */
  readonly kick: () => void;
  readonly log: Logger;
}

/**
 * The job that applies the verdict. It does not poll: on a primary one timer is armed for the
 * instant the lease ends, and moved at each renewal (ClusterStore.onLeaseRenewed), so that a healthy
 * primary's timer never fires (a sitter's wake-ups take CPU and cache from PostgreSQL on a small
 * machine, issue #11); a peer that is not the primary, or has had no keepalive acknowledged yet,
 * has no timer at all. When the timer fires on a primary whose lease ran out, it fences itself at
 * once (its status says fenced, so GET /primary answers 503 from this moment, and PostgreSQL is
 * stopped with an immediate shutdown, so that it serves no read and takes no write). The fence
 * lifts as soon as a keepalive (or an open) sent after it is acknowledged (committed); until then the evaluation leaves a
 * primary's PostgreSQL stopped (holdsPrimary), and then starts it again.
 */
export class PrimaryLeaseFence {
  private fencedAtMs: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private running = false;

  constructor(private readonly o: PrimaryLeaseFenceOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = this.o.subscribe?.(() => { this.update(); }) ?? null;
    this.update();
  }

  stop(): void {
    this.running = false;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.disarm();
  }

  /** A keepalive was acknowledged or the committed state changed: act on the lease now, then time its end. */
  update(): void {
    if (!this.running) return;
    this.check();
    this.arm();
  }

  /** Whether a timer is armed for the lease's end (for tests: never on a peer that is not the primary). */
  get armed(): boolean {
    return this.timer !== null;
  }

  private disarm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * One timer at the lease's end: renewedAt + budget on the monotonic clock. Node may run it a
   * little early (its timers count from the event loop's cached time): check() then finds the lease
   * still valid, and the timer is armed again for what is left, so the fence never comes late.
   */
  private arm(): void {
    this.disarm();
    // Fenced: what lifts it is an acknowledgement, which calls update(); not the primary: no lease to keep.
    if (this.fencedAtMs !== null || !this.o.isPrimary()) return;
    const renewedAtMs = this.o.renewedAtMs();
    if (renewedAtMs === null) return;
    const delayMs = Math.max(0, Math.ceil(renewedAtMs + this.o.leaseClock.budgetMs - this.o.nowMs()));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.update();
    }, delayMs);
  }

  /** GET /status's `lease` (and through it the health checks). */
  status(): LeaseVerdict {
    const v = this.o.leaseClock.verdict(this.o.nowMs(), this.o.renewedAtMs());
    return this.fencedAtMs !== null ? { ...v, fenced: true } : v;
  }

  /**
   * The fence has stopped PostgreSQL and keeps it stopped until a keepalive sent after it is
   * acknowledged: PostgreSQL is down on purpose, so its health does not count (rules/session.ts pgShouldRun).
   */
  get holding(): boolean {
    return this.fencedAtMs !== null;
  }

  /** For the evaluation: true while a primary must keep its PostgreSQL stopped. A role change ends the fence. */
  holdsPrimary(role: string): boolean {
    if (this.fencedAtMs === null) return false;
    if (role === 'primary') return true;
    this.o.log.info({ decision: 'lease-fence-moot', role }, `no longer the primary (${role}): the lease fence gives way to the role's own handling`);
    this.fencedAtMs = null;
    return false;
  }

  check(): void {
    const nowMs = this.o.nowMs();
    const renewedAtMs = this.o.renewedAtMs();
    if (this.fencedAtMs !== null) {
      if (renewedAtMs !== null && renewedAtMs > this.fencedAtMs) {
        this.o.log.info({ decision: 'lease-renewed', fencedForMs: Math.round(nowMs - this.fencedAtMs) }, 'lease renewed: a keepalive or session open sent after the fence was acknowledged or committed; lifting the fence');
        this.fencedAtMs = null;
        this.o.kick();
      }
      return;
    }
    if (!this.o.isPrimary()) return;
    const v = this.o.leaseClock.verdict(nowMs, renewedAtMs);
    if (!v.fenced) return;
    this.fencedAtMs = nowMs;
    this.o.log.warn({ decision: 'lease-fence', reason: v.reason, validForMs: v.validForMs }, `fencing this primary: ${v.reason}; /primary answers 503 and PostgreSQL stops until the lease is renewed`);
    this.o.invalidate();
    void this.o.stopPostgres().catch((err: unknown) => {
      this.o.log.error({ err: err instanceof Error ? err.message : String(err) }, 'stopping PostgreSQL for the lease fence failed');
    });
  }
}
