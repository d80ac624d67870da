// The fence before a generation change (safety review): initWal must bound every commit that the
// old generation acknowledged, but the health check's LSN is up to an interval old and the old
// path keeps acknowledging commits until the new state is applied. So cut the old path first
// (the sync detaches from its upstream; the primary stops acknowledging commits), read a fresh
// LSN, and decide again with it.
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { ClusterState, TimelineHistory } from '../model/index.js';
import type { WalPositions } from '../postgres/index.js';
import type { DecisionLog } from './decision-log.js';
import { decide, type Decision, type DecisionKind, type RulesInput, type StateWrite } from './rules/index.js';

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

/**
 * What a failed write of the cluster state says about its fate: `refused` by the store (a lost
 * compare-and-set, an invalid state: the state machine's answer, or a command refused before it
 * was proposed), `notProposed` (Raft refused it before appending it: no leader known, dropped),
 * or `unknown` (a timeout, a leader change: the entry may sit in a log and commit later, after
 * this peer acted as if it had failed).
 */
export function writeFailure(err: unknown): 'refused' | 'notProposed' | 'unknown' {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return 'unknown';
  // A stopped store answers nothing more: the sitter is stopping, and the fence stays as it stops.
  if (code === 'MANATEE_ERR_STORE_STOPPED') return 'unknown';
  if (code.startsWith('MANATEE_ERR_STORE_')) return 'refused';
  if (code === 'MANATEE_ERR_RAFT_NO_LEADER' || code === 'MANATEE_ERR_RAFT_PROPOSAL_DROPPED') return 'notProposed';
  return 'unknown';
}

/** A fenced write whose proposal failed without a definite answer. */
export interface UnresolvedWrite {
  readonly kind: DecisionKind;
  readonly write: StateWrite;
}

export interface ResolveStore {
  getState(): { readonly state: ClusterState | null; readonly version: number };
  putState(state: ClusterState, expectVersion: number, summary?: string): Promise<{ version: number }>;
}

/**
 * How an unresolved write ended: `committed`, `superseded` (it can no longer commit), `settled`
 * (the state moved on by more than one write: one way or the other), or still `unknown`; and a
 * sentence saying so, for the log.
 */
export interface WriteResolution {
  readonly resolution: 'committed' | 'superseded' | 'settled' | 'unknown';
  readonly message: string;
}

/**
 * Settles a fenced write whose outcome is unknown (its proposal timed out, say). Until it is
 * settled the fence holds (the sync stays detached, the primary acknowledges nothing), because
 * the write may still commit, and a commit acknowledged on the old path meanwhile would be one
 * that the new generation's initWal does not bound (whole-shard simulator seed 19644 with
 * --operator: c's takeover timed out, c attached to b again as its sync, b acknowledged write 133,
 * then c's takeover committed without it). It is settled once the store's version has moved past
 * the one it was based on (the compare-and-set then applied, or never can); until then the same
 * write is proposed again: that changes nothing about what can happen (the first proposal may
 * commit anyway), and its answer settles the question.
 */
export async function resolveUnknownWrite(store: ResolveStore, u: UnresolvedWrite): Promise<WriteResolution> {
  const settled = settledByVersion(store, u);
  if (settled !== null) return settled;
  const target = u.write.newState;
  try {
    await store.putState(target, u.write.expectVersion, u.write.summary);
  } catch (err) {
    // An answer means the store applied everything before it: the first proposal too, if it committed.
    const after = settledByVersion(store, u);
    if (after !== null) return after;
    if (writeFailure(err) === 'refused') {
      // The same write on the same version refused (an invalid state): the first is refused too.
      return { resolution: 'superseded', message: `the ${u.kind} write of generation ${target.generation}, whose outcome was unknown, was refused when proposed again (${errorMessage(err)}); lifting the fence` };
    }
    return { resolution: 'unknown', message: `the ${u.kind} write of generation ${target.generation} is still unsettled (${errorMessage(err)}); keeping the fence` };
  }
  return { resolution: 'committed', message: `the ${u.kind} write of generation ${target.generation}, whose outcome was unknown, committed when proposed again: ${u.write.summary}` };
}

/**
 * Settled when the store's version moved past the write's base: committed if the next version is
 * its state, superseded if another, and simply settled when more writes followed.
 */
function settledByVersion(store: ResolveStore, u: UnresolvedWrite): WriteResolution | null {
  const { state, version } = store.getState();
  const base = u.write.expectVersion;
  const target = u.write.newState;
  if (version <= base) return null;
  let resolution: WriteResolution['resolution'] = 'settled';
  if (version === base + 1) {
    const ours = state !== null && state.generation === target.generation && state.primary.id === target.primary.id && state.initWal === target.initWal;
    resolution = ours ? 'committed' : 'superseded';
  }
  const what = `the ${u.kind} write of generation ${target.generation}, whose outcome was unknown,`;
  const now = `version ${version} (generation ${state?.generation ?? '-'})`;
  return {
    resolution,
    message: resolution === 'committed' ? `${what} committed: ${now}`
      : resolution === 'superseded' ? `${what} can no longer commit: another write made ${now} from version ${base}; the fence gives way to the role in it`
        : `${what} is settled: the state is at ${now}, more than one write past version ${base}; the fence gives way to the role in it`,
  };
}
