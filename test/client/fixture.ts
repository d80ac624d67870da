// Three peers' APIs (real fastify servers on ephemeral ports) over a real cluster store (src/store)
// on the in-process consensus group: what the client follows, without PostgreSQL. Each API can be
// closed and reopened on its port, and each store member stopped (it then applies nothing and
// cannot give a linearizable read, as a peer cut off from the Raft leader).
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { storeAdminOperations } from '../../src/api/admin-ops.js';
import { createApi } from '../../src/api/server.js';
import type { WatchEvent } from '../../src/api/types.js';
import { ClusterStateMachine } from '../../src/store/state-machine.js';
import { InProcessGroup } from '../store/in-process-consensus.js';
import { ClusterStore } from '../../src/store/store.js';
import type { ClusterState, PeerInfo } from '../../src/model/index.js';
import { ADMIN_TOKEN, memoryMembership, MemoryStore, statusOf } from '../../tools/lib/memory-peer.js';
import { freePort } from '../../tools/lib/wait.js';
import type { ReloadableTls } from '../../src/tls/index.js';

export function peerInfo(id: string, pgPort = 1): PeerInfo {
  return { id, pgUrl: `postgres://127.0.0.1:${pgPort}/postgres`, apiUrl: `http://127.0.0.1:1/${id}`, host: '127.0.0.1' };
}

export interface ApiPeer {
  readonly id: string;
  readonly port: number;
  readonly url: string;
  readonly store: ClusterStore;
  app: FastifyInstance | null;
}

export class StoreShard {
  readonly group = new InProcessGroup();
  readonly peers: ApiPeer[] = [];
  private version = 0;

  static async create(ids: readonly string[] = ['a', 'b', 'c']): Promise<StoreShard> {
    const shard = new StoreShard();
    for (const id of ids) {
      const machine = new ClusterStateMachine();
      const store = new ClusterStore({ machine, consensus: shard.group.add(id, machine), sessionTimeoutMs: 60_000 });
      const port = await freePort();
      shard.peers.push({ id, port, url: `http://127.0.0.1:${port}`, store, app: null });
    }
    shard.group.elect(ids[0]!);
    return shard;
  }

  peer(id: string): ApiPeer {
    const p = this.peers.find((x) => x.id === id);
    if (p === undefined) throw new Error(`no peer ${id}`);
    return p;
  }

  get leader(): ClusterStore {
    return this.peers[0]!.store;
  }

  /** Commits `state` (compare-and-set on the last version) and waits until every running member applied it. */
  async put(state: ClusterState, summary = 'test'): Promise<number> {
    const { version } = await this.leader.putState(state, this.version, summary);
    this.version = version;
    await this.group.settle();
    return version;
  }

  /** Starts the API of `id`; with `tls`, HTTPS with that certificate (the peer's URL is then https://127.0.0.1:port). */
  async startApi(id: string, tls?: ReloadableTls): Promise<void> {
    const p = this.peer(id);
    if (p.app !== null) return;
    const store = p.store;
    const self = peerInfo(id);
    const app = await createApi({
      peerId: id,
      status: async () => {
        const { state, version } = await store.readState();
        const mem = new MemoryStore(state, store.activePeers());
        mem.version = version;
        return statusOf(self, mem);
      },
      state: () => store.readState(),
      history: (limit) => Promise.resolve(store.history(limit)),
      activePeers: () => Promise.resolve(store.activePeers()),
      admin: storeAdminOperations({ store, peerId: id, startRebuild: () => Promise.resolve({ peerId: id, started: true, message: 'started' }) }),
      membership: memoryMembership(this.peers.map((x) => x.id)),
      watch: (listener: (e: WatchEvent) => void) => store.on('state', (c) => { listener({ type: 'state', state: c.state, version: c.version }); }),
      adminToken: ADMIN_TOKEN,
      logger: pino({ level: 'silent' }),
      limits: { watchKeepaliveMs: 200 },
      ...(tls === undefined ? {} : { tls }),
    });
    await app.listen({ host: '127.0.0.1', port: p.port });
    p.app = app;
  }

  async stopApi(id: string): Promise<void> {
    const p = this.peer(id);
    const app = p.app;
    p.app = null;
    await app?.close();
  }

  async teardown(): Promise<void> {
    for (const p of this.peers) {
      await this.stopApi(p.id).catch(() => undefined);
      p.store.stop();
    }
  }
}
