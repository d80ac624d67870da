// Whether this peer's session stays open (DESIGN.md, "Where this goes beyond Joyent's Manatee"):
// a peer whose PostgreSQL has been unhealthy for pgUnhealthyTimeoutMs while its role needs it
// closes its session, so that a hung primary fails over; it reopens once healthy again. A primary
// that closed it gives its sync that long again to take over before it reopens; then, still the
// primary, it reopens, renews its lease, and restarts PostgreSQL (nobody else can make the shard
// writable). Pure: the sitter's SessionKeeper (src/peer/sessions.ts) measures, asks, and acts.
import type { PgRole } from './types.js';

export interface SessionInput {
  /** This peer's session exists in the store. */
  readonly open: boolean;
  /** The session was closed by this rule (not yet reopened). */
  readonly closedForHealth: boolean;
  /** How long PostgreSQL has been unhealthy while its role needs it to run (0: healthy, or not needed). */
  readonly unhealthyForMs: number;
  readonly unhealthyTimeoutMs: number;
  /**
   * How long ago this peer closed its session for health while it was the primary (null or absent:
   * it did not). It reopens no sooner than unhealthyTimeoutMs after the close: the sync's window
   * to take over.
   */
  readonly closedAsPrimaryForMs?: number | null;
  /** This peer is the primary and its data is gone (INITDB_REFUSED): only the sync can serve, so it stays closed. */
  readonly lostDataAsPrimary?: boolean;
}

export type SessionDecisionKind = 'closeSession' | 'openSession' | 'keepSession' | 'waitForHealth' | 'waitForTakeover';

export interface SessionDecision {
  readonly kind: SessionDecisionKind;
  readonly reason: string;
}

export function decideSession(i: SessionInput): SessionDecision {
  if (i.open && i.unhealthyForMs > i.unhealthyTimeoutMs) {
    return { kind: 'closeSession', reason: `PostgreSQL unhealthy for ${i.unhealthyForMs} ms (limit ${i.unhealthyTimeoutMs} ms)` };
  }
  if (i.open) return { kind: 'keepSession', reason: 'this peer can serve' };
  if (i.lostDataAsPrimary === true) {
    return { kind: 'waitForTakeover', reason: 'I am the primary but my data is gone; the session stays closed so that the sync takes over' };
  }
  // Closed for health: not reopened while PostgreSQL is still unhealthy (no flapping).
  if (i.closedForHealth && i.unhealthyForMs > 0) {
    return { kind: 'waitForHealth', reason: `the session was closed for PostgreSQL's health, which is still bad (unhealthy for ${i.unhealthyForMs} ms)` };
  }
  const closedMs = i.closedAsPrimaryForMs ?? null;
  if (i.closedForHealth && closedMs !== null) {
    if (closedMs < i.unhealthyTimeoutMs) {
      return {
        kind: 'waitForTakeover',
        reason: `I closed my session as the primary ${closedMs} ms ago for PostgreSQL's health; the sync may take over for ${i.unhealthyTimeoutMs - closedMs} ms more before I reopen it`,
      };
    }
    return {
      kind: 'openSession',
      reason: `I closed my session as the primary ${closedMs} ms ago for PostgreSQL's health, and no peer took over within ${i.unhealthyTimeoutMs} ms; reopening it to renew my lease and restart PostgreSQL`,
    };
  }
  return { kind: 'openSession', reason: 'this peer can serve' };
}

/**
 * Whether PostgreSQL's health counts towards closing the session: the role needs it to run
 * (primary, sync, async), and nothing of this sitter's own keeps it down: not a rebuild (which
 * stops it), not the primary's lease fence (which stops it until a keepalive is acknowledged).
 * Counting the fence, a loaded primary that fenced itself again and again closed its session after
 * pgUnhealthyTimeoutMs; with no session it sent no keepalive, so the fence never lifted and
 * PostgreSQL never restarted, while the sync, with no async to become its sync, could not take
 * over: no writes until an operator stepped in.
 */
export function pgShouldRun(i: { readonly role: PgRole | undefined; readonly rebuilding: boolean; readonly leaseFenced: boolean }): boolean {
  if (i.rebuilding) return false;
  if (i.role === 'primary') return !i.leaseFenced;
  return i.role === 'sync' || i.role === 'async';
}

/**
 * Since when PostgreSQL counts as unhealthy (null: it does not), given the previous value. The
 * clock starts when PostgreSQL should run and is not healthy, and never before `notBeforeMs`: the
 * end of this peer's last restore. A restore blocks the sitter's evaluations, so without that floor
 * a sync that waited for its source and then copied for seconds (a loaded first setup) reached the
 * unhealthy timeout while PostgreSQL was still starting on its fresh copy, closed its session, and
 * made the primary declare a new generation (chain test, setup).
 */
export function unhealthySince(i: { readonly sinceMs: number | null; readonly nowMs: number; readonly shouldRun: boolean; readonly healthy: boolean; readonly notBeforeMs: number }): number | null {
  if (!i.shouldRun || i.healthy) return null;
  return Math.min(i.nowMs, Math.max(i.sinceMs ?? i.nowMs, i.notBeforeMs));
}
