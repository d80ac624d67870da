// Rule 2, the primary: it keeps the async chain in step with the sessions (same generation),
// replaces a failed sync with the first active async (generation+1), acts on promote requests
// for asyncs and clears stale ones, and enters or leaves one-node-write mode as its effective
// mode says (the operator's override in the state, else its configuration).
import { describeHistory, type ClusterState, type Lsn, type PeerInfo, type TimelineHistory } from '../../model/index.js';
import { outcome } from './outcome.js';
import { frozenBecause, lsnAtLeast, name, names, placedIds, sortById, type ActivePeers } from './peers.js';
import { checkPromote, describePromote, scheduledSkipReason } from './promote.js';
import type { Decision, DecisionKind, RulesInput } from './types.js';

/** The state with `promote` removed (a request is acted on at most once). */
function withoutPromote(state: ClusterState): ClusterState {
  const { promote: _promote, ...rest } = state;
  return rest;
}

/**
 * The primary's WAL position and timeline history for the initWal of a generation it declares, or
 * why there is none: its PostgreSQL must be online with both known, and its position cannot be
 * behind the current initWal (the store rejects an initWal that goes backwards; such a position
 * means the data went back).
 */
function newInitWal(input: RulesInput, state: ClusterState): { lsn: Lsn; history: TimelineHistory } | { why: string } {
  const at = input.pg.currentLsn;
  if (!input.pg.online || at === null) return { why: 'my PostgreSQL is not online' };
  if (!lsnAtLeast(at, state.initWal)) return { why: `my WAL position ${at} is behind initWal ${state.initWal}` };
  if (input.pg.history === null) return { why: 'my timeline history is unknown' };
  return { lsn: at, history: input.pg.history };
}

/**
 * A state written before initWalHistory existed (an upgrade): the primary records its own history
 * with the generation's initWal (same generation). The primary wrote that initWal from this very
 * WAL (or took over with it), and a primary's WAL is never rewound, so its history now describes
 * the WAL up to initWal. Null when there is nothing to record, or it cannot be read yet.
 */
function recordInitWalHistory(input: RulesInput, state: ClusterState): Decision | null {
  if (state.initWalHistory !== undefined) return null;
  const at = input.pg.currentLsn;
  const history = input.pg.history;
  if (!input.pg.online || at === null || history === null || !lsnAtLeast(at, state.initWal)) return null;
  return outcome(
    input,
    'recordInitWalHistory',
    `the state records no timeline history with initWal ${state.initWal} (written before it was recorded); I am the primary at ${at} on ${describeHistory(history)}, so recording mine`,
    { write: { newState: { ...state, initWalHistory: history }, summary: `primary (${state.primary.id}) recorded initWal ${state.initWal}'s timeline history (${describeHistory(history)})` } },
  );
}

/**
 * Whether this peer wants one-node-write mode: the operator's override in the state
 * (manatee-adm set-onwm) when there is one, else its own configuration.
 */
export function effectiveOnwm(input: RulesInput, state: ClusterState): boolean {
  return state.onwmOverride ?? input.config.oneNodeWriteMode;
}

/** Where the effective mode comes from, for reasons. */
function onwmSource(state: ClusterState): string {
  return state.onwmOverride === undefined ? 'in my configuration' : "by the operator's override";
}

export function decideAsPrimary(input: RulesInput, state: ClusterState, active: ActivePeers): Decision {
  if (state.oneNodeWriteMode === true) return decideOnwmPrimary(input, state, active);
  // Normal mode wanted on: only through the override (a configuration alone is onwmMismatch, in decide()).
  if (effectiveOnwm(input, state)) return onwmDowngrade(input, state);

  const sync = state.sync;
  // A wait that blocks replacing a failed sync. The primary still keeps the asyncs in step
  // meanwhile: a newly active peer may be the async that unblocks the replacement.
  let blocked: Decision | null = null;
  if (sync === null || !active.has(sync)) {
    const replaced = replaceSync(input, state, active, sync);
    if (replaced.write !== null) return replaced;
    blocked = replaced;
  }

  if (blocked === null && sync !== null && active.noFailover(sync)) {
    const moved = replaceNoFailoverSync(input, state, active, sync);
    if (moved !== null) return moved;
  }

  const check = checkPromote(state, active, input.nowMs);
  if (check?.kind === 'invalid' && check.clear) {
    const what = describePromote(check.request);
    return outcome(input, 'clearPromote', `ignoring ${what} because ${check.why}; clearing it`, {
      write: { newState: withoutPromote(state), summary: `promote request cleared: ${check.why}` },
    });
  }
  const skip = scheduledSkipReason(state, active, check);
  if (skip !== null && check !== null) {
    const what = describePromote(check.request);
    return outcome(input, 'skipPromote', `skipping ${what}: it is due, but the shard is not healthy (${skip}); clearing it`, {
      write: { newState: withoutPromote(state), summary: `scheduled switchover to ${check.request.id} skipped: the shard was not healthy at ${check.request.at ?? '?'} (${skip})` },
    });
  }
  if (check?.kind === 'valid' && check.target === 'async' && blocked === null && sync !== null) {
    return promoteAsync(input, state, sync, check.asyncIndex, describePromote(check.request));
  }

  const maintained = maintainAsyncs(input, state, active);
  if (maintained !== null) return maintained;
  const recorded = recordInitWalHistory(input, state);
  if (recorded !== null) return recorded;
  if (blocked !== null) return blocked;

  if (check?.kind === 'invalid') {
    return outcome(
      input,
      'ignoredPromote',
      `ignoring ${describePromote(check.request)} for now because ${check.why}; it is cleared when it expires`,
    );
  }
  const pending = check?.kind === 'valid' ? `; ${describePromote(check.request)} is for the sync to act on` : '';
  return outcome(
    input,
    'none',
    `no action: I am the primary of generation ${state.generation} with sync ${name(sync!)} and asyncs ${names(state.async)}, all active${pending}`,
  );
}

/** The sync has no session: replace it with the first active async (generation+1), or say why not. */
function replaceSync(input: RulesInput, state: ClusterState, active: ActivePeers, sync: PeerInfo | null): Decision {
  const g = state.generation;
  const gone = sync === null ? 'there is no sync' : `sync ${name(sync)} has no session`;
  if (state.freeze !== undefined) {
    return outcome(input, 'frozen', `${gone}, but ${frozenBecause(state)}; not replacing it`);
  }
  const next = active.chooseSync(state.async);
  if (next === undefined) {
    // No write: the dead sync stays named in synchronous_standby_names, so no commit is
    // acknowledged that only this primary holds (as for a shard with one peer left).
    return outcome(input, 'waitForAsync', `${gone} and ${active.noSyncBecause(state.async)}; keeping it as sync until an async can replace it`);
  }
  const wal = newInitWal(input, state);
  if ('why' in wal) {
    return outcome(input, 'waitForPostgres', `${gone}; replacing it with ${name(next)} records my WAL position as initWal, but ${wal.why}`);
  }
  const rest = state.async.filter((p) => p.id !== next.id && active.has(p));
  const newState: ClusterState = { ...withoutPromote(state), generation: g + 1, sync: next, async: rest, initWal: wal.lsn, initWalHistory: wal.history };
  return outcome(
    input,
    'replaceSync',
    `${gone}; I am the primary and ${name(next)} is the first active async; declaring generation ${g + 1} with it as sync and initWal ${wal.lsn}`,
    { write: { newState, summary: `primary (${state.primary.id}) selected new sync (was ${sync?.id ?? 'none'}, now ${next.id})` } },
  );
}

/**
 * The sync is active but tagged nofailover (its configuration changed after it was chosen): an
 * active async that may take over replaces it (generation+1), and it goes to the end of the
 * chain. Null when none may, or the cluster is frozen: it then stays the sync (writes stay safe;
 * only a takeover is lost).
 */
function replaceNoFailoverSync(input: RulesInput, state: ClusterState, active: ActivePeers, sync: PeerInfo): Decision | null {
  if (state.freeze !== undefined) return null;
  const next = active.chooseSync(state.async);
  if (next === undefined) return null;
  const wal = newInitWal(input, state);
  if ('why' in wal) {
    return outcome(input, 'waitForPostgres', `sync ${name(sync)} is tagged nofailover; replacing it with ${name(next)} records my WAL position as initWal, but ${wal.why}`);
  }
  const g = state.generation;
  const chain = [...state.async.filter((p) => p.id !== next.id), sync];
  const newState: ClusterState = { ...withoutPromote(state), generation: g + 1, sync: next, async: chain, initWal: wal.lsn, initWalHistory: wal.history };
  return outcome(
    input,
    'replaceSync',
    `sync ${name(sync)} is tagged nofailover and ${name(next)} may take over; declaring generation ${g + 1} with it as sync, ${name(sync)} moved to the end of the async chain, and initWal ${wal.lsn}`,
    { write: { newState, summary: `primary (${state.primary.id}) selected new sync (was ${sync.id}, tagged nofailover; now ${next.id})` } },
  );
}

/** Act on a current promote request for async[i]. */
function promoteAsync(input: RulesInput, state: ClusterState, sync: PeerInfo, i: number, what: string): Decision {
  const target = state.async[i]!;
  const g = state.generation;
  if (i === 0) {
    // async[0] becomes the sync: a new generation. The old sync goes to the end of the chain.
    const wal = newInitWal(input, state);
    if ('why' in wal) {
      return outcome(input, 'waitForPostgres', `${what} makes ${name(target)} the sync and records my WAL position as initWal, but ${wal.why}`);
    }
    const newState: ClusterState = {
      ...withoutPromote(state),
      generation: g + 1,
      sync: target,
      async: [...state.async.slice(1), sync],
      initWal: wal.lsn,
      initWalHistory: wal.history,
    };
    return outcome(
      input,
      'promoteAsync',
      `acting on ${what}: declaring generation ${g + 1} with ${name(target)} as sync, ${name(sync)} moved to the end of the async chain, and initWal ${wal.lsn}`,
      { write: { newState, summary: `primary (${state.primary.id}) promoted async ${name(target)} to sync (was ${sync.id})` } },
    );
  }
  // async[i] moves up one place; the peer it displaces goes to the end of the chain (as Joyent's).
  const displaced = state.async[i - 1]!;
  const chain = [...state.async.slice(0, i - 1), target, ...state.async.slice(i + 1), displaced];
  const newState: ClusterState = { ...withoutPromote(state), async: chain };
  return outcome(
    input,
    'promoteAsync',
    `acting on ${what}: moving ${name(target)} from async ${i} to async ${i - 1}, and ${name(displaced)} to the end of the chain`,
    { write: { newState, summary: `async ${name(target)} promoted to position ${i - 1} (${displaced.id} moved to the end)` } },
  );
}

/**
 * Append newly active peers (neither placed nor deposed) to the async chain, in id order, and
 * remove asyncs whose sessions ended. Same generation. Returns null when nothing changes.
 */
function maintainAsyncs(input: RulesInput, state: ClusterState, active: ActivePeers): Decision | null {
  const kept = state.async.filter((p) => active.has(p));
  const removed = state.async.filter((p) => !active.has(p));
  const placed = placedIds(state);
  const added = active.sorted().filter((p) => !placed.has(p.id));
  if (kept.length === state.async.length && added.length === 0) return null;

  const newState: ClusterState = { ...state, async: [...kept, ...added] };
  const parts = [
    ...added.map((p) => `async ${name(p)} added`),
    ...removed.map((p) => `async ${name(p)} removed`),
  ];
  const kind: DecisionKind = added.length === 0 ? 'removeAsyncs' : removed.length === 0 ? 'appendAsyncs' : 'updateAsyncs';
  const seen = [
    added.length > 0 ? `${names(added)} became active` : '',
    removed.length > 0 ? `asyncs ${names(removed)} have no session` : '',
  ].filter((s) => s !== '');
  return outcome(input, kind, `${seen.join(' and ')}; I am the primary, so the async chain becomes ${names(newState.async)}`, {
    write: { newState, summary: parts.join(', ') },
  });
}

/**
 * The primary of a normal-mode cluster whose effective mode is one-node-write (the operator's
 * override): generation+1 with no sync and no asyncs. The former sync and asyncs become
 * unassigned peers, which in ONWM stop their PostgreSQL and never take over (decide(): an
 * unassigned peer makes no write; a sync's takeover that raced with this write is a
 * compare-and-set on the older version and loses).
 *
 * Not fenced (not in the sitter's FENCED_KINDS), because no peer can take over from this state:
 * the fence exists so that initWal bounds every acknowledged commit for a sync that may take
 * over, and in ONWM there is no sync. This primary keeps all its data and its timeline; every
 * commit acknowledged so far was also flushed by the old sync, and those after are on this
 * primary alone, which is what ONWM means. initWal is kept (it may not go backwards, and
 * nobody compares with it until the next onwmUpgrade, which fences and records a fresh one).
 * Deposed peers stay deposed: their data still diverges from this primary's.
 */
function onwmDowngrade(input: RulesInput, state: ClusterState): Decision {
  const g = state.generation;
  if (state.freeze !== undefined) {
    return outcome(input, 'frozen', `one-node-write mode is on ${onwmSource(state)}, but ${frozenBecause(state)}; keeping my sync`);
  }
  // Its own database must answer before the only other copy of the data is let go: a primary
  // whose PostgreSQL is down keeps its sync (a takeover stays possible if the sitter dies too).
  if (!input.pg.online) {
    return outcome(input, 'waitForPostgres', `one-node-write mode is on ${onwmSource(state)}, but my PostgreSQL is not online; keeping my sync until it is`);
  }
  const dropped = [...(state.sync === null ? [] : [state.sync]), ...state.async];
  const newState: ClusterState = {
    ...withoutPromote(state),
    generation: g + 1,
    sync: null,
    async: [],
    oneNodeWriteMode: true,
  };
  return outcome(
    input,
    'onwmDowngrade',
    `one-node-write mode is on ${onwmSource(state)}; declaring generation ${g + 1} in one-node-write mode without sync ${state.sync === null ? 'none' : name(state.sync)} and asyncs ${names(state.async)}, initWal kept at ${state.initWal}`,
    {
      write: {
        newState,
        summary: `primary (${state.primary.id}) entered one-node-write mode, dropping ${dropped.map((p) => p.id).join(', ') || 'no peer'}`,
      },
    },
  );
}

/** The primary of a one-node-write-mode cluster. */
function decideOnwmPrimary(input: RulesInput, state: ClusterState, active: ActivePeers): Decision {
  const deposed = new Set(state.deposed.map((p) => p.id));
  const others = active.sorted().filter((p) => p.id !== input.self.id && !deposed.has(p.id));
  if (effectiveOnwm(input, state)) {
    const ignored = others.length === 0 ? '' : `; ignoring the other active peers ${names(others)}`;
    return outcome(input, 'none', `no action: I am the primary in one-node-write mode${ignored}`);
  }
  const off = `one-node-write mode is off ${onwmSource(state)}`;
  if (state.freeze !== undefined) {
    return outcome(input, 'frozen', `${off}, but ${frozenBecause(state)}; staying in one-node-write mode`);
  }
  const sync = active.chooseSync(others);
  if (sync === undefined) {
    const tagged = others.length === 0 ? '' : ` (${names(others)} tagged nofailover)`;
    return outcome(input, 'waitForPeers', `${off}; waiting for another peer to become my sync${tagged}`);
  }
  const wal = newInitWal(input, state);
  if ('why' in wal) {
    return outcome(input, 'waitForPostgres', `${off}; leaving it with ${name(sync)} as sync records my WAL position as initWal, but ${wal.why}`);
  }
  const { oneNodeWriteMode: _onwm, promote: _promote, ...rest } = state;
  const asyncs = sortById(others.filter((p) => p.id !== sync.id));
  const newState: ClusterState = {
    ...rest,
    generation: state.generation + 1,
    sync,
    async: asyncs,
    initWal: wal.lsn,
    initWalHistory: wal.history,
  };
  return outcome(
    input,
    'onwmUpgrade',
    `${off} and ${name(sync)} is active; declaring generation ${newState.generation} in normal mode with it as sync, asyncs ${names(asyncs)} and initWal ${wal.lsn}`,
    { write: { newState, summary: `primary (${state.primary.id}) left one-node-write mode with sync (${sync.id})` } },
  );
}
