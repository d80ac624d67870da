// Failed admin-token attempts, counted per client address: past `failuresMax` within `windowMs`,
// that address gets 429 (with Retry-After) on every admin route until its oldest failure in the
// window is older than the window, without its token being looked at, so a guesser gains nothing
// from going on. Everything is bounded: at most failuresMax timestamps per address and
// addressesMax addresses (the oldest tracked address is forgotten first).
import { ManateeError } from '../errors.js';
export interface AuthFailureLimits {
  readonly failuresMax: number;
  readonly windowMs: number;
  readonly addressesMax: number;
}

export class AuthFailureLimiter {
  /** address → times of its recent failures, oldest first (at most failuresMax). */
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly limits: AuthFailureLimits,
    private readonly now: () => number = () => Date.now(),
  ) {
    if (limits.failuresMax < 1 || limits.windowMs < 1 || limits.addressesMax < 1) throw new ManateeError('MANATEE_ERR_INVALID_ARGUMENT', 'AuthFailureLimiter: limits must be positive');
  }

  private recent(address: string): number[] {
    const list = this.failures.get(address);
    if (list === undefined) return [];
    const since = this.now() - this.limits.windowMs;
    while (list.length > 0 && list[0]! <= since) list.shift();
    if (list.length === 0) this.failures.delete(address);
    return list;
  }

  /** How long `address` must wait before its next attempt is looked at; 0 when it may try now. */
  blockedForMs(address: string): number {
    const list = this.recent(address);
    if (list.length < this.limits.failuresMax) return 0;
    return Math.max(1, list[0]! + this.limits.windowMs - this.now());
  }

  recordFailure(address: string): void {
    const list = this.recent(address);
    list.push(this.now());
    if (list.length > this.limits.failuresMax) list.shift();
    // Re-inserted last, so that the map's first key is the address that failed longest ago.
    this.failures.delete(address);
    this.failures.set(address, list);
    while (this.failures.size > this.limits.addressesMax) {
      const oldest = this.failures.keys().next().value;
      if (oldest === undefined) break;
      this.failures.delete(oldest);
    }
  }

  /** Addresses with failures in the window (for tests and /status). */
  get trackedAddresses(): number {
    return this.failures.size;
  }
}
