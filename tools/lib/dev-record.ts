// The development shard's record (<dir>/cluster.json): its secrets, its peers with their ports
// and files, and every process that tools/dev-cluster started or found (pid + start time), so
// that `down` stops them all, whichever command started them.
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManateeError } from '../../src/errors.js';
import { commandLine, recordProcess, type ProcessRecord } from './processes.js';

/** A dev-cluster failure that names what was wrong; printed as `dev-cluster: <code>: <message>`. */
export class DevClusterError extends ManateeError {}

export const DEFAULT_PORT_BASE = 5432;
/** Peer i uses base+10i (PostgreSQL), +1 (API), +2 (Raft): ports 10 apart, as Joyent's mkdevsitters. */
export const PORT_STEP = 10;
/** The most peers `add` makes: the Raft group takes 15 members, and the ports must stay below 65536. */
export const PEERS_MAX = 9;
export const HOST = '127.0.0.1';

export interface DevPeer {
  readonly id: string;
  readonly index: number;
  readonly configPath: string;
  readonly apiUrl: string;
  readonly pgPort: number;
  readonly apiPort: number;
  readonly raftPort: number;
  readonly logPath: string;
  readonly dataDir: string;
}

export type ProcessKind = 'sitter' | 'postmaster';

export interface RecordedProcess extends ProcessRecord {
  readonly kind: ProcessKind;
  readonly peer: string;
}

export interface ClusterRecord {
  readonly version: 2;
  readonly backend: 'zfs' | 'basebackup';
  readonly portBase: number;
  readonly secret: string;
  readonly adminToken: string;
  readonly superuserPassword: string;
  readonly peers: DevPeer[];
  /** Every process started or seen, newest last; `down` signals those that still run. */
  processes: RecordedProcess[];
  zfs?: { pool: string; file: string; startedDaemon: ProcessRecord | null };
  /**
   * TLS everywhere (the default of `up`; absent in a shard made with --no-tls or before TLS):
   * the CA and each peer's key and certificate, made as manatee-adm certs makes them, in certsDir.
   */
  tls?: { certsDir: string; caFile: string };
}

const caPems = new Map<string, string>();

/** The shard CA's certificate (PEM) that the peers' https APIs are checked against; undefined without TLS. */
export function caPemOf(r: ClusterRecord): string | undefined {
  if (r.tls === undefined) return undefined;
  let pem = caPems.get(r.tls.caFile);
  if (pem === undefined) {
    try {
      pem = readFileSync(r.tls.caFile, 'utf8');
    } catch (err) {
      throw new DevClusterError('MANATEE_ERR_DEV_RECORD', `cannot read the shard CA ${r.tls.caFile}: ${(err as Error).message}`);
    }
    caPems.set(r.tls.caFile, pem);
  }
  return pem;
}

export function portsOf(portBase: number, index: number): { pg: number; api: number; raft: number } {
  const pg = portBase + PORT_STEP * index;
  return { pg, api: pg + 1, raft: pg + 2 };
}

/** A port base from an option or the environment: the ports of PEERS_MAX peers must fit. */
export function parsePortBase(raw: string, what: string): number {
  const top = 65535 - PORT_STEP * (PEERS_MAX - 1) - 2;
  if (!/^\d+$/.test(raw) || Number(raw) < 1024 || Number(raw) > top) {
    throw new DevClusterError('MANATEE_ERR_DEV_USAGE', `${what} ${JSON.stringify(raw)}: expected a port from 1024 to ${top} (peer i uses base+${PORT_STEP}i, +1 and +2)`);
  }
  return Number(raw);
}

/** The zfs pool of a dev shard: one per port base, so that two dev shards never share one. */
export function zpoolName(portBase: number): string {
  return portBase === DEFAULT_PORT_BASE ? 'manatee-dev' : `manatee-dev-${portBase}`;
}

export function recordPath(dir: string): string {
  return join(dir, 'cluster.json');
}

interface LegacyRecord {
  readonly backend: 'zfs' | 'basebackup';
  readonly secret: string;
  readonly adminToken: string;
  readonly superuserPassword: string;
  readonly peers: { id: string; configPath: string; apiUrl: string; pgPort: number; logPath: string; dataDir: string }[];
  readonly sitterPids: Record<string, number>;
  readonly zfs?: { pool: string; file: string; startedDaemonPid: number | null };
}

/**
 * A record written by the dev-cluster before processes had start times: a pid is taken only
 * while the process with it is that peer's sitter (its command line names the config file).
 */
function upgradeLegacy(r: LegacyRecord): ClusterRecord {
  const processes: RecordedProcess[] = [];
  for (const p of r.peers) {
    const pid = r.sitterPids[p.id];
    const rec = pid === undefined ? null : recordProcess(pid);
    if (pid !== undefined && rec !== null && commandLine(pid)?.includes(p.configPath) === true) processes.push({ ...rec, kind: 'sitter', peer: p.id });
  }
  const daemonPid = r.zfs?.startedDaemonPid ?? null;
  const daemon = daemonPid === null ? null : recordProcess(daemonPid);
  return {
    version: 2,
    backend: r.backend,
    portBase: DEFAULT_PORT_BASE,
    secret: r.secret,
    adminToken: r.adminToken,
    superuserPassword: r.superuserPassword,
    peers: r.peers.map((p, index) => {
      const ports = portsOf(DEFAULT_PORT_BASE, index);
      return { ...p, index, apiPort: ports.api, raftPort: ports.raft };
    }),
    processes,
    ...(r.zfs === undefined ? {} : { zfs: { pool: r.zfs.pool, file: r.zfs.file, startedDaemon: daemon !== null && commandLine(daemon.pid)?.[0]?.endsWith('zfs-fuse') === true ? daemon : null } }),
  };
}

export function readRecord(dir: string): ClusterRecord | null {
  const path = recordPath(dir);
  if (!existsSync(path)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new DevClusterError('MANATEE_ERR_DEV_RECORD', `${path} is not valid JSON (${(err as Error).message}): remove ${dir} by hand after stopping its processes`);
  }
  const r = parsed as Partial<ClusterRecord> & { sitterPids?: unknown };
  if (r.version === 2) return r as ClusterRecord;
  if (typeof r.sitterPids === 'object' && r.sitterPids !== null) return upgradeLegacy(parsed as LegacyRecord);
  throw new DevClusterError('MANATEE_ERR_DEV_RECORD', `${path} is not a dev-cluster record (no version 2, no sitterPids)`);
}

/** Written whole (temporary file, then rename): a crash never leaves half a record. */
export function writeRecord(dir: string, r: ClusterRecord): void {
  const path = recordPath(dir);
  writeFileSync(`${path}.tmp`, JSON.stringify(r, null, 2), { mode: 0o600 });
  chmodSync(`${path}.tmp`, 0o600);
  renameSync(`${path}.tmp`, path);
}

export function findPeer(r: ClusterRecord, id: string): DevPeer {
  const p = r.peers.find((x) => x.id === id);
  if (p === undefined) {
    throw new DevClusterError('MANATEE_ERR_DEV_UNKNOWN_PEER', `no peer ${JSON.stringify(id)} in this dev shard: its peers are ${r.peers.map((x) => x.id).join(', ')}`);
  }
  return p;
}

/** The pgdata directory the sitter of `p` gives PostgreSQL (src/peer: `<dataDir>/pgdata`). */
export function pgdataOf(p: DevPeer): string {
  return join(p.dataDir, 'pgdata');
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Merges `extra` into `target` object by object (arrays and other values replace). */
export function mergeConfig(target: Record<string, unknown>, extra: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(extra)) {
    const cur = target[k];
    if (isPlainObject(cur) && isPlainObject(v)) {
      const copy = { ...cur };
      mergeConfig(copy, v);
      target[k] = copy;
    } else {
      target[k] = v;
    }
  }
}

/**
 * MANATEE_DEV_SITTER_CONFIG: a JSON object merged into every peer's config.json, object by object
 * (e.g. '{"raft":{"tickMs":100,"electionTicks":5}}' keeps the raft section's ports and members),
 * for benchmarks that compare settings.
 */
export function extraSitterConfig(raw: string | undefined): Record<string, unknown> {
  if (raw === undefined || raw === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (err) {
    throw new DevClusterError('MANATEE_ERR_DEV_SITTER_CONFIG', `MANATEE_DEV_SITTER_CONFIG is not JSON: ${(err as Error).message}`);
  }
  if (!isPlainObject(v)) throw new DevClusterError('MANATEE_ERR_DEV_SITTER_CONFIG', `MANATEE_DEV_SITTER_CONFIG must be a JSON object (got ${JSON.stringify(v)})`);
  return v;
}
