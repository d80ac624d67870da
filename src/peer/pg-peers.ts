// Which peers this peer's PostgreSQL admits the replication role from (pg_hba.conf), each from its
// own host and, with TLS, only with its own certificate (pg_ident.conf maps the certificate's CN,
// the peer id, at that host): every peer the shard knows of. That is the configured Raft members
// (so the first peers can bootstrap before any state exists), the peers the committed state names
// (primary, sync, asyncs, deposed: a deposed peer rewinds from the new primary), and the peers with
// a session (a new peer bootstraps from its upstream as soon as the primary has placed it). A peer
// that is gone from all three can no longer replicate from here.
import type { Logger } from '../log.js';
import type { ClusterState, PeerInfo } from '../model/index.js';
import type { PgPeer } from '../postgres/index.js';
import { errorMessage } from '../errors.js';
import { CoalescedJob } from './coalesced-job.js';

export interface PeerHostsInput {
  readonly self: PeerInfo;
  /** Each configured Raft member: its id and the "host:port" of its transport. */
  readonly members: readonly { readonly id: string; readonly address: string }[];
  readonly state: ClusterState | null;
  readonly active: readonly PeerInfo[];
}

/** The host of a "host:port" or "[v6]:port" address. */
function hostOfAddress(address: string): string {
  const m = /^\[?([^\]]*)\]?:\d+$/.exec(address);
  return m?.[1] ?? address;
}

/** Every peer as (id, host), each pair once, sorted by id then host. Pure. */
export function pgPeersOf(input: PeerHostsInput): PgPeer[] {
  const s = input.state;
  const inState = s === null ? [] : [s.primary, ...(s.sync === null ? [] : [s.sync]), ...s.async, ...s.deposed];
  const all: PgPeer[] = [
    input.self, ...input.members.map((m) => ({ id: m.id, host: hostOfAddress(m.address) })), ...inState, ...input.active,
  ].map((p) => ({ id: p.id, host: p.host }));
  const seen = new Map<string, PgPeer>();
  for (const p of all) if (p.host !== '') seen.set(`${p.id} ${p.host}`, p);
  return [...seen.values()].sort((a, b) => (a.id === b.id ? (a.host < b.host ? -1 : a.host > b.host ? 1 : 0) : a.id < b.id ? -1 : 1));
}

/**
 * Keeps PostgreSQL's peers current: update() is called on every state and session change
 * and is cheap when nothing changed; updates run one at a time, the last one wins.
 */
export class PgPeerHosts {
  private readonly job: CoalescedJob;

  constructor(private readonly opts: {
    readonly postgres: { setPeers(peers: readonly PgPeer[]): Promise<boolean> };
    readonly peers: () => PgPeer[];
    readonly log: Logger;
  }) {
    this.job = new CoalescedJob({
      run: async () => { await this.opts.postgres.setPeers(this.opts.peers()); },
      // pg_hba.conf keeps its previous peers; the next change tries again.
      failed: (err) => {
        this.opts.log.warn({ decision: 'pg-hba-peers-failed', peers: this.opts.peers().map((p) => `${p.id}@${p.host}`), reason: errorMessage(err) }, 'could not update the peers in pg_hba.conf');
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
