// Notices a standby that cannot stream (a diverged timeline, WAL its upstream no longer has): its
// WAL receiver is not 'streaming' for a long time while its upstream's session is active. Nothing
// else would: PostgreSQL retries forever and the peer looks alive. An async then asks for its own
// rebuild (it is not in the write path); a sync only says so (a copy would stop the primary's
// commits; the operator decides). Pure: the time comes in with each observation.
import type { PeerId } from '../../store/types.js';
import type { PgRole } from './types.js';

export interface StreamObservation {
  readonly role: PgRole;
  readonly upstreamId: PeerId | null;
  /** The upstream's session is active (its sitter runs and its PostgreSQL is not hung). */
  readonly upstreamActive: boolean;
  /** pg_stat_wal_receiver.status is 'streaming'; null when unknown (PostgreSQL down, query failed). */
  readonly streaming: boolean | null;
  readonly nowMs: number;
}

export interface StreamVerdict {
  /** How long this standby has not streamed from an active upstream (0 when it streams). */
  readonly stalledForMs: number;
  /** 'rebuild' (an async), 'report' (a sync), or 'none'. Given once per stall limit. */
  readonly action: 'none' | 'report' | 'rebuild';
}

export class StreamWatch {
  private sinceMs: number | null = null;
  private key: string | null = null;

  constructor(private readonly stallLimitMs: number) {}

  observe(o: StreamObservation): StreamVerdict {
    const standby = o.role === 'sync' || o.role === 'async';
    const key = standby && o.upstreamId !== null ? `${o.role}:${o.upstreamId}` : null;
    // A new role or upstream starts a new clock; so do a streaming receiver, an upstream without a
    // session (its absence explains the stall), and an unknown status (no evidence either way).
    if (key === null || key !== this.key || o.streaming !== false || !o.upstreamActive) {
      this.key = key;
      this.sinceMs = key !== null && o.streaming === false && o.upstreamActive ? o.nowMs : null;
      return { stalledForMs: 0, action: 'none' };
    }
    this.sinceMs ??= o.nowMs;
    const stalledForMs = o.nowMs - this.sinceMs;
    if (stalledForMs < this.stallLimitMs) return { stalledForMs, action: 'none' };
    this.sinceMs = o.nowMs; // at most one verdict per stall limit
    return { stalledForMs, action: o.role === 'async' ? 'rebuild' : 'report' };
  }
}
