// Whether this peer's session stays open (DESIGN.md, "Where this goes beyond Joyent's Manatee"):
// a peer whose PostgreSQL has been unhealthy for pgUnhealthyTimeoutMs while its role needs it
// closes its session, so that a hung primary fails over; it reopens once healthy again. Pure:
// the sitter's SessionKeeper (src/peer/sessions.ts) measures, asks, and acts.

export interface SessionInput {
  /** This peer's session exists in the store. */
  readonly open: boolean;
  /** The session was closed by this rule (not yet reopened). */
  readonly closedForHealth: boolean;
  /** How long PostgreSQL has been unhealthy while its role needs it to run (0: healthy, or not needed). */
  readonly unhealthyForMs: number;
  readonly unhealthyTimeoutMs: number;
}

export type SessionDecisionKind = 'closeSession' | 'openSession' | 'keepSession' | 'waitForHealth';

export interface SessionDecision {
  readonly kind: SessionDecisionKind;
  readonly reason: string;
}

export function decideSession(i: SessionInput): SessionDecision {
  if (i.open && i.unhealthyForMs > i.unhealthyTimeoutMs) {
    return { kind: 'closeSession', reason: `PostgreSQL unhealthy for ${i.unhealthyForMs} ms (limit ${i.unhealthyTimeoutMs} ms)` };
  }
  if (i.open) return { kind: 'keepSession', reason: 'this peer can serve' };
  // Closed for health: not reopened while PostgreSQL is still unhealthy (no flapping).
  if (i.closedForHealth && i.unhealthyForMs > 0) {
    return { kind: 'waitForHealth', reason: `the session was closed for PostgreSQL's health, which is still bad (unhealthy for ${i.unhealthyForMs} ms)` };
  }
  return { kind: 'openSession', reason: 'this peer can serve' };
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
