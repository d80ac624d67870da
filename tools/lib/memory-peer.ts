// The reference implementation of the API's dependencies for tests: an in-memory cluster
// state with a compare-and-set version and a history, the real admin operations
// (src/api/admin-ops.ts over src/peer/admin.ts) on top, and a status shaped as a sitter's.
// Not a mock of an outside system: it is the ApiDeps interface implemented over plain data.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { storeAdminOperations, type AdminStateStore } from '../../src/api/admin-ops.js';
import { raftMembership, type MembershipNode } from '../../src/api/membership.js';
import type { ApiDeps, MembershipOperations, RebuildResult, VersionedState, WatchEvent } from '../../src/api/types.js';
import { ManateeError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';
import { roleIn, type SitterStatus, type ClusterState, type HistoryEntry, type PeerInfo } from '../../src/model/index.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export function peer(id: string, apiUrl = `http://127.0.0.1:1/${id}`): PeerInfo {
  return { id, pgUrl: `postgres://postgres@127.0.0.1:5432/${id}`, apiUrl, host: '127.0.0.1' };
}

export function threePeerState(peers: readonly PeerInfo[], deposed: readonly PeerInfo[] = []): ClusterState {
  return {
    generation: 3,
    primary: peers[0]!,
    sync: peers[1]!,
    async: peers.slice(2),
    deposed,
    initWal: '0/3000060',
  };
}

/** A cluster store in memory: versions, compare-and-set, history, sessions, and a switch to make it unavailable. */
export class MemoryStore implements AdminStateStore {
  state: ClusterState | null;
  version = 0;
  readonly entries: HistoryEntry[] = [];
  active: PeerInfo[];
  /** When set, every call fails as a store without a Raft leader does. */
  unavailable = false;
  /** Called before a compare-and-set is checked: lets a test write "concurrently". */
  beforePut: (() => void) | null = null;
  /** GET /watch's subscribers: each commit and each setActive() is delivered to them. */
  readonly watchers = new Set<(e: WatchEvent) => void>();

  constructor(state: ClusterState | null, active: readonly PeerInfo[]) {
    this.state = state;
    this.active = [...active];
    if (state !== null) this.commit(state, 'cluster setup for normal (multi-peer) mode');
  }

  private check(): void {
    if (this.unavailable) throw new ManateeError('MANATEE_ERR_RAFT_NO_LEADER', 'no Raft leader is known');
  }

  commit(state: ClusterState, summary: string): number {
    this.state = state;
    this.version += 1;
    this.entries.push({ version: this.version, time: new Date().toISOString(), generation: state.generation, summary, state });
    for (const w of this.watchers) w({ type: 'state', state, version: this.version });
    return this.version;
  }

  setActive(peers: readonly PeerInfo[]): void {
    this.active = [...peers];
    for (const w of this.watchers) w({ type: 'peers', peers: this.active });
  }

  watch(listener: (e: WatchEvent) => void): () => void {
    this.watchers.add(listener);
    return () => { this.watchers.delete(listener); };
  }

  readState(): Promise<VersionedState> {
    this.check();
    return Promise.resolve({ state: this.state, version: this.version });
  }

  putState(state: ClusterState, expectVersion: number, summary: string): Promise<{ version: number }> {
    this.check();
    this.beforePut?.();
    if (expectVersion !== this.version) {
      return Promise.reject(
        new ManateeError('MANATEE_ERR_STORE_VERSION_MISMATCH', `cluster state version mismatch: expected version ${expectVersion}, current version is ${this.version}`),
      );
    }
    return Promise.resolve({ version: this.commit(state, summary) });
  }

  activePeers(): Promise<readonly PeerInfo[]> {
    this.check();
    return Promise.resolve(this.active);
  }

  history(limit: number): Promise<readonly HistoryEntry[]> {
    this.check();
    return Promise.resolve(this.entries.slice(-limit));
  }
}

/** What one sitter would report, computed from the store's state. */
export function statusOf(self: PeerInfo, store: MemoryStore): SitterStatus {
  const { role, upstream } = roleIn(store.state, self.id);
  const state = store.state;
  const downstream =
    state === null
      ? null
      : role === 'primary'
        ? state.sync
        : role === 'sync'
          ? (state.async[0] ?? null)
          : role === 'async'
            ? (state.async[state.async.findIndex((p) => p.id === self.id) + 1] ?? null)
            : null;
  const online = role !== 'deposed' && role !== 'unassigned';
  return {
    peer: self,
    role,
    sitterPid: process.pid,
    postgresPid: online ? 4242 : null,
    backend: 'basebackup',
    postgres: {
      online,
      healthy: online,
      error: online ? null : 'not running',
      inRecovery: online ? role !== 'primary' : null,
      writable: role === 'primary',
      currentLsn: online ? '0/3000148' : null,
      receiveLsn: upstream === null ? null : '0/3000148',
      replayLsn: upstream === null ? null : '0/3000148',
      walReceiver: upstream === null ? null : 'streaming',
      lastCheckAt: new Date().toISOString(),
      checkLatencyMs: 2,
    },
    replication:
      downstream === null
        ? []
        : [
            {
              applicationName: downstream.id,
              clientAddr: '127.0.0.1',
              state: 'streaming',
              syncState: role === 'primary' ? 'sync' : 'async',
              sentLsn: '0/3000148',
              writeLsn: '0/3000148',
              flushLsn: '0/3000148',
              replayLsn: '0/3000100',
              replayLagBytes: 72,
            },
          ],
    raft: { id: self.id, term: 2, leader: state?.primary.id ?? null, role: 'follower', commit: 10, applied: 10 },
    state,
    stateVersion: store.version,
    activePeers: store.active,
    lastDecision: {
      kind: 'none',
      reason: `no action: I am the ${role}`,
      generation: state?.generation ?? null,
      at: new Date().toISOString(),
    },
    rebuild: { running: false, reason: null, source: null, progress: null, lastError: null, lastResult: null },
    startedAt: new Date().toISOString(),
    loop: { lastEvaluatedAt: new Date().toISOString(), evaluatingSince: null, lastProgressAt: null, stuckAfterMs: 300_000 },
    heartbeat: online
      ? {
          primaryId: state?.primary.id ?? null,
          generation: state?.generation ?? null,
          writtenAt: new Date().toISOString(),
          lagSeconds: role === 'primary' ? 0 : 0.5,
          checkedAt: new Date().toISOString(),
          error: null,
        }
      : { primaryId: null, generation: null, writtenAt: null, lagSeconds: null, checkedAt: null, error: 'PostgreSQL is not serving' },
  };
}

/**
 * A Raft configuration in memory with the node's membership methods and its validation rules
 * (no duplicate, no removal of the last voter, promote only a learner), under the real
 * raftMembership() adapter.
 */
export class MemoryRaftNode implements MembershipNode {
  voters: string[];
  learners: string[] = [];
  addresses: Record<string, string> = {};
  /** When set, every change fails as a node without a leader does. */
  noLeader = false;

  constructor(voters: readonly string[]) {
    this.voters = [...voters];
    for (const v of voters) this.addresses[v] = `127.0.0.1:${7000 + this.voters.indexOf(v)}`;
  }

  status() {
    return { members: { voters: this.voters, learners: this.learners }, addresses: this.addresses };
  }

  private check(): void {
    if (this.noLeader) throw new ManateeError('MANATEE_ERR_RAFT_NO_LEADER', 'node a knows no leader (term 3)');
  }

  addLearner(id: string, address: string): Promise<unknown> {
    this.check();
    if (this.voters.includes(id) || this.learners.includes(id)) return Promise.reject(new ManateeError('MANATEE_ERR_RAFT_CONF_CHANGE_INVALID', `invalid conf change: ${id} is already a member`));
    this.learners.push(id);
    this.addresses[id] = address;
    return Promise.resolve(this.status().members);
  }

  promote(id: string): Promise<unknown> {
    this.check();
    if (!this.learners.includes(id)) return Promise.reject(new ManateeError('MANATEE_ERR_RAFT_CONF_CHANGE_INVALID', `invalid conf change: ${id} is not a learner`));
    this.learners = this.learners.filter((l) => l !== id);
    this.voters.push(id);
    return Promise.resolve(this.status().members);
  }

  remove(id: string): Promise<unknown> {
    this.check();
    if (this.voters.length === 1 && this.voters[0] === id) return Promise.reject(new ManateeError('MANATEE_ERR_RAFT_CONF_CHANGE_INVALID', 'invalid conf change: removing the last voter'));
    this.voters = this.voters.filter((v) => v !== id);
    this.learners = this.learners.filter((v) => v !== id);
    return Promise.resolve(this.status().members);
  }
}

export function memoryMembership(voters: readonly string[], node = new MemoryRaftNode(voters)): MembershipOperations {
  return raftMembership(node);
}

export interface MemoryDepsOptions {
  readonly self: PeerInfo;
  readonly store: MemoryStore;
  readonly logger?: Logger;
  readonly startRebuild?: () => Promise<RebuildResult>;
  readonly raft?: MemoryRaftNode;
  readonly limits?: ApiDeps['limits'];
}

export function memoryDeps(opts: MemoryDepsOptions): ApiDeps {
  const { self, store } = opts;
  return {
    peerId: self.id,
    status: async () => {
      await store.readState(); // fails like the real status when the store is unavailable
      return statusOf(self, store);
    },
    state: () => store.readState(),
    history: (limit) => store.history(limit),
    activePeers: () => store.activePeers(),
    admin: storeAdminOperations({
      store,
      peerId: self.id,
      startRebuild: opts.startRebuild ?? (() => Promise.resolve({ peerId: self.id, started: true, message: `rebuild of ${self.id} started` })),
    }),
    membership: memoryMembership(['a', 'b', 'c'], opts.raft),
    watch: (listener) => store.watch(listener),
    adminToken: ADMIN_TOKEN,
    logger: opts.logger ?? pino({ level: 'silent' }),
    ...(opts.limits === undefined ? {} : { limits: opts.limits }),
  };
}

/** A logger whose JSON lines a test can read back. */
export function capturingLogger(): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  const logger = pino({ level: 'info' }, sink);
  return {
    logger,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}
