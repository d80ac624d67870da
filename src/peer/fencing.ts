// The fence before a generation change (safety review): initWal must bound every commit that the
// old generation acknowledged, but the health check's LSN is up to an interval old and the old
// path keeps acknowledging commits until the new state is applied. So cut the old path first
// (the sync detaches from its upstream; the primary stops acknowledging commits), read a fresh
// LSN, and decide again with it.
import type { Logger } from '../log.js';
import type { TimelineHistory } from '../model/index.js';
import type { WalPositions } from '../postgres/index.js';
import type { DecisionLog } from './decision-log.js';
import { decide, type Decision, type DecisionKind, type RulesInput } from './rules/index.js';

/** Decisions that change the generation and record initWal: they fence first. */
export const FENCED_KINDS: ReadonlySet<DecisionKind> = new Set<DecisionKind>(['takeover', 'promoteSync', 'replaceSync', 'promoteAsync', 'onwmUpgrade']);

/** What the fence does to this peer's PostgreSQL. */
export interface FencePostgres {
  /** A standby stops replicating from its upstream (it stays in recovery). */
  detachFromUpstream(): Promise<void>;
  /** A primary stops acknowledging commits. */
  fenceWrites(): Promise<void>;
  walPositions(): Promise<WalPositions>;
}

/** This peer's timeline history: what a new generation records with initWal, and the sync's takeover compares. */
export interface TimelineHistorySource {
  /** As of the last health check; null when unknown. */
  current(): TimelineHistory | null;
  /** Read for the positions just read (the fence's); null when it cannot be read. */
  read(positions: WalPositions): Promise<TimelineHistory | null>;
}

export interface FenceOptions {
  readonly postgres: FencePostgres;
  readonly history: TimelineHistorySource;
  /** The committed state and the active peers as they are now (after the fence). */
  readonly fresh: () => Pick<RulesInput, 'state' | 'version' | 'active' | 'tags'>;
  /** Lifts the fence at the next reconcile (the role did not change after all). */
  readonly invalidate: () => void;
  readonly retrySoon: () => void;
  readonly decisions: DecisionLog;
  readonly log: Logger;
}

/**
 * Fences for `d` and decides again with a fresh WAL position. Returns the decision to write, or
 * null when it is no longer the same (the fence is then undone by the next reconcile).
 */
export async function fenceAndDecideAgain(o: FenceOptions, d: Decision, input: RulesInput): Promise<Decision | null> {
  const asSync = d.kind === 'takeover' || d.kind === 'promoteSync';
  const before = input.pg.currentLsn;
  try {
    if (asSync) await o.postgres.detachFromUpstream();
    else await o.postgres.fenceWrites();
    const pos = await o.postgres.walPositions();
    const history = await o.history.read(pos);
    const fresh = decide({
      ...input,
      ...o.fresh(),
      pg: { ...input.pg, online: true, replayLsn: pos.replayLsn, currentLsn: pos.inRecovery ? (pos.receiveLsn ?? pos.replayLsn) : pos.currentLsn, history },
    });
    if (fresh.kind !== d.kind || fresh.write === null) {
      o.log.warn({ decision: `${d.kind}-abandoned`, now: fresh.kind, reason: fresh.reason },
        `fenced for ${d.kind}, but with a fresh WAL position the decision is ${fresh.kind}; lifting the fence`);
      o.invalidate();
      o.retrySoon();
      return null;
    }
    o.log.info({ decision: `${d.kind}-fenced`, lsnBefore: before, lsnFenced: fresh.write.newState.initWal, how: asSync ? 'detached from upstream' : 'commits stopped' },
      `fenced for ${d.kind} (${asSync ? 'detached from the upstream' : 'commits no longer acknowledged'}); initWal ${fresh.write.newState.initWal}`);
    o.decisions.rules(fresh, input.nowMs);
    return fresh;
  } catch (err) {
    o.invalidate();
    o.retrySoon();
    throw err;
  }
}
