// The whole shard's invariants, checked after every step of the simulation (DESIGN.md, "Testing"):
//   - the generation never goes back (in the committed state);
//   - at most one PostgreSQL turns writable per generation;
//   - no commit is acknowledged outside the current generation: only the primary of the latest
//     committed state acknowledges commits;
//   - every acknowledged commit is in the WAL of a new primary, both when its takeover commits
//     and whenever a PostgreSQL turns writable;
//   - a deposed peer leaves `deposed` only with a history that the primary's extends (rebuilt);
//   - liveness: the shard is whole again within a bound once the faults stop (checked by the shard).
import type { ClusterState } from '../../src/model/index.js';
import { isPrefix, type SimPostgres } from './pg.js';
import { SimInvariantError, type World } from './world.js';

export interface Committed {
  readonly version: number;
  readonly state: ClusterState | null;
}

export class ShardChecker {
  /** The latest committed state that any peer has applied. */
  committed: Committed = { version: 0, state: null };
  /** Acknowledged writes: id -> the peer that acknowledged it and the generation then. */
  readonly acked = new Map<number, { peer: string; generation: number | null; atMs: number }>();
  /** Per generation, the peer whose PostgreSQL turned writable in it. */
  private readonly writableIn = new Map<number, string>();
  stats = { generations: 0, takeovers: 0, acks: 0 };

  constructor(private readonly world: World, private readonly pgs: ReadonlyMap<string, SimPostgres>) {}

  fail(invariant: string, message: string): never {
    this.world.log(() => `INVARIANT BROKEN: ${invariant}: ${message}`);
    throw new SimInvariantError(this.world.seed, invariant, message);
  }

  /** A newer committed state was applied somewhere. */
  onCommitted(next: Committed): void {
    const prev = this.committed;
    if (next.version <= prev.version) return;
    this.committed = next;
    const before = prev.state;
    const after = next.state;
    if (after === null) return;
    if (before !== null && after.generation < before.generation) {
      this.fail('generation never goes back', `version ${next.version} has generation ${after.generation} after ${before.generation}`);
    }
    if (before === null || after.generation !== before.generation) this.stats.generations++;
    this.world.log(() => `committed v${next.version} g${after.generation}: primary ${after.primary.id}, sync ${after.sync?.id ?? '-'}, async [${after.async.map((p) => p.id).join(',')}], deposed [${after.deposed.map((p) => p.id).join(',')}], initWal ${after.initWal}`);
    if (before !== null) {
      const primary = this.pgs.get(after.primary.id);
      for (const p of before.deposed) {
        if (after.deposed.some((q) => q.id === p.id)) continue;
        const pg = this.pgs.get(p.id);
        if (pg !== undefined && primary !== undefined && !isPrefix(pg.wal, primary.wal)) {
          this.fail('a deposed peer rejoins only rebuilt', `${p.id} left deposed in generation ${after.generation} with WAL that primary ${after.primary.id} does not have (${pg.wal.length} records, the primary ${primary.wal.length})`);
        }
      }
    }
    if (before !== null && after.primary.id !== before.primary.id) {
      this.stats.takeovers++;
      this.checkHasAcked(after.primary.id, `at the takeover of generation ${after.generation}`);
    }
  }

  /** A PostgreSQL turned writable. */
  onWritable(peerId: string): void {
    const g = this.committed.state?.generation ?? null;
    if (g === null) this.fail('one writable primary per generation', `${peerId} turned writable with no committed state`);
    const other = this.writableIn.get(g);
    if (other !== undefined && other !== peerId) {
      this.fail('one writable primary per generation', `${peerId} turned writable in generation ${g}, in which ${other} was writable`);
    }
    this.writableIn.set(g, peerId);
    this.checkHasAcked(peerId, `when it turned writable in generation ${g}`);
  }

  /** A commit was acknowledged to a client. */
  onAck(writeId: number, peerId: string): void {
    const st = this.committed.state;
    if (st === null || st.primary.id !== peerId) {
      this.fail('no commit acknowledged outside the current generation',
        `write ${writeId} acknowledged by ${peerId}, but the primary of generation ${st?.generation ?? '-'} is ${st?.primary.id ?? 'nobody'}`);
    }
    this.stats.acks++;
    this.acked.set(writeId, { peer: peerId, generation: st.generation, atMs: this.world.nowMs });
    this.world.log(() => `write ${writeId} acknowledged by ${peerId} in generation ${st.generation}`);
  }

  /** Every acknowledged write is in `peerId`'s WAL. */
  private checkHasAcked(peerId: string, when: string): void {
    const pg = this.pgs.get(peerId);
    if (pg === undefined) return;
    const have = new Set<number>();
    for (const r of pg.wal) if (r.writeId !== undefined) have.add(r.writeId);
    for (const [id, a] of this.acked) {
      if (!have.has(id)) {
        this.fail('every acknowledged commit is on the new primary',
          `write ${id} (acknowledged by ${a.peer} in generation ${a.generation ?? '-'}) is not in ${peerId}'s WAL ${when}`);
      }
    }
  }
}
