// The randomized workload: proposals, ReadIndex reads, crashes (also in the middle of a Ready),
// restarts, partitions, compaction, membership changes and leadership transfers, over a faulty
// network. Safety is checked after every event (cluster.ts); liveness at the end, after healing.
import { ConfChangeInvalidError, ProposalDroppedError, type NodeId } from '../../../src/raft/core/index.js';
import { SimCluster } from './cluster.js';
import { Rng } from '../../helpers/rng.js';

export interface WorkloadOptions {
  /** Ticks of chaos before healing. */
  ticks?: number;
  trace?: boolean;
}

export interface WorkloadResult {
  readonly seed: number;
  readonly cluster: SimCluster;
  readonly proposed: number;
  readonly committed: number;
  readonly confChanges: number;
}

const MAX_NODES = 7;
/** After healing, how long a healthy cluster may take to elect a leader and catch everyone up. */
const LIVENESS_TICKS = 400;

/** Runs one seed. On failure, the error message ends with the tail of the trace (when tracing). */
export function runWorkload(seed: number, opts: WorkloadOptions = {}): WorkloadResult {
  let cluster: SimCluster | null = null;
  try {
    return runWorkloadInner(seed, opts, (c) => { cluster = c; });
  } catch (err) {
    const trace = (cluster as SimCluster | null)?.trace ?? null;
    if (trace === null || !(err instanceof Error)) throw err;
    const tail = trace.slice(-TRACE_TAIL_LINES).join('\n');
    throw new Error(`${err.message}\n--- last ${TRACE_TAIL_LINES} events of seed ${seed} ---\n${tail}`, { cause: err });
  }
}

const TRACE_TAIL_LINES = 80;

function runWorkloadInner(seed: number, opts: WorkloadOptions, expose: (c: SimCluster) => void): WorkloadResult {
  const w = new Rng(seed ^ 0x5bd1e995);
  const n = w.int(3, 5);
  const ids = Array.from({ length: n }, (_, k) => `n${k + 1}`);
  const c = new SimCluster({
    seed,
    ids,
    trace: opts.trace === true,
    faults: {
      drop: w.next() * 0.1,
      duplicate: w.next() * 0.05,
      maxDelay: w.int(1, 8),
      slowDisk: w.next() * 0.3,
      asyncDisk: w.chance(0.5) ? w.next() * 0.5 : 0,
    },
    raft: {
      preVote: w.chance(0.8),
      checkQuorum: w.chance(0.8),
      maxEntriesPerMessage: w.int(1, 8),
      maxBytesPerMessage: w.chance(0.3) ? w.int(1, 30) : 8 * 1024 * 1024,
      maxInflightMessages: w.int(1, 4),
      maxUncommittedEntries: w.int(8, 64),
      // Half of the seeds run as node.ts does (commit broadcast deferred to the driver); taken from
      // the seed, not the generator, so that the other draws of every seed stay what they were.
      deferCommitBroadcast: seed % 2 === 0,
    },
  });
  const crashRate = w.chance(0.3) ? 0.1 : 0.03;
  // The drivers' hints (a refused dial, a fresh start) draw from their own generator, so that the
  // other draws of every seed stay what they were before the hints existed.
  const hints = new Rng(seed ^ 0x27d4eb2f);
  expose(c);
  let nextId = n + 1;
  let proposed = 0;
  let confChanges = 0;
  let partitioned = false;
  const ticks = opts.ticks ?? 250;

  const up = (): NodeId[] => c.upIds();
  const members = (): NodeId[] => {
    const l = c.leader();
    if (l === null) return [];
    const cs = l.core!.status(false).confState;
    return [...cs.voters, ...cs.learners];
  };

  for (let t = 0; t < ticks; t++) {
    let live = up();
    let leader = c.leader();
    if (w.chance(0.6) && live.length > 0) {
      const at = leader !== null && w.chance(0.5) ? leader.id : w.pick(live);
      if (c.propose(at, `v${seed}-${proposed}`)) proposed++;
    }
    if (w.chance(0.2) && live.length > 0) {
      // Reads at a (possibly deposed) leader are where staleness would show.
      const leaders = live.filter((id) => c.node(id).core?.status(false).role === 'leader');
      c.readIndex(leaders.length > 0 && w.chance(0.5) ? w.pick(leaders) : w.pick(live));
    }
    if (w.chance(crashRate) && live.length > 0) {
      // Leaders crash more often than others: that is where Raft's hardest cases are (Figure 8).
      const victim = leader !== null && w.chance(0.5) ? leader.id : w.pick(live);
      if (w.chance(0.3)) c.node(victim).crashAfterPersist = true;
      else c.crash(victim);
    }
    for (const id of c.nodes.keys()) {
      if (!c.node(id).up && w.chance(0.08)) {
        c.restart(id);
        if (hints.chance(0.7)) c.campaignSoon(id);
      }
    }
    // A dead node's port refuses: each live node's driver may hear so. Now and then a live node's
    // refusal is reported too (a port closed and reopened, a REJECT rule): a hint, never a proof.
    for (const id of up()) {
      for (const other of c.nodes.keys()) {
        if (other === id) continue;
        const dead = !c.node(other).up;
        if (hints.chance(dead ? 0.3 : 0.005)) c.reportRefused(id, other);
      }
    }
    if (!partitioned && w.chance(0.03)) {
      const all = [...c.nodes.keys()];
      const side = all.filter(() => w.chance(0.4));
      c.partition(side, all.filter((id) => !side.includes(id)));
      partitioned = true;
    } else if (partitioned && w.chance(0.06)) {
      c.heal();
      partitioned = false;
    }
    if (w.chance(0.06) && live.length > 0) c.compact(w.pick(live), w.int(0, 6));
    // Earlier events may have crashed the leader (a crash in the middle of a Ready).
    live = up();
    leader = c.leader();
    if (w.chance(0.04) && leader !== null) {
      const cs = leader.core!.status(false).confState;
      const roll = w.next();
      try {
        if (roll < 0.4 && c.nodes.size < MAX_NODES) {
          const id = `n${nextId++}`;
          c.addNode(id);
          c.proposeConfChange(leader.id, { type: 'addLearner', nodeId: id });
          confChanges++;
        } else if (roll < 0.7 && cs.learners.length > 0) {
          c.proposeConfChange(leader.id, { type: 'promote', nodeId: w.pick(cs.learners) });
          confChanges++;
        } else if (cs.voters.length > 3 || (cs.learners.length > 0 && roll < 0.85)) {
          const pool = cs.voters.length > 3 ? [...cs.voters, ...cs.learners] : cs.learners;
          c.proposeConfChange(leader.id, { type: 'remove', nodeId: w.pick(pool) });
          confChanges++;
        }
      } catch (err) {
        if (!(err instanceof ProposalDroppedError) && !(err instanceof ConfChangeInvalidError)) throw err;
      }
    }
    leader = c.leader();
    if (w.chance(0.02) && leader !== null) {
      const voters = leader.core!.status(false).confState.voters.filter((id) => id !== leader.id);
      if (voters.length > 0) c.transferLeadership(leader.id, w.pick(voters));
    }
    c.ticks(1);
  }

  // Liveness: heal everything; a leader is elected and every member applies everything committed.
  c.heal();
  c.faults = { drop: 0, duplicate: 0, maxDelay: c.faults.maxDelay, slowDisk: 0, asyncDisk: 0 };
  for (const id of c.nodes.keys()) {
    c.node(id).crashAfterPersist = false;
    c.restart(id);
  }
  const committedAtHeal = c.checker.maxCommitted;
  let lastFinalProposal = -Infinity;
  c.runUntil('liveness after healing: a leader, and every member caught up', () => {
    const l = c.stableLeader();
    if (l === null) return false;
    // Nodes no longer in the configuration are shut down, as a removed Manatee peer would be.
    const mem = members();
    for (const id of c.nodes.keys()) {
      if (!mem.includes(id) && c.node(id).up) c.crash(id);
      if (mem.includes(id) && !c.node(id).up) c.restart(id);
    }
    // A proposal may be lost with its leader (e.g. a crash before its append went out): retry.
    if (c.now - lastFinalProposal > 30 * c.unitsPerTick && !l.sm.values.includes(`final-${seed}`)) {
      if (c.propose(l.id, `final-${seed}`)) lastFinalProposal = c.now;
      return false;
    }
    return mem.every((id) => {
      const node = c.node(id);
      return node.sm.values.includes(`final-${seed}`) && node.sm.index >= committedAtHeal;
    });
  }, LIVENESS_TICKS);
  return { seed, cluster: c, proposed, committed: c.checker.maxCommitted, confChanges };
}
