// The primary's WAL position as a standby's API knows it, for `?lag=<bytes>` on the health checks.
//
// Patroni measures a replica's lag from the *leader's* last known WAL position (published in its
// DCS), not from what the replica itself received: a standby whose WAL receiver stalled or lost
// its connection has nothing left to replay, and would look caught up by its own numbers. Here
// the position is asked from the primary's sitter (GET /status, the same fetch GET /shard uses)
// over HTTP, never through replication, so that a stalled standby cannot read an old value and
// think it is fine. Answers are kept for `freshMs` (a load balancer may check every 100 ms from
// several hosts: at most one request a second reaches the primary), failures too (a dead primary
// costs at most one `timeoutMs` wait a second). When the primary cannot be asked, the last value
// read is kept with its age; when none was ever read, the position is unknown. The health checks
// use a kept value only while it is recent (PRIMARY_POSITION_MAX_AGE_MS in routes/health.ts):
// a standby cut off from the primary would otherwise measure itself forever against the position
// of the moment it was cut off, and look caught up.
import type { SitterStatus, Lsn, PeerInfo } from '../model/index.js';
import { lsnDiffBytes } from './shard.js';
import { errorMessage } from '../errors.js';

/** What the health checks know of the primary's WAL position. */
export interface PrimaryPosition {
  readonly primaryId: string;
  /** The primary's current WAL position (pg_current_wal_lsn()) when last read, or null when never read. */
  readonly lsn: Lsn | null;
  /** How long ago `lsn` was read from the primary; null when never read. */
  readonly ageMs: number | null;
  /** Why the latest ask failed (the value in use is then older), or null when it succeeded. */
  readonly error: string | null;
}

export interface PrimaryPositionOptions {
  /** `peerId`: the peer asked, whose certificate its API must show (with TLS). */
  readonly fetchStatus: (apiUrl: string, timeoutMs: number, peerId?: string) => Promise<SitterStatus>;
  /** Deadline of one ask: short, because a load balancer's check waits for it. */
  readonly timeoutMs: number;
  /** An answer (or a failure) is reused this long before the primary is asked again. */
  readonly freshMs: number;
  readonly nowMs?: () => number;
}

interface Entry {
  readonly primary: PeerInfo;
  lsn: Lsn | null;
  readAtMs: number | null;
  error: string | null;
  askedAtMs: number | null;
  inflight: Promise<void> | null;
}

/** The primary's position in an answer of its /status, or why the answer has none. */
export function positionIn(primary: PeerInfo, s: SitterStatus): { lsn: Lsn } | { error: string } {
  if (s.peer.id !== primary.id) return { error: `${primary.apiUrl} answered as ${s.peer.id}, not ${primary.id}` };
  if (s.postgres.inRecovery !== false) return { error: `${primary.id}'s PostgreSQL is not a running primary (${s.postgres.error ?? (s.postgres.inRecovery === true ? 'in recovery' : 'state unknown')})` };
  const lsn = s.postgres.currentLsn;
  // lsnDiffBytes(x, x) is null exactly when x does not parse as an LSN.
  if (lsn === null || lsnDiffBytes(lsn, lsn) === null) return { error: `${primary.id} reported no WAL position` };
  return { lsn };
}

/**
 * One entry, for the primary of the committed state: a new primary starts from nothing (its
 * predecessor's position says nothing about what the new one wrote since).
 */
export class PrimaryPositionCache {
  private entry: Entry | null = null;
  private readonly now: () => number;

  constructor(private readonly opts: PrimaryPositionOptions) {
    this.now = opts.nowMs ?? Date.now;
  }

  /**
   * The primary's position; asks the primary first when the last ask is older than freshMs.
   * `wait`: wait for that ask (a check with a byte limit); otherwise answer with what is known
   * and let the ask finish in the background (the body's lagBytes of a check without a limit).
   */
  async get(primary: PeerInfo, wait: boolean): Promise<PrimaryPosition> {
    let e = this.entry;
    if (e?.primary.id !== primary.id || e.primary.apiUrl !== primary.apiUrl) {
      e = { primary, lsn: null, readAtMs: null, error: null, askedAtMs: null, inflight: null };
      this.entry = e;
    }
    const stale = e.askedAtMs === null || this.now() - e.askedAtMs >= this.opts.freshMs;
    if (stale && e.inflight === null) e.inflight = this.ask(e);
    if (wait && e.inflight !== null) await e.inflight;
    const nowMs = this.now();
    const error = e.askedAtMs === null ? 'not asked yet' : e.error;
    return { primaryId: primary.id, lsn: e.lsn, ageMs: e.readAtMs === null ? null : Math.max(0, nowMs - e.readAtMs), error };
  }

  private async ask(e: Entry): Promise<void> {
    const startMs = this.now();
    try {
      const found = positionIn(e.primary, await this.opts.fetchStatus(e.primary.apiUrl, this.opts.timeoutMs, e.primary.id));
      if ('lsn' in found) {
        e.lsn = found.lsn;
        e.readAtMs = startMs;
        e.error = null;
      } else {
        e.error = found.error;
      }
    } catch (err) {
      e.error = errorMessage(err);
    } finally {
      e.askedAtMs = this.now();
      e.inflight = null;
    }
  }
}
