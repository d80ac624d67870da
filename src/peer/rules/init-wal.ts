// initWal and the timeline history it belongs to. A generation records the WAL position where it
// began (initWal) together with the writer's timeline history; a sync may take over only when its
// own WAL holds the generation's WAL up to initWal. Comparing LSNs alone is not enough: WAL
// positions on two histories that parted are unrelated (a sync that diverged at 0/700 on timeline 1
// and replayed on to 0/7C0 there is not past initWal 0/780 of timeline 2, which began at 0/700;
// whole-shard simulator seed 136570 with --operator lost an acknowledged write that way).
import { describeHistory, historyFork, type ClusterState, type TimelineHistory } from '../../model/index.js';
import { lsnAtLeast } from './peers.js';

/** The history of a new database (initdb): timeline 1, no switch. The cluster's setup records it with initWal 0/0. */
export const FIRST_TIMELINE_HISTORY: TimelineHistory = { timeline: 1, switches: [] };

/**
 * Whether this peer's WAL, on timeline history `mine`, holds the generation's WAL up to initWal
 * as far as the histories can tell: true when the state records no history (a state written
 * before it was recorded: the LSN alone decides, as before), when `mine` is the recorded one, or
 * when the two part at or after initWal (pg_rewind's findCommonAncestorTimeline: WAL up to the
 * fork is common to both). Otherwise why not, as a clause.
 *
 * The caller still checks that this peer's WAL reaches initWal at all (its replay position).
 */
export function historyHoldsInitWal(state: ClusterState, mine: TimelineHistory | null): true | string {
  const recorded = state.initWalHistory;
  if (recorded === undefined) return true;
  if (mine === null) return `my timeline history is unknown, and initWal ${state.initWal} is on ${describeHistory(recorded)}`;
  const fork = historyFork(mine, recorded);
  if (fork === null || lsnAtLeast(fork.lsn, state.initWal)) return true;
  return `my ${describeHistory(mine)} leaves ${describeHistory(recorded)}, where initWal ${state.initWal} is, at ${fork.lsn} (timeline ${fork.timeline}): my WAL past ${fork.lsn} is not the generation's`;
}
