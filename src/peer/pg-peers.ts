// Which addresses this peer's PostgreSQL admits the replication role from (pg_hba.conf): the hosts
// of every peer the shard knows of. That is the configured Raft members (so the first peers can
// bootstrap before any state exists), the peers the committed state names (primary, sync, asyncs,
// deposed: a deposed peer rewinds from the new primary), and the peers with a session (a new peer
// bootstraps from its upstream as soon as the primary has placed it). A peer that is gone from all
// three can no longer replicate from here.
import type { Logger } from '../log.js';
import type { ClusterState, PeerInfo } from '../model/index.js';
import { errorMessage } from '../errors.js';
import { CoalescedJob } from './coalesced-job.js';

export interface PeerHostsInput {
  readonly self: PeerInfo;
  /** "host:port" of each configured Raft member. */
  readonly memberAddresses: readonly string[];
  readonly state: ClusterState | null;
  readonly active: readonly PeerInfo[];
}

/** The host of a "host:port" or "[v6]:port" address. */
function hostOfAddress(address: string): string {
  const m = /^\[?([^\]]*)\]?:\d+$/.exec(address);
  return m?.[1] ?? address;
}

/** Every peer's host, sorted, each once. Pure. */
export function peerHostsOf(input: PeerHostsInput): string[] {
  const s = input.state;
  const inState = s === null ? [] : [s.primary, ...(s.sync === null ? [] : [s.sync]), ...s.async, ...s.deposed];
  const hosts = [input.self.host, ...input.memberAddresses.map(hostOfAddress), ...inState.map((p) => p.host), ...input.active.map((p) => p.host)];
  return [...new Set(hosts.filter((h) => h !== ''))].sort();
}

/**
 * Keeps PostgreSQL's peer addresses current: update() is called on every state and session change
 * and is cheap when nothing changed; updates run one at a time, the last one wins.
 */
export class PgPeerHosts {
  private readonly job: CoalescedJob;

  constructor(private readonly opts: {
    readonly postgres: { setPeerHosts(hosts: readonly string[]): Promise<boolean> };
    readonly hosts: () => string[];
    readonly log: Logger;
  }) {
    this.job = new CoalescedJob({
      run: async () => { await this.opts.postgres.setPeerHosts(this.opts.hosts()); },
      // pg_hba.conf keeps its previous peers; the next change tries again.
      failed: (err) => {
        this.opts.log.warn({ decision: 'pg-hba-peers-failed', hosts: this.opts.hosts(), reason: errorMessage(err) }, 'could not update the peers in pg_hba.conf');
      },
    });
  }

  update(): void {
    this.job.request();
  }

  /** Resolves once the updates asked for so far are done (for stop and tests). */
  async settled(): Promise<void> {
    await this.job.settled();
  }
}
