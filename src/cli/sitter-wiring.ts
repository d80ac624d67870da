// The sitter's wiring: opens this peer's PostgreSQL, backup backend, Raft node and cluster store,
// puts the HTTP API around them, and hands them to a Sitter. It lives in cli (DESIGN.md, "Rooms"),
// so that src/peer never imports src/api. Nothing runs until the sitter's start().
import { mkdir, readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../log.js';
import { ApiMetrics, createApi, fetchPeerStatusHttp, raftMembership, storeAdminOperations, type AdminOperations, type WatchEvent } from '../api/index.js';
import { storeSettingsOperations } from '../api/settings-ops.js';
import { fetchPgSettingRows, localPgSettingRows, primaryCatalog } from '../peer/primary-catalog.js';
import { peerServerIdentity, ReloadableTls, type TlsSecureOptions } from '../tls/index.js';
import { backupRoutes } from '../backup/index.js';
import { BasebackupBackend } from '../backup/basebackup.js';
import { ZfsBackupBackend } from '../backup/zfs-backend.js';
import type { BackupBackend } from '../backup/types.js';
import { PostgresServer } from '../postgres/index.js';
import { RaftNode } from '../raft/node.js';
import { ClusterStateMachine, ClusterStore, raftConsensus } from '../store/index.js';
import { Zfs } from '../zfs/index.js';
import { FileFacts } from '../peer/facts.js';
import { HeldSourcePostgres } from '../peer/source-postgres.js';
import { pgPeersOf } from '../peer/pg-peers.js';
import { postgresPortRefused } from '../peer/peer-gone.js';
import { peerInfoOf, type SitterConfig } from '../peer/config.js';
import { ShardCredentials } from '../peer/credentials.js';
import { Sitter } from '../peer/sitter.js';
import { everyFrom } from '../peer/clock.js';
import { LoopLateness, ThreadTimesReader } from '../peer/loop-lateness.js';
import { ManateeError } from '../errors.js';
import { AdmClient } from './adm/client.js';
import { ScheduledRestartRunner } from './scheduled-restart.js';

/** Each API call of a scheduled restart (its steps wait for the shard by polling, each call is short). */
const SCHEDULED_RESTART_CALL_TIMEOUT_MS = 10_000;

/** Opens every part of one peer (nothing runs until start()). */
export async function openSitter(config: SitterConfig, log: Logger): Promise<Sitter> {
  await mkdir(config.dataDir, { recursive: true, mode: 0o755 });
  const self = peerInfoOf(config);
  // Read at each use (Raft hello, backup request, admin call): SIGHUP swaps in a rotation's set.
  const credentials = new ShardCredentials(config);
  // Checked before anything listens: a wrong, expired or foreign certificate stops the start.
  const tls = config.tls === undefined ? null : await ReloadableTls.open(config.tls, { expectedPeerId: config.peerId, log });
  const peerTls = tls === null ? undefined : (): TlsSecureOptions => tls.material.options;
  const pgDataDir = join(config.dataDir, 'pgdata');
  const postgres = await PostgresServer.open({
    dataDir: pgDataDir,
    runDir: join(config.dataDir, 'pgrun'),
    ...(config.postgres.bindir !== undefined ? { bindir: config.postgres.bindir } : {}),
    osUser: config.postgres.user,
    listenAddress: config.host,
    port: config.postgres.port,
    peers: pgPeersOf({ self, members: config.raft.members, state: null, active: [] }),
    ...(config.postgres.clientCidrs !== undefined ? { clientCidrs: config.postgres.clientCidrs } : {}),
    superuserPassword: credentials.rolePasswords('superuser')[0]!,
    replicationPassword: credentials.rolePasswords('replication')[0]!,
    startTimeoutMs: config.timeouts.pgStartTimeoutMs,
    ...(config.tls !== undefined ? { tls: config.tls } : {}),
    logger: log,
  });
  let zfs: Zfs | null = null;
  let backend: BackupBackend;
  if (config.backend === 'zfs' && config.zfs !== undefined) {
    zfs = new Zfs({ log });
    // A received copy is checked with this peer's own pg_controldata, as its PostgreSQL user.
    backend = new ZfsBackupBackend({
      zfs, dataset: config.zfs.dataset, mountpoint: pgDataDir, peerId: config.peerId, secret: () => credentials.secret, log, pgUser: config.postgres.user,
      ...(peerTls !== undefined ? { tls: peerTls } : {}),
      verify: { pgControldata: postgres.binaries.pgControldata, user: postgres.user },
    });
  } else {
    backend = new BasebackupBackend({ postgres, logger: log });
  }
  const hasPreviousData = await postgres.hasData();
  const facts = new FileFacts(join(config.dataDir, 'sitter-facts.json'));
  const initialFacts = await facts.read();

  const machine = new ClusterStateMachine();
  const peers: Record<string, string> = {};
  for (const m of config.raft.members) peers[m.id] = m.address;
  const node = await RaftNode.open({
    id: config.peerId,
    dataDir: join(config.dataDir, 'raft'),
    peers,
    initialVoters: config.raft.members.map((m) => m.id),
    secret: credentials.secret,
    acceptedSecrets: credentials.secrets().slice(1),
    ...(tls !== null ? { tls: tls.forTransport() } : {}),
    listen: { host: config.raft.listen, port: config.raft.port },
    stateMachine: machine,
    logger: log.child({ room: 'raft' }),
    tickMs: config.raft.tickMs,
    electionTicks: config.raft.electionTicks,
    heartbeatTicks: config.raft.heartbeatTicks,
  });
  // A stall of this process's event loop (which keeps its session) is logged with its cause: on the
  // Raft tick, no wake-up of its own; a quarter of the session timeout late or more.
  const threadTimes = new ThreadTimesReader();
  const lateness = new LoopLateness({
    tickMs: config.raft.tickMs,
    thresholdMs: Math.max(2 * config.raft.tickMs, Math.round(config.timeouts.sessionTimeoutMs / 4)),
    nowMs: () => performance.now(),
    times: () => threadTimes.read(),
    log: log.child({ room: 'peer' }),
  });
  node.every(config.raft.tickMs, () => { lateness.tick(node.lastTickLateMs()); });
  const store = new ClusterStore({
    machine,
    consensus: raftConsensus(node),
    sessionTimeoutMs: config.timeouts.sessionTimeoutMs,
    keepaliveIntervalMs: config.timeouts.keepaliveIntervalMs,
    log: log.child({ room: 'store' }),
    // A peer whose Raft and PostgreSQL ports both refuse is gone: its session expires at once.
    confirmPeerGone: (peer) => postgresPortRefused(peer),
  });

  // The API needs the sitter (status, rebuild); the sitter needs the API: bind late.
  let sitter: Sitter | null = null;
  const admin: AdminOperations = storeAdminOperations({
    store,
    peerId: config.peerId,
    startRebuild: (o) => {
      if (sitter === null) throw new ManateeError('MANATEE_ERR_UNAVAILABLE', 'the sitter is starting');
      return Promise.resolve(sitter.requestRebuild(o));
    },
    ownWal: async () => {
      const p = await postgres.walPositions();
      return { replayLsn: p.inRecovery ? p.replayLsn : null, receiveLsn: p.inRecovery ? p.receiveLsn : null };
    },
  });
  const extraPlugins =
    zfs !== null && config.zfs !== undefined
      ? [
          async (app: FastifyInstance): Promise<void> => {
            await app.register(backupRoutes, { zfs: zfs, dataset: config.zfs?.dataset ?? '', secret: credentials.secret, secrets: () => credentials.secrets(), log, requirePeerCertificate: tls !== null, ...(peerTls !== undefined ? { tlsRelay: peerTls } : {}) });
          },
        ]
      : [];
  const metrics = new ApiMetrics();
  const api = await createApi({
    peerId: config.peerId,
    status: () => {
      if (sitter === null) throw new ManateeError('MANATEE_ERR_UNAVAILABLE', 'the sitter is starting');
      return Promise.resolve(sitter.status());
    },
    state: () => store.readState(),
    history: (limit) => Promise.resolve(store.history(limit)),
    activePeers: () => Promise.resolve(store.activePeers()),
    activeTags: () => store.activeTags(),
    admin,
    membership: raftMembership(node),
    watch: (listener: (e: WatchEvent) => void) => {
      const offState = store.on('state', (c) => { listener({ type: 'state', state: c.state, version: c.version }); });
      const offPeers = store.on('peers', (c) => { listener({ type: 'peers', peers: c.peers }); });
      return () => {
        offState();
        offPeers();
      };
    },
    metrics,
    adminToken: config.adminToken,
    adminTokens: () => credentials.adminTokens(),
    logger: log,
    extraPlugins,
    ...(tls !== null ? {
      tls,
      // The peer's API must show its own certificate: of the CA, for the host dialled, bound to the peer asked.
      fetchPeerStatus: (apiUrl: string, timeoutMs: number, peerId?: string) =>
        fetchPeerStatusHttp(apiUrl, timeoutMs, { ...tls.material.options, ...(peerId !== undefined ? { checkServerIdentity: peerServerIdentity(peerId) } : {}) }),
    } : {}),
    config: {
      settings: storeSettingsOperations({
        store,
        catalog: () => primaryCatalog({
          self: config.peerId, state: () => store.getState().state, query: (sql) => postgres.query(sql),
          ...(peerTls !== undefined ? { fetchRows: (apiUrl: string) => fetchPgSettingRows(apiUrl, peerTls()) } : {}),
        }),
      }),
      pgSettingRows: () => localPgSettingRows((sql) => postgres.query(sql)),
    },
    pgOps: {
      reload: () => (sitter === null ? Promise.reject(new ManateeError('MANATEE_ERR_UNAVAILABLE', 'the sitter is starting')) : sitter.pgOps.reload()),
      restart: () => (sitter === null ? Promise.reject(new ManateeError('MANATEE_ERR_UNAVAILABLE', 'the sitter is starting')) : sitter.pgOps.restart()),
    },
  });
  // A rolling restart scheduled in the state (manatee-adm restart --at): run by the primary's
  // sitter when due, through its own API, as manatee-adm would.
  const caPem = config.tls === undefined ? null : await readFile(config.tls.caFile, 'utf8');
  const scheduledRestart = new ScheduledRestartRunner({
    selfId: config.peerId,
    store,
    client: () => new AdmClient({
      url: self.apiUrl, token: config.adminToken, timeoutMs: SCHEDULED_RESTART_CALL_TIMEOUT_MS, operator: `sitter ${config.peerId} (scheduled restart)`,
      ...(caPem === null || config.tls === undefined ? {} : { ca: { pem: caPem, source: config.tls.caFile } }),
    }),
    log: log.child({ room: 'scheduled-restart' }),
    every: everyFrom(node.every.bind(node)),
  });
  const edge = {
    prepare: async (): Promise<void> => { await api.ready(); },
    listen: async (): Promise<void> => {
      await api.listen({ host: config.api.listen, port: config.api.port });
      scheduledRestart.start();
    },
    close: (): Promise<void> => {
      scheduledRestart.stop();
      return api.close();
    },
  };
  // Other peers' PostgreSQL, as the replication role on one held connection (a rebuild's source).
  const sources = new HeldSourcePostgres({
    selfId: self.id,
    replicationUser: postgres.replicationUser,
    replicationPassword: () => postgres.currentReplicationPassword,
    timeoutMs: config.timeouts.pgHealthTimeoutMs,
    ...(peerTls !== undefined ? { ssl: peerTls } : {}),
  });
  sitter = new Sitter({ config, log, node, store, postgres, sources, backend, zfs, facts, initialFacts, hasPreviousData, edge, metrics, tls, credentials });
  log.info({ peer: self, backend: config.backend, hasPreviousData, rebuiltFrom: initialFacts.rebuiltFrom }, 'sitter opened');
  return sitter;
}
