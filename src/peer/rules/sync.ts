// Rule 3, the sync: it takes over when the primary's session ended (or an operator's current
// promote request names it), provided that an async is active to become the new sync, the
// cluster is not frozen, its own PostgreSQL is online and it has replayed up to initWal on the
// timeline history recorded with initWal (init-wal.ts). A takeover deposes the old primary.
import { describeHistory, type ClusterState } from '../../model/index.js';
import { historyHoldsInitWal } from './init-wal.js';
import { outcome } from './outcome.js';
import { frozenBecause, lsnAtLeast, maxLsn, name, names, type ActivePeers } from './peers.js';
import { checkPromote, describePromote } from './promote.js';
import type { Decision, RulesInput } from './types.js';

export function decideAsSync(input: RulesInput, state: ClusterState, active: ActivePeers): Decision {
  const g = state.generation;
  const primary = state.primary;
  const check = checkPromote(state, active, input.nowMs);

  let why: string;
  let planned: boolean;
  if (!active.has(primary)) {
    why = `primary ${name(primary)} has no session`;
    planned = false;
  } else if (check?.kind === 'valid' && check.target === 'sync') {
    why = `${describePromote(check.request)} names me`;
    planned = true;
  } else {
    if (check?.kind === 'invalid' && check.scheduled === true && check.request.id === input.self.id) {
      return outcome(input, 'none', `no action: I am the sync of generation ${g}; ${describePromote(check.request)} waits for its time`);
    }
    if (check?.kind === 'invalid' && check.request.id === input.self.id) {
      return outcome(input, 'ignoredPromote', `ignoring ${describePromote(check.request)} because ${check.why}`);
    }
    return outcome(input, 'none', `no action: I am the sync of generation ${g}, replicating from primary ${name(primary)}`);
  }

  if (active.noFailover(input.self)) {
    // The operator said this peer never becomes primary. The primary's rules replace this sync
    // with an async that may take over, when one is active.
    return outcome(input, 'noFailover', `${why}, but I am tagged nofailover; not taking over`);
  }
  if (!planned && state.freeze !== undefined) {
    return outcome(input, 'frozen', `${why}, but ${frozenBecause(state)}; not taking over`);
  }
  const next = active.chooseSync(state.async);
  if (next === undefined) {
    // Without an async there would be no sync after the takeover: no writes either way, and
    // the old primary may come back. Joyent's "no flapping". An async tagged nofailover may not
    // be that sync either.
    const kind = planned ? 'ignoredPromote' : 'waitForAsync';
    return outcome(input, kind, `${why}, but ${active.noSyncBecause(state.async, 'become my sync')}; not taking over`);
  }
  if (!input.pg.online) {
    return outcome(input, 'waitForPostgres', `${why}, but my PostgreSQL is not online; not taking over yet`);
  }
  const replay = input.pg.replayLsn;
  if (replay === null || !lsnAtLeast(replay, state.initWal)) {
    return outcome(
      input,
      'waitForCatchUp',
      `${why}, but my replay position ${replay ?? 'unknown'} is behind initWal ${state.initWal}; not taking over until I catch up`,
    );
  }
  const held = historyHoldsInitWal(state, input.pg.history);
  if (held !== true) {
    // An LSN is a position in one history: past initWal on another one says nothing about holding
    // the generation's WAL. Such a sync waits (the primary may come back; a stalled sync that
    // diverged is rebuilt by the stream-stall watch once the primary is active again).
    return outcome(input, input.pg.history === null ? 'waitForPostgres' : 'divergedFromInitWal', `${why}, but ${held}; not taking over`);
  }
  const history = input.pg.history;
  if (history === null) {
    return outcome(input, 'waitForPostgres', `${why}, but my timeline history is unknown, and a takeover records it with initWal; not taking over yet`);
  }
  const initWal = maxLsn(input.pg.currentLsn, replay) ?? replay;

  const rest = state.async.filter((p) => p.id !== next.id && active.has(p));
  const { promote: _promote, ...base } = state;
  const newState: ClusterState = {
    ...base,
    generation: g + 1,
    primary: input.self,
    sync: next,
    async: rest,
    deposed: [...state.deposed, primary],
    initWal,
    initWalHistory: history,
  };
  const on = state.initWalHistory === undefined ? ' (no timeline history recorded with it: a state from before it was)' : ` on ${describeHistory(state.initWalHistory)}`;
  const how = `I am the sync with replay ${replay} >= initWal ${state.initWal}${on}; taking over as primary of generation ${g + 1} with ${name(next)} as sync, asyncs ${names(rest)}, ${name(primary)} deposed and initWal ${initWal} on my ${describeHistory(history)}`;
  return outcome(input, planned ? 'promoteSync' : 'takeover', `${why}; ${how}`, {
    write: {
      newState,
      summary: planned
        ? `sync (${input.self.id}) took over as primary (from ${primary.id}) on an operator's promote request`
        : `sync (${input.self.id}) took over as primary (from ${primary.id})`,
    },
  });
}
