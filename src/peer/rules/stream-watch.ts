// Notices a standby that cannot stream (a diverged timeline, WAL its upstream no longer has): its
// WAL receiver is not 'streaming' for a long time while its upstream's session is active. Nothing
// else would: PostgreSQL retries forever and the peer looks alive. An async then asks for its own
// rebuild (it is not in the write path); a sync gets a 'report' verdict, and the sitter rebuilds it
// only when syncCannotTakeOver() says so (below). Pure: the time comes in with each observation.
import { compareLsn, describeHistory, historyFork, lsnAtLeast, type Lsn, type PeerId, type TimelineFork, type TimelineHistory } from '../../model/index.js';
import type { PgRole } from './types.js';

export interface StreamObservation {
  readonly role: PgRole;
  readonly upstreamId: PeerId | null;
  /** The upstream's session is active (its sitter runs and its PostgreSQL is not hung). */
  readonly upstreamActive: boolean;
  /** pg_stat_wal_receiver.status is 'streaming'; null when unknown (PostgreSQL down, query failed). */
  readonly streaming: boolean | null;
  /**
   * This standby's replayed position (null when unknown). A standby whose replay moves is not
   * stalled even without a WAL receiver: it is replaying WAL it already has (after a restart,
   * say), and a sync doing so may be about to pass initWal, so it must not be rebuilt.
   */
  readonly replayLsn?: string | null;
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
  private lastReplayLsn: string | null = null;

  constructor(private readonly stallLimitMs: number) {}

  observe(o: StreamObservation): StreamVerdict {
    const standby = o.role === 'sync' || o.role === 'async';
    const key = standby && o.upstreamId !== null ? `${o.role}:${o.upstreamId}` : null;
    // A new role or upstream starts a new clock; so do a streaming receiver, an upstream without a
    // session (its absence explains the stall), an unknown status (no evidence either way), and
    // a replay position that moved since the last observation (it replays WAL it already has).
    const replay = o.replayLsn ?? null;
    const replayMoved = replay !== null && this.lastReplayLsn !== null && replay !== this.lastReplayLsn;
    if (replay !== null) this.lastReplayLsn = replay;
    if (key === null || key !== this.key || o.streaming !== false || !o.upstreamActive || replayMoved) {
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

/** A standby's own WAL positions, read fresh from its PostgreSQL (pg_last_wal_replay_lsn / _receive_lsn). */
export interface OwnWal {
  readonly replayLsn: string | null;
  readonly receiveLsn: string | null;
  /**
   * The timeline it is on (a standby's received or checkpoint timeline) and that timeline's
   * history (its .history file); absent or null when unknown.
   */
  readonly history?: TimelineHistory | null;
}

/**
 * Whether a sync may copy its data afresh from the primary (a stalled sync's own rebuild, or an
 * operator's `manatee-adm rebuild` of the sync): true when neither its replayed nor its received
 * WAL reaches the state's initWal, else why not.
 *
 * Why that is safe: the takeover rule (rules/sync.ts) requires the sync to have replayed at least
 * initWal, so such a sync could not take over if the primary died — its data gives the shard no
 * failover ability that a fresh copy would lose. And its data holds no acknowledged write the
 * primary lacks: in this generation the primary's commits are acknowledged only once the sync has
 * flushed them, and every one of them lies past initWal (the primary's position when the
 * generation began), which this sync has not even received; before that, the primary is read-only
 * until the sync catches up. The received position counts too (not only the replayed one): WAL
 * that was flushed but not yet replayed past initWal could still be replayed locally and make the
 * sync eligible for a takeover, and then it must keep it. A sync at or past initWal keeps its data
 * whatever happens: it is the shard's only way to survive the primary's loss.
 */
export function syncCannotTakeOver(initWal: string, own: OwnWal): true | string {
  if (own.replayLsn === null) return 'my replay position is unknown (PostgreSQL is not in recovery or did not answer)';
  if (lsnAtLeast(own.replayLsn, initWal)) return `I have replayed ${own.replayLsn}, at or past initWal ${initWal}: I can take over if the primary fails, so my data stays`;
  if (own.receiveLsn !== null && lsnAtLeast(own.receiveLsn, initWal)) {
    return `I have received WAL up to ${own.receiveLsn}, at or past initWal ${initWal}: once replayed I can take over, so my data stays`;
  }
  return true;
}

/** What a standby that cannot stream does about it (after StreamWatch's verdict). */
export type StreamStallDecision =
  | { readonly kind: 'none' }
  /** An async rebuilds from its upstream (it is not in the write path). */
  | { readonly kind: 'streamStalledRebuild'; readonly reason: string }
  /** The sync rebuilds: it could not take over anyway (syncCannotTakeOver). */
  | {
      readonly kind: 'streamStalledRebuildSync'; readonly reason: string; readonly generation: number; readonly initWal: string;
      /**
       * Set when it rebuilds past initWal because it diverged (syncDiverged): where its history left
       * the primary's. Checked again once cut off: its WAL must still reach past it.
       */
      readonly forkLsn?: Lsn;
      /**
       * Set when it rebuilds past initWal because its primary is read-only, waiting for it
       * (syncOfReadOnlyPrimary). Cut off, it cannot make the primary writable any more.
       */
      readonly primaryReadOnly?: true;
    }
  /** The sync keeps its data: only an operator's action or a sync replacement helps. */
  | { readonly kind: 'streamStalled'; readonly reason: string };

export interface StreamStallInput {
  readonly verdict: StreamVerdict;
  /** The generation the evaluation's decision was made for. */
  readonly generation: number | null;
  /** The committed state now (its generation and initWal). */
  readonly state: { readonly generation: number; readonly initWal: string } | null;
  /** This sync's own WAL positions, read after a 'report' verdict (error: why they could not be read). */
  readonly own: (OwnWal & { readonly error: string | null }) | null;
  /** The timeline its primary writes, with that timeline's history (null: unknown; absent: not asked). */
  readonly primaryHistory?: TimelineHistory | null;
  /**
   * The primary is read-only (default_transaction_read_only on: it waits for this sync to catch
   * up before it accepts a write); null: unknown; absent: not asked.
   */
  readonly primaryReadOnly?: boolean | null;
}

/**
 * The sync rebuilds itself only when it could not take over anyway (its replayed and received
 * WAL are below this generation's initWal): then its data holds nothing the primary lacks, and
 * a fresh copy loses no failover ability (the reasoning is at syncCannotTakeOver). Without this,
 * a sync that needs WAL the primary no longer keeps (after a long one-node-write period, or an
 * async promoted to sync far behind) never streams, and the primary stays read-only forever.
 */
export function decideStreamStall(i: StreamStallInput): StreamStallDecision {
  if (i.verdict.action === 'none') return { kind: 'none' };
  if (i.verdict.action === 'rebuild') return { kind: 'streamStalledRebuild', reason: 'I am an async: rebuilding from it' };
  // initWal of the generation this decision was made for (a newer state is judged at its own verdict).
  const initWal = i.state !== null && i.generation !== null && i.state.generation === i.generation ? i.state.initWal : null;
  const own = i.own ?? { replayLsn: null, receiveLsn: null, error: 'not read' };
  const may = initWal === null
    ? `the committed state is not of generation ${i.generation ?? 'none'} any more`
    : own.error !== null ? `my WAL positions could not be read (${own.error})` : syncCannotTakeOver(initWal, own);
  if (may !== true && i.generation !== null && initWal !== null && own.error === null && i.primaryHistory !== undefined) {
    const fork = syncDiverged(own, i.primaryHistory);
    if (typeof fork === 'string') {
      if (i.primaryReadOnly !== true) return { kind: 'streamStalled', reason: `${may}, and ${fork}` };
      const reason = `my primary is read-only, waiting for me (and ${fork}): ${SYNC_OF_READ_ONLY_PRIMARY}`;
      return { kind: 'streamStalledRebuildSync', reason, generation: i.generation, initWal, primaryReadOnly: true };
    }
    const reason = `${describeDivergence(own, i.primaryHistory!, fork)}: my WAL past the fork was never acknowledged, and the primary has every acknowledged write`;
    return { kind: 'streamStalledRebuildSync', reason, generation: i.generation, initWal, forkLsn: fork.lsn };
  }
  if (may !== true || i.generation === null || initWal === null) {
    return { kind: 'streamStalled', reason: may === true ? 'the generation is unknown' : may };
  }
  const reason = `replayed ${own.replayLsn ?? '?'} (received ${own.receiveLsn ?? 'nothing'}) is below initWal ${initWal}: I could not take over, and the primary has every acknowledged write`;
  return { kind: 'streamStalledRebuildSync', reason, generation: i.generation, initWal };
}

/**
 * Why a stalled sync past initWal may rebuild when its primary is read-only, waiting for it, though
 * its timeline history is the primary's. Two peers that promoted to the same timeline at the same
 * position have the same history (the same number, begun at the same point) and still different
 * WAL past it: a sync rebuilt from one while the other took over never streams from it (whole-shard
 * simulator seeds 110731, 114052, 116027; pg_rewind too sees "the same timeline" there). Nothing
 * in the histories tells them apart, but no acknowledged write depends on the sync's copy: the
 * primary holds every acknowledged write (it took over with all of them, and acknowledges new ones
 * only once this sync has flushed them), and while it is read-only it takes none. The copy comes
 * from that primary, and the sync's old data stays until the copy is complete (basebackup into a
 * new directory, zfs receive beside the isolated dataset). Kept, the sync leaves the primary
 * read-only for good.
 */
export const SYNC_OF_READ_ONLY_PRIMARY = 'it has every acknowledged write and takes none until I stream, so my copy holds nothing it lacks';

/** The furthest WAL position this standby holds (received or replayed), null when both are unknown. */
export function ownWalEnd(own: OwnWal): Lsn | null {
  const r = own.receiveLsn;
  const p = own.replayLsn;
  if (r === null) return p;
  if (p === null) return r;
  return compareLsn(r, p) >= 0 ? r : p;
}

/**
 * Whether a sync that cannot stream from its primary, and that syncCannotTakeOver() would keep
 * (it replayed past initWal), has diverged from the primary: where its history left the
 * primary's when it holds WAL past that point, else why not.
 *
 * The histories, not the timeline numbers, decide (as pg_rewind's do). A sync on an older timeline
 * that holds WAL past the primary's switch point diverged; so does one on the SAME timeline number
 * whose history switched elsewhere: a sync that never streamed from the current primary can take
 * over when that primary fails and promote onto the number the primary had already used (it picks
 * the newest timeline whose history it has, plus one), and a peer rebuilt from the other fork then
 * stalls as its sync for good (whole-shard simulator seeds 50019, and 1930 with --operator).
 *
 * Why that allows its rebuild. A standby at or behind the fork point follows the primary's timeline
 * and streams; one with WAL past it holds WAL of another history: of a deposed primary, received
 * after the takeover (it followed that primary while its sitter could not act) or copied from it (a
 * rebuild from the primary, ahead of the sync it then replicated from), or of a primary that never
 * turned writable. No commit in it was acknowledged: every acknowledged commit is on the primary,
 * which took over with all of them and acknowledged later ones only through its sync, and this sync
 * has not streamed from it, so the primary took no write in this generation. Keeping such a sync
 * keeps the primary read-only for good (seeds 41 and 681 too); a rebuild loses nothing that was
 * acknowledged.
 */
export function syncDiverged(own: OwnWal, primary: TimelineHistory | null): TimelineFork | string {
  const mine = own.history ?? null;
  if (mine === null || primary === null) return 'the timeline histories are unknown';
  const fork = historyFork(mine, primary);
  if (fork === null) return `my ${describeHistory(mine)} is the primary's`;
  const end = ownWalEnd(own);
  if (end === null) return 'my WAL position is unknown';
  if (compareLsn(end, fork.lsn) <= 0) {
    return `my WAL ends at ${end}, not past ${fork.lsn} where my ${describeHistory(mine)} leaves the primary's ${describeHistory(primary)}`;
  }
  return fork;
}

/** "I am on timeline 3 (...), and the primary on timeline 3 (...): they part at X on timeline 2, and I hold WAL up to Y". */
export function describeDivergence(own: OwnWal, primary: TimelineHistory, fork: TimelineFork): string {
  const mine = own.history ?? null;
  return `I am on ${mine === null ? 'an unknown timeline' : describeHistory(mine)} and the primary on ${describeHistory(primary)}: ` +
    `the histories part at ${fork.lsn} on timeline ${fork.timeline}, and I hold WAL up to ${ownWalEnd(own) ?? '?'}`;
}
