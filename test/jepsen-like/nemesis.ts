// The nemesis: injects one fault at a time from a seeded schedule, holds it, heals it, and waits
// for the shard to come back before the next one. Each fault is recorded with its start and heal.
import { mkdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ClusterState } from '../../src/model/index.js';
import { descendants, type Cluster } from './cluster.js';
import { FAULT_KINDS, ZFS_ONLY_KINDS, type FaultKind, type FaultRecord } from './history.js';
import { cut, cutClients, healNetwork, isolate } from './net.js';
import type { Rng } from './rng.js';
import { discover } from './workload.js';
import { zfsCmd } from './zfs-pools.js';

export interface NemesisOptions {
  readonly kinds: readonly FaultKind[];
  readonly sessionTimeoutMs: number;
  /** Quiet time between a recovery and the next fault. */
  readonly quietMs: readonly [number, number];
  /** How long a partition or a crash lasts before it is healed. */
  readonly holdMs: readonly [number, number];
  /** The longest wait for the shard to be whole again after a heal; past it the shard is reported stuck. */
  readonly recoveryTimeoutMs: number;
}

export interface NemesisEvents {
  fault(f: FaultRecord): void;
  note(e: Record<string, unknown>): void;
}

export function parseFaultKinds(list: string): FaultKind[] {
  if (list === 'all') return [...FAULT_KINDS];
  const kinds = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const k of kinds) {
    if (!(FAULT_KINDS as readonly string[]).includes(k)) throw new Error(`unknown fault kind "${k}"; known: ${FAULT_KINDS.join(', ')}`);
  }
  if (kinds.length === 0) throw new Error('no fault kinds given');
  return kinds as FaultKind[];
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The shard is whole: a writable primary, and every peer online in the chain of the newest generation. */
export async function shardWhole(cluster: Cluster): Promise<{ whole: boolean; why: string; primary: string | null }> {
  const all = await cluster.statuses(1500);
  const states = [...all.values()].filter((s) => s !== null);
  if (states.length < cluster.peers.length) return { whole: false, why: `${cluster.peers.length - states.length} peers do not answer`, primary: null };
  const gens = new Set(states.map((s) => s.state?.generation ?? -1));
  if (gens.size !== 1) return { whole: false, why: `peers disagree on the generation (${[...gens].join(', ')})`, primary: null };
  const primary = states.find((s) => s.role === 'primary');
  if (primary === undefined) return { whole: false, why: 'no primary', primary: null };
  if (!primary.postgres.writable) return { whole: false, why: `primary ${primary.peer.id} is not writable`, primary: null };
  const off = states.filter((s) => !['primary', 'sync', 'async'].includes(s.role) || !s.postgres.online);
  if (off.length > 0) return { whole: false, why: `not in the chain or offline: ${off.map((s) => `${s.peer.id}(${s.role})`).join(', ')}`, primary: primary.peer.id };
  return { whole: true, why: 'whole', primary: primary.peer.id };
}

/** The cgroup v1 cpu hierarchy (slow-io). */
export const CPU_CGROUP_ROOT = '/sys/fs/cgroup/cpu';

/** Moves a cpu cgroup's processes back to the root group and removes it; returns what failed ('' when nothing). */
export async function releaseCgroup(group: string): Promise<string> {
  try {
    const procs = (await readFile(join(group, 'cgroup.procs'), 'utf8')).split('\n').filter((l) => l !== '');
    for (const pid of procs) await writeFile(join(CPU_CGROUP_ROOT, 'cgroup.procs'), pid).catch(() => undefined);
    await writeFile(join(group, 'cpu.cfs_quota_us'), '-1').catch(() => undefined);
    for (let i = 0; i < 20; i++) {
      try {
        await rmdir(group);
        return '';
      } catch {
        await sleep(250);
      }
    }
    return `could not remove ${group}`;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? '' : String(err);
  }
}

export class Nemesis {
  private readonly stopping = new AbortController();
  private seq = 0;
  /** Peers killed whose sitter must be started at the heal. */
  private readonly down = new Set<string>();
  private readonly paused = new Set<string>();
  private partitioned = false;
  /** Pools with a quota set by disk-full. */
  private readonly quotaPools = new Set<string>();
  /** cpu cgroups of slow-io (their processes go back to the root group at the heal). */
  private readonly throttled = new Set<string>();
  /** Names this run's cgroups: "lc-<network prefix>". */
  private readonly cgroupPrefix: string;
  /** Peers added by a membership fault, removed at the heal. */
  private readonly joined = new Set<string>();
  private halted = false;
  readonly done: FaultKind[] = [];
  stuck = 0;

  constructor(
    private readonly cluster: Cluster,
    private readonly opts: NemesisOptions,
    private readonly rng: Rng,
    private readonly events: NemesisEvents,
    private readonly now: () => number,
  ) {
    this.cgroupPrefix = `lc-${cluster.net.prefix}`;
  }

  private isStopped(): boolean {
    return this.stopping.signal.aborted;
  }

  /** Asks the loop to end after the current fault (which is healed). */
  stop(): void {
    this.stopping.abort();
  }

  private isHalted(): boolean {
    return this.halted;
  }

  /** The run is being torn down: no more waiting, and no more restarts of sitters. */
  halt(): void {
    this.halted = true;
    this.stopping.abort();
  }

  /** Injects faults until `until()` says stop. Each round of faults covers every kind in a seeded order. */
  async run(until: () => boolean): Promise<void> {
    let order: FaultKind[] = [];
    while (!this.isStopped() && !until()) {
      await sleep(this.rng.int(this.opts.quietMs[0], this.opts.quietMs[1]), this.stopping.signal);
      if (this.isStopped() || until()) break;
      await this.awaitWhole();
      if (this.isStopped() || until()) break;
      if (order.length === 0) order = this.rng.shuffle(this.opts.kinds);
      const kind = order.shift()!;
      await this.inject(kind);
    }
  }

  /** Waits until the shard is whole; counts and reports it stuck when it is not within the recovery timeout. */
  async awaitWhole(timeoutMs = this.opts.recoveryTimeoutMs): Promise<boolean> {
    const started = this.now();
    let last = '';
    while (this.now() - started < timeoutMs) {
      if (this.isHalted()) return false;
      const w = await shardWhole(this.cluster);
      if (w.whole) {
        if (this.now() - started > 1000) this.events.note({ event: 'recovered', afterMs: this.now() - started });
        return true;
      }
      if (w.why !== last) this.events.note({ event: 'waiting', why: w.why });
      last = w.why;
      // A sitter may have died on its own (a crash is a finding): start it again, and say so.
      for (const p of this.cluster.peers) {
        if (!this.isHalted() && !this.cluster.sitterAlive(p.id) && !this.down.has(p.id)) {
          this.events.note({ event: 'sitter-exited', peer: p.id, note: 'exited without a fault; restarted (see its log)' });
          this.cluster.start(p.id);
        }
      }
      await sleep(500);
    }
    this.stuck++;
    this.events.note({ event: 'stuck', why: last, waitedMs: this.now() - started });
    return false;
  }

  private hold(): Promise<void> {
    return sleep(this.rng.int(this.opts.holdMs[0], this.opts.holdMs[1]));
  }

  /** Heals whatever is still broken: network, pauses, stopped sitters, disks, added peers. Safe to call at any time. */
  async healAll(): Promise<void> {
    if (this.isHalted()) return;
    if (this.partitioned) await healNetwork(this.cluster.net);
    this.partitioned = false;
    for (const id of this.paused) this.cluster.resume(id);
    this.paused.clear();
    for (const id of this.down) if (this.cluster.peers.some((p) => p.id === id)) this.cluster.start(id);
    this.down.clear();
    await this.healDisks();
    for (const id of [...this.joined]) await this.removeJoined(id);
  }

  /** Kinds this cluster can suffer (the disk faults need zfs). */
  applicable(kind: FaultKind): boolean {
    return this.cluster.backend === 'zfs' || !ZFS_ONLY_KINDS.includes(kind);
  }

  /** Removes the cgroups of slow-io (at the end of a run, after the last heal). */
  async releaseAll(): Promise<void> {
    for (const group of this.throttled) await releaseCgroup(group);
    this.throttled.clear();
  }

  private async healDisks(): Promise<void> {
    for (const group of this.throttled) {
      const left = await releaseCgroup(group);
      this.events.note({ event: 'heal', kind: 'slow-io', cgroup: group, ...(left === '' ? {} : { error: left }) });
    }
    this.throttled.clear();
    for (const pool of this.quotaPools) {
      const r = await zfsCmd('zfs', ['get', '-Hp', '-r', '-o', 'name,property,value', 'quota,used', pool], 60_000);
      const rows = r.stdout.split('\n').map((l) => l.split('\t'));
      for (const [name, property, value] of rows) {
        if (name === undefined || property !== 'quota' || value === undefined || value === '0' || value === 'none' || value === '-' || name.includes('@')) continue;
        const used = rows.find((x) => x[0] === name && x[1] === 'used')?.[2];
        const set = await zfsCmd('zfs', ['set', 'quota=none', name], 60_000);
        // Used within 128 KiB of the quota: PostgreSQL's writes met the full disk.
        this.events.note({ event: 'heal', kind: 'disk-full', dataset: name, quota: Number(value), used: Number(used), reached: Number(used) >= Number(value) - 128 * 1024, ok: set.ok, ...(set.ok ? {} : { error: set.stderr.trim() }) });
      }
    }
    this.quotaPools.clear();
  }

  /** The newest committed state any peer reports: its primary, sync, asyncs and deposed peers by id. */
  private async newestState(): Promise<{ primary: string | null; sync: string | null; async: string[]; deposed: string[] } | null> {
    let best: ClusterState | null = null;
    for (const s of (await this.cluster.statuses(1500)).values()) {
      if (s?.state != null && (best === null || s.state.generation > best.generation)) best = s.state;
    }
    if (best === null) return null;
    return { primary: best.primary.id, sync: best.sync?.id ?? null, async: best.async.map((a) => a.id), deposed: best.deposed.map((d) => d.id) };
  }

  /** Any peer that answers takes an admin call (a membership change is forwarded to the Raft leader). */
  private async adminAnywhere(method: 'POST' | 'DELETE', path: string, body: unknown, okWhen: (status: number, body: unknown) => boolean, deadlineMs: number): Promise<{ ok: boolean; last: string }> {
    let last = '';
    while (!this.isHalted()) {
      for (const p of this.cluster.peers.filter((x) => !this.joined.has(x.id))) {
        const r = await this.cluster.admin(p.id, method, path, body, 30_000);
        if (okWhen(r.status, r.body)) return { ok: true, last: `${p.id}: ${r.status}` };
        last = `${p.id}: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`;
      }
      if (this.now() >= deadlineMs) break;
      await sleep(1000);
    }
    return { ok: false, last };
  }

  /** A peer added by a membership fault leaves: its sitter and PostgreSQL stop, remove-peer, reap if it was left deposed, its data goes. */
  private async removeJoined(id: string): Promise<void> {
    const p = this.cluster.peers.find((x) => x.id === id);
    if (p === undefined) {
      this.joined.delete(id);
      return;
    }
    this.cluster.killPeer(id);
    const removed = await this.adminAnywhere('POST', '/admin/peers/remove', { id }, (status, body) => status === 200 || (status === 404 && JSON.stringify(body).includes('MANATEE_ERR_PEER_NOT_FOUND')), this.now() + 180_000);
    this.events.note({ event: 'remove-peer', peer: id, ok: removed.ok, answer: removed.last });
    if (!removed.ok) {
      // Still a voter: it stays a peer of the cluster (down), so that the run reports it stuck rather than pretending.
      this.events.note({ event: 'stuck', why: `remove-peer ${id} failed: ${removed.last}` });
      return;
    }
    // A deposed peer stays in the state until reaped; its session must have ended first.
    const reapDeadline = this.now() + 120_000;
    while (!this.isHalted()) {
      const t = await this.newestState();
      if (t !== null && !t.deposed.includes(id)) break;
      if (t !== null) {
        const r = await this.adminAnywhere('POST', '/admin/reap', { peerId: id }, (status) => status === 200, this.now());
        this.events.note({ event: 'reap', peer: id, ok: r.ok, answer: r.last });
        if (r.ok) break;
      }
      if (this.now() >= reapDeadline) break;
      await sleep(2000);
    }
    for (let i = 0; i < 40 && this.cluster.postmasterPid(id) !== null; i++) await sleep(250);
    this.cluster.dropPeer(id);
    this.joined.delete(id);
    // Its data: the dataset (and any copy a rebuild moved aside) or its directory.
    const ds = this.cluster.datasetOf(p);
    if (ds !== null) {
      const pool = ds.split('/')[0]!;
      const list = await zfsCmd('zfs', ['list', '-H', '-o', 'name', '-d', '1', pool], 30_000);
      for (const child of list.stdout.split('\n').filter((n) => n.startsWith(`${pool}/`))) {
        const d = await zfsCmd('zfs', ['destroy', '-r', '-f', child], 60_000);
        if (!d.ok) this.events.note({ event: 'cleanup', peer: id, dataset: child, error: d.stderr.trim() });
      }
    } else {
      await rm(p.dataDir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  private async roles(): Promise<{ primary: string | null; sync: string | null }> {
    const t = await discover(this.cluster, 1500);
    return { primary: t?.primary ?? null, sync: t?.sync ?? null };
  }

  /** The kinds that an overlapping fault combines: any two different ones but restart-all (which is every peer at once). */
  static readonly OVERLAPPABLE: readonly FaultKind[] = FAULT_KINDS.filter((k) => k !== 'restart-all' && k !== 'overlap');

  /** What an overlap combines: the chosen kinds that can overlap (all that apply when fewer than two are chosen). */
  private overlappable(): FaultKind[] {
    const chosen = Nemesis.OVERLAPPABLE.filter((k) => this.opts.kinds.includes(k) && this.applicable(k));
    return chosen.length >= 2 ? chosen : Nemesis.OVERLAPPABLE.filter((k) => this.applicable(k));
  }

  private async inject(kind: FaultKind): Promise<void> {
    const roles = await this.roles();
    const seq = ++this.seq;
    const startedAtMs = this.now();
    let record: Omit<FaultRecord, 'healedAtMs'>;
    if (kind === 'overlap') {
      // Two faults at once: the second starts while the first holds (e.g. a partition during a pause).
      const [k1, k2] = this.rng.shuffle(this.overlappable()).slice(0, 2) as [FaultKind, FaultKind];
      const first = await this.begin(k1, roles);
      const lagMs = this.rng.int(0, Math.floor(first.holdMs / 2));
      await sleep(lagMs);
      const second = await this.begin(k2, await this.roles());
      const targets = [...new Set([...first.targets, ...second.targets])];
      record = { seq, kind, parts: [k1, k2], targets, startedAtMs, detail: `${k1}: ${first.detail}; ${lagMs} ms later, ${k2}: ${second.detail}` };
      this.events.note({ event: 'inject', seq, kind, parts: [k1, k2], targets, atMs: startedAtMs });
      await sleep(Math.max(first.holdMs - lagMs, second.holdMs));
    } else {
      const one = await this.begin(kind, roles);
      record = { seq, kind, targets: one.targets, startedAtMs, detail: one.detail };
      this.events.note({ event: 'inject', seq, kind, targets: one.targets, atMs: startedAtMs });
      await sleep(one.holdMs);
    }
    await this.healAll();
    this.done.push(kind);
    this.events.fault({ ...record, healedAtMs: this.now() });
  }

  /** Starts one fault; returns what it hit and how long to hold it before healing. */
  private async begin(kind: FaultKind, roles: { primary: string | null; sync: string | null }): Promise<{ targets: string[]; detail: string; holdMs: number }> {
    const ids = this.cluster.peers.map((p) => p.id);
    const { primary, sync } = roles;
    const holdMs = (): number => this.rng.int(this.opts.holdMs[0], this.opts.holdMs[1]);
    const crashTarget = (): string => (this.rng.next() < 0.5 && primary !== null ? primary : this.rng.pick(ids));
    const role = (t: string): string => (t === primary ? ' (the primary)' : '');
    switch (kind) {
      case 'kill-peer': {
        const t = crashTarget();
        this.cluster.killPeer(t);
        this.down.add(t);
        return { targets: [t], detail: `SIGKILL of the sitter and PostgreSQL of ${t}${role(t)}, restart after the hold`, holdMs: holdMs() };
      }
      case 'kill-sitter': {
        const t = crashTarget();
        this.cluster.killSitter(t);
        this.down.add(t);
        return { targets: [t], detail: `SIGKILL of the sitter of ${t}${role(t)} (its PostgreSQL goes on), restart after the hold`, holdMs: holdMs() };
      }
      case 'kill-postgres': {
        const t = crashTarget();
        const pm = this.cluster.signalPostgres(t, 'SIGKILL');
        const detail = pm === null ? `no PostgreSQL ran on ${t}` : `SIGKILL of PostgreSQL (postmaster ${pm} and its children) on ${t}${role(t)}; the sitter restarts it`;
        return { targets: [t], detail, holdMs: this.opts.sessionTimeoutMs };
      }
      case 'pause-short':
      case 'pause-long': {
        const t = crashTarget();
        const ms = kind === 'pause-short'
          ? Math.floor(this.opts.sessionTimeoutMs * (0.3 + 0.3 * this.rng.next()))
          : Math.floor(this.opts.sessionTimeoutMs * (2 + 2 * this.rng.next()));
        if (!this.paused.has(t)) {
          this.cluster.pause(t);
          this.paused.add(t);
        }
        return { targets: [t], detail: `SIGSTOP of the sitter and PostgreSQL of ${t}${role(t)} for ${ms} ms (session timeout ${this.opts.sessionTimeoutMs} ms)`, holdMs: ms };
      }
      case 'partition-primary':
      case 'partition-sync':
      case 'partition-minority': {
        let side: string[];
        if (kind === 'partition-primary') side = [primary ?? this.rng.pick(ids)];
        else if (kind === 'partition-sync') side = [sync ?? this.rng.pick(ids)];
        else side = this.rng.shuffle(ids).slice(0, Math.max(1, Math.floor((ids.length - 1) / 2)));
        this.partitioned = true;
        await isolate(this.cluster.net, side);
        return { targets: side, detail: `isolated ${side.join(', ')} from the other peers (primary ${primary}, sync ${sync})`, holdMs: holdMs() };
      }
      case 'partition-oneway': {
        const [from, to] = this.rng.shuffle(ids) as [string, string];
        this.partitioned = true;
        await cut(this.cluster.net, from, to);
        return { targets: [from, to], detail: `dropped every packet from ${from} to ${to} (one way; primary ${primary}, sync ${sync})`, holdMs: holdMs() };
      }
      case 'partition-clients': {
        const t = crashTarget();
        this.partitioned = true;
        await cutClients(this.cluster.net, t);
        return { targets: [t], detail: `cut the clients off from ${t}${role(t)} (the peers still reach it)`, holdMs: holdMs() };
      }
      case 'restart-all': {
        for (const id of ids) {
          this.cluster.killPeer(id);
          this.down.add(id);
        }
        return { targets: [...ids], detail: 'SIGKILL of every peer, then all restarted together', holdMs: this.rng.int(1000, 3000) };
      }
      case 'disk-full':
        return this.diskFull(crashTarget(), role);
      case 'slow-io':
        return this.slowIo(crashTarget(), role, holdMs());
      case 'membership':
        return this.membership(holdMs());
      case 'overlap':
        throw new Error('an overlapping fault is made of two others, not begun by itself');
    }
  }

  /**
   * A full disk: a zfs `quota` of 128 KiB more than the peer's dataset uses now (its snapshots
   * included: with a snapshot holding the old blocks, even an overwrite takes new space), so that
   * PostgreSQL's next writes (WAL, table pages) fail with EDQUOT. Held 15-40 s. The heal notes
   * in nemesis.jsonl how much the dataset used by then.
   */
  private async diskFull(t: string, role: (t: string) => string): Promise<{ targets: string[]; detail: string; holdMs: number }> {
    const ds = this.cluster.datasetOf(this.cluster.peer(t));
    if (ds === null) return { targets: [t], detail: `no zfs dataset for ${t} (not the zfs backend)`, holdMs: 0 };
    this.quotaPools.add(ds.split('/')[0]!);
    // zfs refuses a quota below what the dataset uses at that moment, which grows meanwhile: a
    // fresh size for each of a few attempts.
    let last = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const used = await zfsCmd('zfs', ['get', '-Hp', '-o', 'value', 'used', ds], 30_000);
      const bytes = Number(used.stdout.trim());
      if (!used.ok || used.stdout.trim() === '' || !Number.isFinite(bytes)) return { targets: [t], detail: `${ds} has no size now (${used.stderr.trim() || 'being rebuilt'}); no quota set`, holdMs: 0 };
      const quota = bytes + 128 * 1024;
      const set = await zfsCmd('zfs', ['set', `quota=${quota}`, ds], 30_000);
      if (set.ok) return { targets: [t], detail: `disk full on ${t}${role(t)}: quota ${(quota / 1048576).toFixed(2)} MiB on ${ds}, 128 KiB more than it used`, holdMs: this.rng.int(15_000, 40_000) };
      last = set.stderr.trim();
    }
    return { targets: [t], detail: `zfs set quota on ${ds} failed: ${last}`, holdMs: 0 };
  }

  /**
   * Slow I/O: the peer's PostgreSQL (postmaster and every process it forks) in a cpu cgroup with
   * a quota of 1% of one CPU for the hold, so that each write, fsync and answer crawls while
   * every connection stays up. A slow disk itself cannot be made on this machine: no
   * device-mapper (dm-delay), no netem, the cgroup v1 blkio throttle does not see zfs-fuse's
   * writes (FUSE, then the daemon's buffered writes to its pool files), and zfs-fuse is one
   * daemon for the machine's every pool (stalling it stalls everyone's). So this is the closest
   * real fault: the kernel's scheduler makes the writer slow, not a SIGSTOP.
   */
  private async slowIo(t: string, role: (t: string) => string, holdMs: number): Promise<{ targets: string[]; detail: string; holdMs: number }> {
    const pm = this.cluster.postmasterPid(t);
    if (pm === null) return { targets: [t], detail: `no PostgreSQL ran on ${t}`, holdMs: 0 };
    const group = join(CPU_CGROUP_ROOT, `${this.cgroupPrefix}-${t}`);
    try {
      await mkdir(group, { recursive: true });
      await writeFile(join(group, 'cpu.cfs_period_us'), '100000');
      await writeFile(join(group, 'cpu.cfs_quota_us'), '1000');
      const pids = [pm, ...descendants(pm)];
      let moved = 0;
      for (const pid of pids) {
        try {
          await writeFile(join(group, 'cgroup.procs'), String(pid));
          moved++;
        } catch {
          // exited meanwhile
        }
      }
      this.throttled.add(group);
      return { targets: [t], detail: `slow I/O on ${t}${role(t)}: its PostgreSQL (${moved} processes) limited to 1% of a CPU (cgroup ${group}) for ${holdMs} ms`, holdMs };
    } catch (err) {
      return { targets: [t], detail: `could not throttle PostgreSQL on ${t}: ${String(err)}`, holdMs: 0 };
    }
  }

  /**
   * A membership change: a new peer (a new id, on a spare host) is added with add-peer, its sitter
   * starts, and it joins the chain (bootstrapped from its upstream); the heal stops it, removes it
   * with remove-peer and reaps it when it was left deposed.
   */
  private async membership(holdMs: number): Promise<{ targets: string[]; detail: string; holdMs: number }> {
    const host = this.cluster.spareHosts()[0];
    if (host === undefined) return { targets: [], detail: 'no spare host for a new peer', holdMs: 0 };
    const id = this.cluster.nextPeerId();
    const address = this.cluster.raftAddressOf(host);
    const add = await this.adminAnywhere('POST', '/admin/peers', { id, address }, (status) => status === 200, this.now() + 60_000);
    if (!add.ok) return { targets: [id], detail: `add-peer ${id} (${address}) failed: ${add.last}`, holdMs: 0 };
    await this.cluster.addPeer(id, host);
    this.joined.add(id);
    this.cluster.start(id);
    const started = this.now();
    let joined = false;
    while (!this.isHalted() && this.now() - started < 150_000) {
      const t = await this.newestState();
      if (t !== null && (t.sync === id || t.async.includes(id) || t.primary === id)) {
        joined = true;
        break;
      }
      await sleep(1000);
    }
    const took = ((this.now() - started) / 1000).toFixed(1);
    return { targets: [id], detail: `add-peer ${id} (${address}): ${joined ? `in the chain ${took} s after its sitter started` : `not in the chain after ${took} s`}; removed at the heal`, holdMs };
  }
}
