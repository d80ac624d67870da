// Operators' changes to the cluster state (DESIGN.md, rule 5): freeze, unfreeze, promote,
// clear-promote, reap and one-node-write mode, after Joyent's manatee-adm (lib/adm.js).
//
// Pure functions: the current state (and the time, where it matters) in, the new state and a
// one-line summary for the history out, or an AdminError whose stable code names the problem.
// None of them changes the generation: an operator never moves the primary or the sync by
// writing the state. A planned switchover only *asks* for one (state.promote); the primary or
// the sync acts on it under Manatee's rules, at generation+1.
import { ManateeError } from '../errors.js';
import type { ClusterState, PeerId, PromoteRequest, ScheduledRestart } from '../model/index.js';
import { syncCannotTakeOver, type OwnWal } from './rules/stream-watch.js';

export type { OwnWal } from './rules/stream-watch.js';

export type AdminErrorCode =
  | 'MANATEE_ERR_NO_STATE'
  | 'MANATEE_ERR_INVALID_ARGUMENT'
  | 'MANATEE_ERR_FROZEN'
  | 'MANATEE_ERR_ALREADY_FROZEN'
  | 'MANATEE_ERR_NOT_FROZEN'
  | 'MANATEE_ERR_PEER_NOT_FOUND'
  | 'MANATEE_ERR_BAD_PROMOTE'
  | 'MANATEE_ERR_PROMOTE_PENDING'
  | 'MANATEE_ERR_NO_PROMOTE'
  | 'MANATEE_ERR_PEER_IN_CHAIN'
  | 'MANATEE_ERR_PEER_ACTIVE'
  | 'MANATEE_ERR_ONWM_UNCHANGED'
  | 'MANATEE_ERR_BAD_ONWM'
  | 'MANATEE_ERR_BAD_REBUILD'
  | 'MANATEE_ERR_RESTART_SCHEDULED'
  | 'MANATEE_ERR_NO_RESTART';

export class AdminError extends ManateeError {
  declare readonly code: AdminErrorCode;

  // Not useless: it narrows `code` to the codes listed above, so a typo does not compile.
  // eslint-disable-next-line @typescript-eslint/no-useless-constructor
  constructor(code: AdminErrorCode, message: string) {
    super(code, message);
  }
}

/** A new state for the store's compare-and-set, with the line that its history entry will carry. */
export interface AdminChange {
  readonly state: ClusterState;
  readonly summary: string;
}

/** Joyent's manatee-adm promote gave the primary and the sync 60 s to act on a request. */
export const PROMOTE_EXPIRE_MS_DEFAULT = 60_000;
/** Shorter than a second cannot reach the sitters through the store; longer than an hour is a forgotten request. */
export const PROMOTE_EXPIRE_MS_MIN = 1_000;
export const PROMOTE_EXPIRE_MS_MAX = 3_600_000;
/** A freeze reason is a note for operators, shown in status tables: one line, bounded. */
export const FREEZE_REASON_LENGTH_MAX = 512;

function requireState(state: ClusterState | null): ClusterState {
  if (state === null) {
    throw new AdminError('MANATEE_ERR_NO_STATE', 'the shard has no cluster state yet (initial setup has not happened)');
  }
  return state;
}

function freezeText(state: ClusterState): string {
  return state.freeze === undefined ? 'not frozen' : `frozen since ${state.freeze.date}: ${state.freeze.reason}`;
}

/** Stop all generation changes (takeover, sync replacement, promotion) until unfreeze. */
export function freeze(current: ClusterState | null, reason: string, now: Date): AdminChange {
  const state = requireState(current);
  const trimmed = reason.trim();
  // eslint-disable-next-line no-control-regex -- control characters are what is refused
  if (trimmed.length === 0 || trimmed.length > FREEZE_REASON_LENGTH_MAX || /[\x00-\x1f\x7f]/.test(trimmed)) {
    throw new AdminError(
      'MANATEE_ERR_INVALID_ARGUMENT',
      `freeze reason must be one line of 1 to ${FREEZE_REASON_LENGTH_MAX} printable characters`,
    );
  }
  if (state.freeze !== undefined) {
    // Joyent refused too: a second freeze would overwrite the first operator's reason.
    throw new AdminError('MANATEE_ERR_ALREADY_FROZEN', `the shard is already ${freezeText(state)}`);
  }
  return {
    state: { ...state, freeze: { date: now.toISOString(), reason: trimmed } },
    summary: `frozen by operator: ${trimmed}`,
  };
}

export function unfreeze(current: ClusterState | null): AdminChange {
  const state = requireState(current);
  if (state.freeze === undefined) {
    throw new AdminError('MANATEE_ERR_NOT_FROZEN', 'the shard is not frozen');
  }
  const { freeze: _was, ...rest } = state;
  return { state: rest, summary: `unfrozen by operator (was frozen: ${state.freeze.reason})` };
}

/** A request that the primary or the sync would still act on at `now`. */
export function isPromotePending(state: ClusterState, now: Date): boolean {
  const p = state.promote;
  if (p === undefined) return false;
  return p.generation === state.generation && Date.parse(p.expireTime) > now.getTime();
}

export interface PromoteArgs {
  readonly peerId: PeerId;
  readonly expireMs?: number;
  /** A scheduled switchover: the time (ISO 8601) from which the primary and the sync act on it. */
  readonly at?: string;
  readonly now: Date;
}

/** A scheduled switchover further ahead than this is a forgotten request (and a stale generation by then). */
export const PROMOTE_AT_AHEAD_MS_MAX = 7 * 24 * 3_600_000;

/** The time of a scheduled promote or restart, checked: after now, within PROMOTE_AT_AHEAD_MS_MAX. */
function scheduledTime(at: string | undefined, now: Date, what = 'promote'): number | null {
  if (at === undefined) return null;
  const ms = /^\d{4}-\d{2}-\d{2}T/.test(at) ? Date.parse(at) : Number.NaN;
  if (Number.isNaN(ms)) throw new AdminError('MANATEE_ERR_INVALID_ARGUMENT', `${what} time ${JSON.stringify(at)} is not an ISO 8601 time (2026-12-06T22:00:00Z)`);
  if (ms <= now.getTime()) throw new AdminError('MANATEE_ERR_INVALID_ARGUMENT', `${what} time ${new Date(ms).toISOString()} is not in the future (now ${now.toISOString()})`);
  if (ms - now.getTime() > PROMOTE_AT_AHEAD_MS_MAX) {
    throw new AdminError('MANATEE_ERR_INVALID_ARGUMENT', `${what} time ${new Date(ms).toISOString()} is more than ${PROMOTE_AT_AHEAD_MS_MAX / 86_400_000} days ahead`);
  }
  return ms;
}

/**
 * Ask for a planned switchover: the sync to take over as primary, or an async to move one
 * place up the chain (the peer it passes moves one place down). The request names the role and
 * async index that the operator saw and the generation it was made in, so that the sitters
 * ignore it once the topology has moved on; and it expires.
 */
export function promote(current: ClusterState | null, args: PromoteArgs): AdminChange {
  const state = requireState(current);
  const expireMs = args.expireMs ?? PROMOTE_EXPIRE_MS_DEFAULT;
  if (!Number.isInteger(expireMs) || expireMs < PROMOTE_EXPIRE_MS_MIN || expireMs > PROMOTE_EXPIRE_MS_MAX) {
    throw new AdminError(
      'MANATEE_ERR_INVALID_ARGUMENT',
      `promote expiry must be a whole number of milliseconds from ${PROMOTE_EXPIRE_MS_MIN} to ${PROMOTE_EXPIRE_MS_MAX}, got ${expireMs}`,
    );
  }
  const atMs = scheduledTime(args.at, args.now);
  const expireTime = new Date((atMs ?? args.now.getTime()) + expireMs).toISOString();
  let request: PromoteRequest;
  if (state.primary.id === args.peerId) {
    throw new AdminError('MANATEE_ERR_BAD_PROMOTE', `cannot promote ${args.peerId}: it is already the primary`);
  } else if (state.sync?.id === args.peerId) {
    request = { id: args.peerId, role: 'sync', generation: state.generation, expireTime };
  } else {
    const asyncIndex = state.async.findIndex((p) => p.id === args.peerId);
    if (asyncIndex >= 0) {
      request = { id: args.peerId, role: 'async', asyncIndex, generation: state.generation, expireTime };
    } else if (state.deposed.some((p) => p.id === args.peerId)) {
      throw new AdminError(
        'MANATEE_ERR_BAD_PROMOTE',
        `cannot promote ${args.peerId}: it is deposed and must be rebuilt before it serves again`,
      );
    } else {
      throw new AdminError(
        'MANATEE_ERR_PEER_NOT_FOUND',
        `cannot promote ${args.peerId}: it is not in the replication chain (primary ${state.primary.id}, sync ${state.sync?.id ?? 'none'}, asyncs ${state.async.map((p) => p.id).join(', ') || 'none'})`,
      );
    }
  }
  // The target is checked first: a request for the wrong peer is wrong whatever else holds.
  if (state.freeze !== undefined) {
    // A frozen shard makes no generation change, so the request could only expire.
    throw new AdminError('MANATEE_ERR_FROZEN', `cannot promote: the shard is ${freezeText(state)}`);
  }
  if (isPromotePending(state, args.now)) {
    const p = state.promote!;
    throw new AdminError(
      'MANATEE_ERR_PROMOTE_PENDING',
      `a promotion of ${p.id} (${p.role}) is already pending until ${p.expireTime}; clear it first (clear-promote)`,
    );
  }
  const where = request.role === 'sync' ? 'sync → primary' : `async[${request.asyncIndex ?? 0}] → one place up`;
  if (atMs !== null) request = { ...request, at: new Date(atMs).toISOString() };
  const when = atMs === null ? '' : `, scheduled for ${new Date(atMs).toISOString()}`;
  return {
    state: { ...state, promote: request },
    summary: `operator asked to promote ${request.id} (${where}) in generation ${state.generation}${when}, expires ${expireTime}`,
  };
}

/** Withdraw a promotion request (pending, expired or stale alike). */
export function clearPromote(current: ClusterState | null): AdminChange {
  const state = requireState(current);
  if (state.promote === undefined) {
    throw new AdminError('MANATEE_ERR_NO_PROMOTE', 'there is no promotion request to clear');
  }
  const { promote: _was, ...rest } = state;
  return { state: rest, summary: `operator cleared the promotion request for ${state.promote.id}` };
}

export interface ScheduleRestartArgs {
  /** ISO 8601; in the future, within PROMOTE_AT_AHEAD_MS_MAX. */
  readonly at: string;
  readonly pending: boolean;
  readonly peer?: PeerId;
  readonly now: Date;
}

/** What a scheduled restart restarts, for summaries and logs. */
export function restartScope(r: { readonly pending: boolean; readonly peer?: PeerId | undefined }): string {
  const who = r.peer === undefined ? 'every peer' : `peer ${r.peer}`;
  return r.pending ? `${who} with settings pending a restart` : who;
}

/**
 * Schedule a rolling restart (manatee-adm restart --at): stored in the state, run by the primary's
 * sitter when it is due (src/cli/scheduled-restart.ts). One at a time; the peer, if named, must be
 * in the chain now (it may have left by then: the run says so).
 */
export function scheduleRestart(current: ClusterState | null, args: ScheduleRestartArgs): AdminChange {
  const state = requireState(current);
  const atMs = scheduledTime(args.at, args.now, 'restart')!;
  if (args.peer !== undefined) {
    const chain = [state.primary, ...(state.sync === null ? [] : [state.sync]), ...state.async];
    if (!chain.some((p) => p.id === args.peer)) {
      throw new AdminError('MANATEE_ERR_PEER_NOT_FOUND', `cannot schedule a restart of ${args.peer}: it is not in the replication chain (${chain.map((p) => p.id).join(', ')})`);
    }
  }
  if (state.restart !== undefined) {
    throw new AdminError('MANATEE_ERR_RESTART_SCHEDULED', `a rolling restart (${restartScope(state.restart)}) is already scheduled for ${state.restart.at}; cancel it first (clear-restart)`);
  }
  const restart: ScheduledRestart = { at: new Date(atMs).toISOString(), pending: args.pending, ...(args.peer === undefined ? {} : { peer: args.peer }) };
  return {
    state: { ...state, restart },
    summary: `operator scheduled a rolling restart of ${restartScope(restart)} for ${restart.at}`,
  };
}

/** Cancel a scheduled rolling restart that has not started. */
export function clearRestart(current: ClusterState | null): AdminChange {
  const state = requireState(current);
  if (state.restart === undefined) throw new AdminError('MANATEE_ERR_NO_RESTART', 'there is no scheduled restart to cancel');
  const { restart: _was, ...rest } = state;
  return { state: rest, summary: `operator cancelled the rolling restart of ${restartScope(state.restart)} scheduled for ${state.restart.at}` };
}

export interface ReapOptions {
  /** Ids of the peers whose sessions exist now. A deposed peer that is still alive is not "gone for good". */
  readonly activePeerIds?: readonly PeerId[];
}

/**
 * Forget a deposed peer that will never come back (its machine is gone). Only deposed peers stay
 * in the state while absent; the others leave the chain by themselves when their sessions end,
 * so reaping a peer in the chain is refused (as Joyent's reap did). A live deposed peer is refused
 * too: once forgotten it would rejoin as an unassigned peer without the rebuild it needs.
 */
export function reap(current: ClusterState | null, peerId: PeerId, opts: ReapOptions = {}): AdminChange {
  const state = requireState(current);
  const role =
    state.primary.id === peerId ? 'primary' : state.sync?.id === peerId ? 'sync' : state.async.some((p) => p.id === peerId) ? 'async' : null;
  if (role !== null) {
    throw new AdminError(
      'MANATEE_ERR_PEER_IN_CHAIN',
      `cannot reap ${peerId}: it is the ${role}; only deposed peers can be reaped (a peer in the chain leaves it when its session ends)`,
    );
  }
  if (!state.deposed.some((p) => p.id === peerId)) {
    throw new AdminError('MANATEE_ERR_PEER_NOT_FOUND', `cannot reap ${peerId}: it is not in the deposed list`);
  }
  if (opts.activePeerIds?.includes(peerId) === true) {
    throw new AdminError(
      'MANATEE_ERR_PEER_ACTIVE',
      `cannot reap ${peerId}: its session is alive; rebuild it instead, or stop its sitter first if it is to be decommissioned`,
    );
  }
  return {
    state: { ...state, deposed: state.deposed.filter((p) => p.id !== peerId) },
    summary: `operator reaped deposed peer ${peerId}`,
  };
}

/**
 * What an operator asks of one-node-write mode: on, off, or back to each sitter's configured
 * oneNodeWriteMode ('config': the override is removed).
 */
export type OnwmMode = 'on' | 'off' | 'config';

/**
 * One-node-write mode by operator: an override held in the state (`onwmOverride`), which the
 * peers follow instead of their configured oneNodeWriteMode. The write changes no generation
 * itself (no operator write moves the primary or the sync); the primary acts on it at the next
 * generation: 'onwmDowngrade' drops its sync and asyncs, 'onwmUpgrade' picks a sync once another
 * peer is active. A freeze blocks both, so turning the mode to what the shard is not in is
 * refused while frozen (it could only wait, and would surprise whoever unfreezes).
 */
export function setOnwm(current: ClusterState | null, mode: OnwmMode): AdminChange {
  const state = requireState(current);
  const isOn = state.oneNodeWriteMode === true;
  const inMode = isOn ? 'the shard is in one-node-write mode' : 'the shard is in normal mode';
  if (mode === 'config') {
    if (state.onwmOverride === undefined) {
      throw new AdminError('MANATEE_ERR_ONWM_UNCHANGED', `there is no operator override of one-node-write mode to clear (${inMode})`);
    }
    const { onwmOverride: _was, ...rest } = state;
    return {
      state: rest,
      summary: `operator cleared the one-node-write mode override (was ${state.onwmOverride ? 'on' : 'off'}): the peers follow their configured oneNodeWriteMode again (${inMode})`,
    };
  }
  const on = mode === 'on';
  if (state.onwmOverride === on) {
    const pending = on === isOn ? '' : `; the primary has not acted on it yet (${freezeText(state)})`;
    throw new AdminError('MANATEE_ERR_ONWM_UNCHANGED', `one-node-write mode is already set ${mode} by operator (${inMode}${pending})`);
  }
  if (on !== isOn && state.freeze !== undefined) {
    throw new AdminError(
      'MANATEE_ERR_FROZEN',
      `cannot turn one-node-write mode ${mode}: it takes a new generation, and the shard is ${freezeText(state)}; unfreeze it first`,
    );
  }
  let next: string;
  if (on === isOn) next = `${inMode} already; it stays so whatever the peers' configuration says`;
  else if (on) next = 'the primary drops its sync and asyncs at the next generation, and then commits writes alone';
  else next = 'the primary picks a sync at the next generation once another peer is active';
  return {
    state: { ...state, onwmOverride: on },
    summary: `operator turned one-node-write mode ${mode}: ${next}`,
  };
}

/**
 * Whether `peerId` may throw its data away and copy it again from its upstream, and as what.
 * Never the primary (Joyent: "This node is the primary. Will not rebuild."). The sync only when
 * it could not take over anyway: `own` (its WAL positions, read by the sync's own sitter) shows
 * that neither its replayed nor its received WAL reaches initWal (rules/stream-watch.ts
 * syncCannotTakeOver has the reasoning); then the primary's commits cannot be waiting on anything
 * it holds. Otherwise a sync is refused: the primary's commits wait for it, and it is the only
 * peer that can take over. Returns 'sync' for an allowed sync rebuild, else 'standby'.
 */
export function checkRebuild(state: ClusterState | null, peerId: PeerId, own: OwnWal | null = null): 'standby' | 'sync' {
  if (state === null) return 'standby'; // no state: a peer that has not joined yet may always start over
  if (state.primary.id === peerId) {
    throw new AdminError('MANATEE_ERR_BAD_REBUILD', `will not rebuild ${peerId}: it is the primary`);
  }
  if (state.sync?.id === peerId) {
    const may = own === null ? 'its WAL position is unknown here' : syncCannotTakeOver(state.initWal, own);
    if (may === true) return 'sync';
    throw new AdminError(
      'MANATEE_ERR_BAD_REBUILD',
      `will not rebuild ${peerId}: it is the sync (${may}); the primary's writes would stop for the whole copy, and it is the only peer that can take over. Stop its sitter so that the primary picks another sync, then rebuild it`,
    );
  }
  return 'standby';
}
