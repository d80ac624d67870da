// Periodic snapshots of a peer's dataset with a retention count, as Joyent's Manatee did.
// It skips a snapshot while PostgreSQL is unhealthy (a snapshot of a crashed or hung server is
// not a good base for a standby), never deletes the newest snapshot, and logs each decision.
import type { Logger } from '../log.js';
import type { Zfs } from './zfs.js';
import { validateDatasetName } from './names.js';
import { errorMessage } from '../errors.js';
import { ManateeError } from '../errors.js';

export interface SnapshotterOptions {
  readonly zfs: Zfs;
  readonly dataset: string;
  readonly intervalMs: number;
  /** How many Manatee snapshots to keep (at least 1). Older ones are destroyed. */
  readonly retentionCount: number;
  /** Whether PostgreSQL is healthy now; a snapshot is skipped when it says false or throws. */
  readonly isHealthy?: () => boolean | Promise<boolean>;
  readonly log: Logger;
  readonly now?: () => number;
}

export interface SnapshotterDecision {
  readonly decision: 'snapshot' | 'skip' | 'error';
  readonly reason: string;
  readonly created: string | null;
  readonly destroyed: readonly string[];
  readonly atMs: number;
}

/** Upper bound on snapshots pruned in one pass, so a huge backlog is pruned over several passes. */
const PRUNE_PER_PASS_MAX = 100;

export class Snapshotter {
  private readonly opts: SnapshotterOptions;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<SnapshotterDecision> | null = null;
  private last: SnapshotterDecision | null = null;

  constructor(opts: SnapshotterOptions) {
    validateDatasetName(opts.dataset);
    if (!Number.isInteger(opts.retentionCount) || opts.retentionCount < 1) {
      throw new ManateeError('MANATEE_ERR_INVALID_ARGUMENT', `retentionCount must be an integer >= 1, got ${opts.retentionCount}`);
    }
    if (!Number.isFinite(opts.intervalMs) || opts.intervalMs < 100) {
      throw new ManateeError('MANATEE_ERR_INVALID_ARGUMENT', `intervalMs must be >= 100, got ${opts.intervalMs}`);
    }
    this.opts = opts;
    this.now = opts.now ?? Date.now;
  }

  /** The last decision, for the status API. */
  get lastDecision(): SnapshotterDecision | null {
    return this.last;
  }

  /** Starts periodic snapshots; the first one is taken after one interval. */
  start(): void {
    if (this.timer !== null) return;
    this.opts.log.info({ dataset: this.opts.dataset, intervalMs: this.opts.intervalMs, retentionCount: this.opts.retentionCount }, 'snapshotter: started');
    this.timer = setInterval(() => {
      // Never overlap two passes: a slow zfs just delays the next one.
      if (this.running !== null) return;
      void this.runOnce();
    }, this.opts.intervalMs);
  }

  /** Stops the timer and waits for a pass in progress. */
  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    if (this.running !== null) await this.running;
    this.opts.log.info({ dataset: this.opts.dataset }, 'snapshotter: stopped');
  }

  /** One pass: snapshot (unless unhealthy), then prune beyond the retention count. Never throws. */
  async runOnce(): Promise<SnapshotterDecision> {
    if (this.running !== null) return this.running;
    this.running = this.pass().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async pass(): Promise<SnapshotterDecision> {
    const { zfs, dataset, log } = this.opts;
    const atMs = this.now();
    let healthy = true;
    let why = 'PostgreSQL is healthy';
    if (this.opts.isHealthy !== undefined) {
      try {
        healthy = await this.opts.isHealthy();
        if (!healthy) why = 'PostgreSQL is unhealthy';
      } catch (err) {
        healthy = false;
        why = `health check failed: ${errorMessage(err)}`;
      }
    }
    if (!healthy) {
      return this.decide({ decision: 'skip', reason: why, created: null, destroyed: [], atMs });
    }
    let created: string | null = null;
    const destroyed: string[] = [];
    try {
      created = (await zfs.createSnapshot(dataset, atMs)).name;
      const snaps = await zfs.listSnapshots(dataset);
      const excess = snaps.slice(0, Math.max(0, snaps.length - this.opts.retentionCount)).slice(0, PRUNE_PER_PASS_MAX);
      const newest = snaps.at(-1)?.name;
      for (const s of excess) {
        if (s.name === newest || s.name === created) continue; // invariant: the newest snapshot is never deleted
        try {
          await zfs.destroySnapshot(s.name);
          destroyed.push(s.name);
        } catch (err) {
          // A snapshot being sent to a peer can be busy; it is retried on the next pass.
          log.warn({ snapshot: s.name, err: errorMessage(err) }, 'snapshotter: could not destroy old snapshot, will retry');
        }
      }
      return this.decide({ decision: 'snapshot', reason: `${why}; kept newest ${this.opts.retentionCount}`, created, destroyed, atMs });
    } catch (err) {
      const reason = errorMessage(err);
      return this.decide({ decision: 'error', reason, created, destroyed, atMs });
    }
  }

  private decide(d: SnapshotterDecision): SnapshotterDecision {
    this.last = d;
    const line = { dataset: this.opts.dataset, decision: d.decision, reason: d.reason, created: d.created, destroyed: d.destroyed };
    if (d.decision === 'error') this.opts.log.error(line, 'snapshotter: pass failed');
    else this.opts.log.info(line, `snapshotter: ${d.decision}`);
    return d;
  }
}
