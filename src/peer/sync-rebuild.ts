// The last check before a sync's own rebuild (the reconciler runs it right before the copy):
// once cut off from its upstream, the sync's WAL positions bound everything it holds, and the
// reason for the rebuild is checked again against them.
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { lsnAtLeast } from '../model/index.js';
import type { LocalPostgres } from './local-postgres.js';
import { ownWalEnd, syncCannotTakeOver } from './rules/stream-watch.js';

/** What a sync's own rebuild was checked against (the generation and upstream of that check). */
export interface SyncRebuildRequest {
  readonly generation: number;
  readonly upstreamId: string;
  /** That generation's initWal: checked again against this peer's WAL once it is cut off from the upstream. */
  readonly initWal: string;
  /** Why (logged with the rebuild). */
  readonly reason: string;
  /**
   * Set when the sync is past initWal but its timeline history left its primary's before its WAL
   * ends (rules/stream-watch.ts syncDiverged): where the histories part. Checked again once this peer
   * is cut off from the upstream: the WAL it then holds must still reach past that point.
   */
  readonly forkLsn?: string;
  /**
   * Set when the sync is past initWal on its primary's timeline history but the primary is read-only,
   * waiting for it (rules/stream-watch.ts SYNC_OF_READ_ONLY_PRIMARY). Once cut off, this sync cannot
   * make the primary writable, so the check passes as it was made.
   */
  readonly primaryReadOnly?: true;
}

/** What the check does to this peer's PostgreSQL. */
export type SyncRebuildPostgres = Pick<LocalPostgres, 'running' | 'detachFromUpstream' | 'walPositions'>;

/**
 * The last check before a sync's own rebuild, with no race left: cut PostgreSQL off from its
 * upstream (no more WAL arrives, so nothing more can be acknowledged through it), then read its
 * WAL positions, which now bound everything it holds, and check them against initWal again
 * (rules/stream-watch.ts syncCannotTakeOver has the reasoning). Between the sitter's check and
 * this step the sync may have started streaming and passed initWal; it must then keep its data.
 */
export async function checkSyncRebuildCutOff(pg: SyncRebuildPostgres, req: SyncRebuildRequest, log: Logger): Promise<true | string> {
  if (!pg.running) return 'PostgreSQL is not running, so my WAL position cannot be checked';
  try {
    await pg.detachFromUpstream();
    const p = await pg.walPositions();
    let may = syncCannotTakeOver(req.initWal, { replayLsn: p.inRecovery ? p.replayLsn : null, receiveLsn: p.inRecovery ? p.receiveLsn : null });
    if (may !== true && req.forkLsn !== undefined) {
      const end = p.inRecovery ? ownWalEnd({ replayLsn: p.replayLsn, receiveLsn: p.receiveLsn }) : null;
      if (end !== null && !lsnAtLeast(req.forkLsn, end)) {
        log.info({ decision: 'sync-rebuild-checked', walEnd: end, forkLsn: req.forkLsn, reason: req.reason },
          `cut off from ${req.upstreamId}: I hold WAL up to ${end}, past ${req.forkLsn} where my timeline history leaves the primary's: that WAL was never acknowledged; rebuilding`);
        return true;
      }
      may = `${may}, and my WAL ends at ${end ?? 'an unknown position'}, not past ${req.forkLsn} where my timeline history leaves the primary's`;
    }
    if (may !== true && req.primaryReadOnly === true) {
      log.info({ decision: 'sync-rebuild-checked', replayLsn: p.replayLsn, receiveLsn: p.receiveLsn, initWal: req.initWal, reason: req.reason },
        `cut off from ${req.upstreamId}, which was read-only waiting for me: it cannot take a write through me now, and it holds every acknowledged write; rebuilding`);
      return true;
    }
    if (may === true) {
      log.info({ decision: 'sync-rebuild-checked', replayLsn: p.replayLsn, receiveLsn: p.receiveLsn, initWal: req.initWal, reason: req.reason },
        `cut off from ${req.upstreamId}: replayed ${p.replayLsn ?? '?'} and received ${p.receiveLsn ?? 'nothing'}, below initWal ${req.initWal}; rebuilding`);
    }
    return may;
  } catch (err) {
    return `the check before the rebuild failed: ${errorMessage(err)}`;
  }
}
