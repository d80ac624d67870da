// One chaos run from start to verdict: hosts, peers, workload, nemesis, healing, final reads,
// the checker, and the results directory. Used by run.ts (npm run chaos) and by chaos-short.test.ts.
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { check, type CheckResult } from './checker.js';
import { sitterBundle } from '../../tools/lib/sitter-bundle.js';
import { Cluster } from './cluster.js';
import { FAULT_KINDS, SHORT_RUN_KINDS, ZFS_ONLY_KINDS, type FaultKind, type FaultRecord, type FinalRead, type Op, type StatusSample } from './history.js';
import { createNetwork, destroyNetwork, NAME_PREFIX } from './net.js';
import { CPU_CGROUP_ROOT, Nemesis, releaseCgroup, shardWhole } from './nemesis.js';
import { Rng } from './rng.js';
import { judgeRegister, opKey, REGISTER_TABLE_SQL, RegisterWorkload, type LinearizabilityVerdict, type RegisterOperation, type SentTo } from './register.js';
import { renderTimeline } from './timeline.js';
import { TABLE, Workload } from './workload.js';
import { createChaosPools, destroyChaosPools, leftoverPools, type ChaosPools } from './zfs-pools.js';

export type ChaosBackend = 'basebackup' | 'zfs';
export const BACKENDS: readonly ChaosBackend[] = ['basebackup', 'zfs'];
/** Each host's pool (a sparse file: only what is written takes space). */
const POOL_SIZE_MB = 2048;

/** `writes`: unique inserts, judged by "nothing lost"; `register`: read / write / cas, judged by linearizability. */
export type WorkloadKind = 'writes' | 'register';
export const WORKLOAD_KINDS: readonly WorkloadKind[] = ['writes', 'register'];

export function parseWorkloads(list: string): WorkloadKind[] {
  const kinds = list.split(',').map((k) => k.trim()).filter((k) => k !== '');
  const bad = kinds.filter((k) => !(WORKLOAD_KINDS as readonly string[]).includes(k));
  if (bad.length > 0 || kinds.length === 0) throw new Error(`unknown workload ${bad.join(', ') || '(none)'}; expected a comma-separated list of ${WORKLOAD_KINDS.join(', ')}`);
  return [...new Set(kinds)] as WorkloadKind[];
}

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface ChaosOptions {
  /** How long faults are injected, in seconds. */
  readonly timeS: number;
  readonly seed: number;
  readonly faults: readonly FaultKind[];
  readonly peers: number;
  /** `zfs`: each peer's data in a zfs-fuse dataset (one pool per host), bootstrapped and rebuilt by zfs send/recv. */
  readonly backend: ChaosBackend;
  readonly writers: number;
  readonly readers: number;
  readonly workloads: readonly WorkloadKind[];
  /** Clients of the register workload. */
  readonly registerClients: number;
  /** Results go to <resultsDir>/<timestamp>-seed<seed>/. */
  readonly resultsDir: string;
  readonly sessionTimeoutMs: number;
  /** A gap between successful writes at least this long is reported as unavailability. */
  readonly gapMs: number;
  /** Go on past timeS (by at most extraS) until every chosen kind of fault was injected once. */
  readonly eachKind: boolean;
  readonly extraS: number;
  /** Keep the peers' data directories after the run (for debugging). */
  readonly keepData: boolean;
  /** TLS everywhere (a shard CA and a certificate per peer, as a real shard runs); false: plain TCP. */
  readonly tls: boolean;
  readonly log: (line: string) => void;
}

export const DEFAULT_OPTIONS: Omit<ChaosOptions, 'seed' | 'log'> = {
  timeS: 300,
  faults: SHORT_RUN_KINDS,
  peers: 3,
  backend: 'basebackup',
  writers: 4,
  readers: 1,
  workloads: WORKLOAD_KINDS,
  registerClients: 3,
  resultsDir: join(REPO_ROOT, 'results'),
  sessionTimeoutMs: 3000,
  gapMs: 1000,
  eachKind: true,
  extraS: 600,
  keepData: false,
  tls: true,
};

export interface ChaosSummary {
  readonly valid: boolean;
  readonly problems: readonly string[];
  readonly seed: number;
  readonly replay: string;
  readonly resultsDir: string;
  readonly durationS: number;
  readonly workloadStartMs: number;
  readonly faults: { readonly total: number; readonly byKind: Record<string, number>; readonly injected: Record<string, number>; readonly missingKinds: readonly string[] };
  readonly stuck: number;
  readonly sitterExitsWithoutFault: number;
  readonly finalPrimary: string | null;
  readonly check: CheckResult;
  /** The linearizability verdict of each workload that is judged by it. */
  readonly linearizability: Partial<Record<WorkloadKind, LinearizabilityVerdict>>;
}

/** The checker's time budget for a register history (each key is short, so this is generous). */
const REGISTER_CHECK_BUDGET_MS = 120_000;
const MAX_REGISTER_OPS = 500_000;

const MAX_OPS = 2_000_000;
const MAX_SAMPLES = 50_000;
const MAX_OBSERVATIONS = 500_000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000, query_timeout: 30_000 });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

class Jsonl {
  private readonly stream: WriteStream;
  constructor(path: string) {
    this.stream = createWriteStream(path, { flags: 'a' });
  }
  write(o: unknown): void {
    this.stream.write(`${JSON.stringify(o)}\n`);
  }
  close(): Promise<void> {
    return new Promise((r) => this.stream.end(r));
  }
}

export function replayCommand(o: ChaosOptions): string {
  const faults = o.faults.length === FAULT_KINDS.length ? '' : ` --faults ${o.faults.join(',')}`;
  return `npm run chaos -- --seed ${o.seed} --time ${o.timeS}${faults} --workload ${o.workloads.join(',')} --backend ${o.backend} --peers ${o.peers} --writers ${o.writers} --readers ${o.readers} --register-clients ${o.registerClients} --session-timeout-ms ${o.sessionTimeoutMs}${o.tls ? '' : ' --no-tls'}`;
}

function workDirOf(prefix: string): string {
  return join('/tmp', `manatee-chaos-${prefix}`);
}

/** The pid of the harness that owns a run's prefix, while it is alive. */
function ownerPid(prefix: string): number | null {
  try {
    const pid = Number(readFileSync(join(workDirOf(prefix), 'harness.pid'), 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 1) return null;
    process.kill(pid, 0);
    return pid;
  } catch {
    return null;
  }
}

/** Whether `prefix` belongs to a chaos run of another process that is still going (e.g. another engineer's, on the same machine). */
export function ownedByAnotherLiveRun(prefix: string): boolean {
  const owner = ownerPid(prefix);
  return owner !== null && owner !== process.pid;
}

/** Prefixes of data directories in /tmp left by runs (a crashed run may leave one without namespaces). */
export function leftoverWorkDirs(): string[] {
  return readdirSync('/tmp').map((n) => /^manatee-chaos-(mjc[0-9a-f]{5})$/.exec(n)?.[1]).filter((p): p is string => p !== undefined);
}

/** The cpu cgroups of slow-io faults that a run of `prefix` left behind. */
async function leftoverCgroups(prefix: string): Promise<string[]> {
  const names = await readdir(CPU_CGROUP_ROOT).catch(() => [] as string[]);
  return names.filter((n) => n.startsWith(`lc-${prefix}-`)).map((n) => join(CPU_CGROUP_ROOT, n));
}

/** Removes what crashed runs left behind: processes in their namespaces, the namespaces, bridges and data directories. */
export async function cleanupLeftovers(prefixes: readonly string[], log: (l: string) => void): Promise<void> {
  for (const prefix of prefixes) {
    const owner = ownerPid(prefix);
    if (owner !== null && owner !== process.pid) {
      log(`cleanup: ${prefix} belongs to a chaos run that is still going (pid ${owner}); left alone`);
      continue;
    }
    for (const line of await destroyNetwork(prefix)) log(`cleanup: ${line}`);
    const work = workDirOf(prefix);
    for (const group of await leftoverCgroups(prefix)) {
      const err = await releaseCgroup(group);
      log(`cleanup: ${err === '' ? 'removed' : `could not remove (${err})`} cgroup ${group}`);
    }
    const pools = await leftoverPools(prefix);
    const failed = await destroyChaosPools(pools);
    if (pools.length > 0) log(`cleanup: destroyed zfs pools ${pools.join(', ')}${failed.length > 0 ? ` (failed: ${failed.join('; ')})` : ''}`);
    rmSync(work, { recursive: true, force: true });
    log(`cleanup: removed ${work}`);
  }
}

export async function runChaos(options: ChaosOptions): Promise<ChaosSummary> {
  // The disk faults need zfs: on basebackup they are left out (and said so).
  const skipped = options.backend === 'zfs' ? [] : options.faults.filter((k) => ZFS_ONLY_KINDS.includes(k));
  const o: ChaosOptions = { ...options, faults: options.faults.filter((k) => !skipped.includes(k)) };
  if (o.faults.length === 0) throw new Error(`no fault kinds left: ${skipped.join(', ')} need --backend zfs`);
  if (skipped.length > 0) o.log(`chaos: ${skipped.join(', ')} need --backend zfs; left out`);
  const prefix = `${NAME_PREFIX}${randomBytes(3).toString('hex').slice(0, 5)}`;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const dir = join(o.resultsDir, `${stamp}-seed${o.seed}`);
  const workDir = workDirOf(prefix);
  mkdirSync(join(dir, 'peers'), { recursive: true });
  mkdirSync(workDir, { recursive: true, mode: 0o755 });
  writeFileSync(join(workDir, 'harness.pid'), `${process.pid}\n`);
  const rng = new Rng(o.seed);
  const nemesisRng = rng.fork(1000);
  const netRng = rng.fork(2000);
  const writes = o.workloads.includes('writes');
  const register = o.workloads.includes('register');
  const writers = writes ? o.writers : 0;
  const readers = writes ? o.readers : 0;
  const registerClients = register ? o.registerClients : 0;
  const clientSeeds = Array.from({ length: o.writers + o.readers + o.registerClients }, (_, i) => rng.fork(i));
  const now = (): number => Date.now();
  const started = now();
  o.log(`chaos: seed ${o.seed}, results in ${dir}`);
  writeFileSync(join(dir, 'seed'), `${o.seed}\n`);

  const history = new Jsonl(join(dir, 'history.jsonl'));
  const faultLog = new Jsonl(join(dir, 'faults.jsonl'));
  const nemesisLog = new Jsonl(join(dir, 'nemesis.jsonl'));
  const statusLog = new Jsonl(join(dir, 'status.jsonl'));
  const registerLog = new Jsonl(join(dir, 'register-history.jsonl'));
  const ops: Op[] = [];
  const registerOps: RegisterOperation[] = [];
  const registerSentTo = new Map<string, SentTo>();
  const faults: FaultRecord[] = [];
  const samples: StatusSample[] = [];
  const observations: { client: number; atMs: number; generation: number }[] = [];
  let sitterExits = 0;

  let cluster: Cluster | null = null;
  let pools: ChaosPools | null = null;
  let nemesisRef: Nemesis | null = null;
  let workloadRef: Workload | null = null;
  let registerRef: RegisterWorkload | null = null;
  let monitorRef: Promise<void> | null = null;
  let monitoring = true;
  /**
   * Stops the clients (each closes its client library and pool) and the status monitor, on success
   * and on failure alike: nothing of theirs may go on writing to the closed logs or keep the process alive.
   */
  const stopClients = async (): Promise<void> => {
    monitoring = false;
    await Promise.all([workloadRef?.halt(), registerRef?.halt()]);
    await monitorRef;
  };
  // One cleanup, awaited by every caller: a signal's cleanup and the run's own end may overlap,
  // and the process must not exit before the pools and namespaces are gone.
  let cleaning: Promise<void> | null = null;
  const cleanup = (): Promise<void> => {
    cleaning ??= doCleanup();
    return cleaning;
  };
  const doCleanup = async (): Promise<void> => {
    nemesisRef?.halt();
    await nemesisRef?.releaseAll().catch(() => undefined);
    await stopClients().catch((err: unknown) => { o.log(`chaos: stopping the clients failed: ${String(err)}`); });
    if (cluster !== null) await cluster.stopAll(10_000).catch(() => undefined);
    await destroyNetwork(prefix).catch((err: unknown) => { o.log(`chaos: cleanup of ${prefix} failed: ${String(err)}`); });
    if (pools !== null) {
      // Every process on them is gone with the namespaces; the pools go before the directory.
      const failed = await pools.destroy().catch((err: unknown) => [String(err)]);
      if (failed.length > 0) o.log(`chaos: destroying the zfs pools failed: ${failed.join('; ')} (npm run chaos -- cleanup retries)`);
    }
    if (!o.keepData || pools !== null) rmSync(workDir, { recursive: true, force: true });
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    o.log(`chaos: ${sig}: removing the peers, namespaces and data of ${prefix}`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const ids = Array.from({ length: o.peers }, (_, i) => `peer${i + 1}`);
    // A spare host for the peers that membership changes add.
    const hostIds = o.faults.includes('membership') ? [...ids, 'spare1'] : ids;
    const net = await createNetwork(prefix, hostIds, () => netRng.int(0, 1_000_000));
    o.log(`chaos: network ${net.cidr}, namespaces ${net.hosts.map((h) => `${h.ns}=${h.address}`).join(' ')}`);
    if (o.backend === 'zfs') pools = await createChaosPools(prefix, hostIds, workDir, POOL_SIZE_MB, o.log);
    const poolsNow = pools;
    cluster = new Cluster(net, {
      backend: o.backend,
      ...(poolsNow !== null ? { poolOf: (h: string) => poolsNow.poolOf(h) } : {}),
      initialPeers: ids.length,
      repoRoot: REPO_ROOT,
      sitterScript: await sitterBundle(),
      workDir,
      logsDir: join(dir, 'peers'),
      secret: randomBytes(24).toString('hex'),
      adminToken: randomBytes(24).toString('hex'),
      superuserPassword: randomBytes(12).toString('hex'),
      sessionTimeoutMs: o.sessionTimeoutMs,
      raftTickMs: 50,
      raftElectionTicks: 20,
      tls: o.tls,
    });
    const c = cluster;
    const peerConfigs = (await c.writeConfigs()).map((cfg) => ({ ...cfg, secret: '(random per run)', adminToken: '(random per run)', postgres: { ...(cfg['postgres'] as object), superuserPassword: '(random per run)' } }));
    const { log: _log, ...printable } = o;
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ options: printable, prefix, network: net, peers: peerConfigs, replay: replayCommand(o) }, null, 2));
    for (const p of c.peers) c.start(p.id);

    const nemesis = new Nemesis(c, {
      kinds: o.faults,
      sessionTimeoutMs: o.sessionTimeoutMs,
      quietMs: [2000, 5000],
      holdMs: [Math.max(2000, o.sessionTimeoutMs), o.sessionTimeoutMs * 4],
      recoveryTimeoutMs: 180_000,
    }, nemesisRng, {
      fault: (f) => {
        faults.push(f);
        faultLog.write(f);
        // In the operations' histories too, with its start and heal, so that each reads on its own.
        history.write({ event: 'fault', ...f });
        registerLog.write({ event: 'fault', ...f });
        o.log(`chaos: fault #${f.seq} ${f.kind} [${f.targets.join(', ')}] ${((f.healedAtMs - f.startedAtMs) / 1000).toFixed(1)} s: ${f.detail}`);
      },
      note: (e) => {
        nemesisLog.write({ atMs: now(), ...e });
        if (e['event'] === 'sitter-exited') sitterExits++;
        if (e['event'] === 'stuck' || e['event'] === 'sitter-exited') o.log(`chaos: ${JSON.stringify(e)}`);
      },
    }, now);

    nemesisRef = nemesis;
    o.log('chaos: waiting for the shard to be whole (writable primary, sync, async)');
    if (!(await nemesis.awaitWhole(300_000))) throw new Error('the shard never became whole at start-up; see the peers\' logs');
    const first = await shardWhole(c);
    await withClient(c.pgUrl(first.primary!), async (pgc) => {
      await pgc.query(`CREATE TABLE IF NOT EXISTS ${TABLE} (id bigint PRIMARY KEY, client int NOT NULL, peer text NOT NULL, generation int NOT NULL)`);
      await pgc.query(REGISTER_TABLE_SQL);
    });
    o.log(`chaos: shard whole after ${((now() - started) / 1000).toFixed(0)} s; primary ${first.primary}; workload and nemesis start`);

    // The status monitor: what every peer said, once a second (the picture's primary lane).
    const monitor = (async () => {
      while (monitoring) {
        const all = await c.statuses(900);
        const sample: StatusSample = {
          atMs: now(),
          peers: c.peers.map((p) => {
            const s = all.get(p.id) ?? null;
            return { id: p.id, role: s?.role ?? null, generation: s?.state?.generation ?? null, writable: s?.postgres.writable ?? false };
          }),
        };
        if (samples.length < MAX_SAMPLES) samples.push(sample);
        statusLog.write(sample);
        await sleep(1000);
      }
    })();
    monitorRef = monitor;

    const workload = new Workload(c, {
      writers,
      readers,
      intervalMs: 40,
      opTimeoutMs: 5000,
      connectTimeoutMs: 2000,
      connectAttempts: 3,
      checkIntervalMs: 1000,
      maxOps: MAX_OPS,
    }, (client) => clientSeeds[client]!, {
      event: (e) => { history.write(e); },
      complete: (op) => { if (ops.length < MAX_OPS) ops.push(op); },
      observeStatus: (client, generation) => { if (observations.length < MAX_OBSERVATIONS) observations.push({ client, atMs: now(), generation }); },
      get full() { return ops.length >= MAX_OPS; },
    }, now);
    workloadRef = workload;
    const registerWorkload = new RegisterWorkload(c, {
      clients: registerClients,
      readOnlyClients: Math.min(1, registerClients - 1),
      keys: 3,
      opsPerKey: 150,
      intervalMs: 40,
      opTimeoutMs: 5000,
      connectTimeoutMs: 2000,
      connectAttempts: 3,
      checkIntervalMs: 1000,
      maxOps: MAX_REGISTER_OPS,
    }, o.writers + o.readers, (client) => clientSeeds[client]!, {
      event: (e) => { registerLog.write(e); },
      complete: (op, sentTo) => {
        if (registerOps.length >= MAX_REGISTER_OPS) return;
        registerOps.push(op);
        registerSentTo.set(opKey(op), sentTo);
      },
      get full() { return registerOps.length >= MAX_REGISTER_OPS; },
    }, now);
    registerRef = registerWorkload;
    const workloadStartMs = now();
    workload.start();
    registerWorkload.start();

    const progress = setInterval(() => {
      const w = ops.filter((x) => x.f === 'write');
      o.log(`chaos: ${((now() - workloadStartMs) / 1000).toFixed(0)} s: ${faults.length} faults, ${w.length} writes (${w.filter((x) => x.outcome === 'ok').length} ok, ${w.filter((x) => x.outcome === 'fail').length} fail, ${w.filter((x) => x.outcome === 'unknown').length} unknown), ${registerOps.length} register operations`);
    }, 30_000);
    const deadline = workloadStartMs + o.timeS * 1000;
    const hardDeadline = deadline + o.extraS * 1000;
    const allKindsDone = (): boolean => o.faults.every((k) => nemesis.done.includes(k));
    try {
      await nemesis.run(() => now() >= hardDeadline || (now() >= deadline && (!o.eachKind || allKindsDone())));
    } finally {
      clearInterval(progress);
    }

    // Heal, let the shard recover while the clients go on, then stop them and read everything.
    await nemesis.healAll();
    o.log('chaos: every fault healed; waiting for the shard to be whole');
    const recovered = await nemesis.awaitWhole(300_000);
    await sleep(3000);
    await Promise.all([workload.halt(), registerWorkload.halt()]);
    const workloadEndMs = now();
    monitoring = false;
    await monitor;

    const reads: FinalRead[] = [];
    let finalPrimary: string | null = null;
    if (recovered && (await nemesis.awaitWhole(120_000))) {
      finalPrimary = (await shardWhole(c)).primary;
    }
    if (finalPrimary !== null) {
      const primaryIds = await withClient(c.pgUrl(finalPrimary), async (pgc) => {
        const rows = await pgc.query<{ id: string }>(`SELECT id FROM ${TABLE}`);
        const lsn = await pgc.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
        return { ids: new Set(rows.rows.map((r) => Number(r.id))), lsn: lsn.rows[0]!.lsn };
      });
      reads.push({ peer: finalPrimary, role: 'primary', caughtUp: true, ids: primaryIds.ids });
      for (const p of c.peers.filter((x) => x.id !== finalPrimary)) {
        const r = await withClient(c.pgUrl(p.id), async (pgc) => {
          let caughtUp = false;
          for (let i = 0; i < 120 && !caughtUp; i++) {
            const q = await pgc.query<{ ok: boolean | null }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [primaryIds.lsn]);
            caughtUp = q.rows[0]?.ok === true;
            if (!caughtUp) await sleep(500);
          }
          const rows = await pgc.query<{ id: string }>(`SELECT id FROM ${TABLE}`);
          return { caughtUp, ids: new Set(rows.rows.map((x) => Number(x.id))) };
        }).catch((err: unknown) => {
          o.log(`chaos: final read on ${p.id} failed: ${String(err)}`);
          return { caughtUp: false, ids: new Set<number>() };
        });
        reads.push({ peer: p.id, role: 'replica', ...r });
      }
    }

    const result = check({
      ops,
      faults,
      final: { primary: finalPrimary, reads },
      workloadStartMs,
      workloadEndMs,
      gapThresholdMs: o.gapMs,
      statusObservations: observations,
      // The register's acknowledged writes count for availability too (all there is in a register-only run).
      otherWriteCompletionsMs: registerOps.filter((r) => r.input.f !== 'read' && r.output.status === 'ok').map((r) => r.returnMs),
    });
    const linearizability: Partial<Record<WorkloadKind, LinearizabilityVerdict>> = {};
    if (register) {
      o.log(`chaos: checking the register history for linearizability (${registerOps.length} operations)`);
      linearizability.register = judgeRegister(registerOps, dir, REGISTER_CHECK_BUDGET_MS, registerSentTo);
    }
    const byKind: Record<string, number> = {};
    for (const f of faults) byKind[f.kind] = (byKind[f.kind] ?? 0) + 1;
    // Each kind as often as it was injected, on its own or inside an overlap.
    const injected: Record<string, number> = {};
    for (const f of faults) for (const k of f.parts ?? [f.kind]) injected[k] = (injected[k] ?? 0) + 1;
    const missingKinds = o.faults.filter((k) => byKind[k] === undefined);
    const problems = [...result.problems];
    for (const [workloadKind, v] of Object.entries(linearizability)) {
      if (v.verdict === 'not linearizable') problems.push(`the ${workloadKind} history is not linearizable: ${v.cannotBeOrdered.length} operations cannot be ordered (${v.picture ?? ''})`);
      if (v.verdict === 'unknown') problems.push(`the ${workloadKind} history could not be checked: ${v.reason ?? ''}`);
      if (v.operations === 0) problems.push(`the ${workloadKind} workload recorded no operations`);
    }
    if (nemesis.stuck > 0) problems.push(`the shard was stuck (not whole within the recovery timeout) ${nemesis.stuck} times; see nemesis.jsonl`);
    const summary: ChaosSummary = {
      valid: problems.length === 0,
      problems,
      seed: o.seed,
      replay: replayCommand(o),
      resultsDir: dir,
      durationS: Math.round((workloadEndMs - workloadStartMs) / 1000),
      workloadStartMs,
      faults: { total: faults.length, byKind, injected, missingKinds },
      stuck: nemesis.stuck,
      sitterExitsWithoutFault: sitterExits,
      finalPrimary,
      check: result,
      linearizability,
    };
    writeFileSync(join(dir, 'summary.json'), JSON.stringify(summary, null, 2));
    writeFileSync(join(dir, 'timeline.svg'), renderTimeline({
      title: `Manatee chaos run, seed ${o.seed}: ${summary.valid ? 'valid' : 'INVALID'} — ${result.counts.writes.ok} acknowledged writes, ${result.lost.count} lost, ${faults.length} faults`,
      startMs: workloadStartMs,
      endMs: workloadEndMs,
      ops,
      faults,
      samples,
      windows: result.unavailability.windows,
      peers: ids,
      extraLanes: registerLanes(registerOps),
    }));
    return summary;
  } finally {
    await stopClients().catch((err: unknown) => { o.log(`chaos: stopping the clients failed: ${String(err)}`); });
    await Promise.all([history.close(), faultLog.close(), nemesisLog.close(), statusLog.close(), registerLog.close()]);
    await cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

/** The register clients' lanes of the timeline: an answered operation (a failed comparison too) is ok. */
function registerLanes(ops: readonly RegisterOperation[]): { label: string; ops: { atMs: number; outcome: 'ok' | 'unknown' }[] }[] {
  const byClient = new Map<number, { atMs: number; outcome: 'ok' | 'unknown' }[]>();
  for (const o of ops) {
    const list = byClient.get(o.client) ?? [];
    list.push({ atMs: o.callMs, outcome: o.output.status === 'unknown' ? 'unknown' : 'ok' });
    byClient.set(o.client, list);
  }
  return [...byClient].sort((a, b) => a[0] - b[0]).map(([client, list]) => ({ label: `register ${client}`, ops: list }));
}

/** The verdict in a few lines, as `npm run chaos` prints it. */
export function verdictLines(s: ChaosSummary): string[] {
  const c = s.check;
  const lines = [
    `${s.valid ? 'VALID' : 'INVALID'}: seed ${s.seed}, ${s.durationS} s, ${s.faults.total} faults (${Object.entries(s.faults.byKind).map(([k, n]) => `${k} ${n}`).join(', ')})`,
    `  each kind injected, alone or in an overlap: ${Object.entries(s.faults.injected).sort().map(([k, n]) => `${k} ${n}`).join(', ')}`,
    `  writes: ${c.counts.writes.invoked} invoked, ${c.counts.writes.ok} acknowledged, ${c.counts.writes.fail} failed, ${c.counts.writes.unknown} unknown (${c.unknown.committed} committed, ${c.unknown.notCommitted} not)`,
    `  reads: ${c.counts.reads.invoked} (${c.counts.reads.ok} ok)`,
    `  lost acknowledged writes: ${c.lost.count}; failed writes present: ${c.failedPresent.count}; two-primary evidence: ${c.doublePrimary.count}; generation regressions: ${c.generationRegressions.count}; stuck: ${s.stuck}`,
    `  unavailability: ${c.unavailability.windows.length} windows without a successful write, longest ${(c.unavailability.longestMs / 1000).toFixed(1)} s, total ${(c.unavailability.totalMs / 1000).toFixed(1)} s`,
  ];
  const longest = [...c.unavailability.windows].sort((a, b) => b.durationMs - a.durationMs).slice(0, 3);
  for (const w of longest) lines.push(`    ${(w.durationMs / 1000).toFixed(1)} s from +${((w.startMs - s.workloadStartMs) / 1000).toFixed(1)} s, after ${w.cause ?? 'no fault'}`);
  for (const [kind, v] of Object.entries(s.linearizability)) {
    lines.push(`  ${kind}: ${v.verdict} (${v.operations} operations on ${v.keys} keys, checked in ${(v.elapsedMs / 1000).toFixed(1)} s)${v.reason !== null ? `: ${v.reason}` : ''}`);
    if (v.cannotBeOrdered.length > 0) {
      lines.push(`    these operations cannot be ordered (picture: ${v.picture ?? ''}):`);
      for (const l of v.cannotBeOrdered.slice(0, 30)) lines.push(`      ${l}`);
      if (v.cannotBeOrdered.length > 30) lines.push(`      ... ${v.cannotBeOrdered.length - 30} more in summary.json`);
    }
  }
  for (const p of s.problems) lines.push(`  problem: ${p}`);
  lines.push(`  results: ${s.resultsDir}`, `  replay: ${s.replay}`);
  return lines;
}
