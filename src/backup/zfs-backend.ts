// The zfs restore client (BackupBackend kind 'zfs'): makes the local dataset a copy of the
// source peer's newest snapshot through the source's backup server (see server.ts).
//
// Full copy:   isolate the old dataset (moved aside, not destroyed) → zfs recv the stream →
//              set the mountpoint, mount, chown to the PostgreSQL user, verify it holds a
//              PostgreSQL data directory (verify.ts), snapshot → destroy the isolated copy. On any
//              failure (an invalid copy included) the new dataset is destroyed and the isolated
//              one is put back.
// Incremental: when the local dataset shares a snapshot with the source, roll back to the
//              newest common snapshot and receive only `send -i common newest`. A failed
//              incremental receive is atomic in ZFS: the dataset stays at the common snapshot
//              (the changes made after it were already discarded by the rollback; they are
//              the diverged part that a rebuild replaces anyway). A received increment that
//              fails verification is rolled back to the common snapshot the same way.
// PostgreSQL must be stopped on this peer while a restore runs (the sitter's job).
import type { RestoreProgress } from '../model/index.js';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { execa } from 'execa';
import type { Logger } from '../log.js';
import { type Zfs, type ZfsSocketStream, parentOf, validateDatasetName, ZFS_ERR_COMMAND, ZfsBusyError, ZfsError, ZfsNoSpaceError, ZfsNotFoundError, ZfsStreamInterruptedError, ZFS_ERR_STREAM_INTERRUPTED } from '../zfs/index.js';
import type { BackupBackend, RestoreOptions, RestoreResult } from './types.js';
import { ByteProgress } from './rate.js';
import { BackupError, BACKUP_ERR_ABORTED, BACKUP_ERR_HTTP, RestoreBusyError, RestoreFailedError, RestoreInvalidError } from './errors.js';
import { RELAY_FROM_HEADER, SECRET_HEADER, STREAM_MODE_DIRECT, STREAM_MODE_HEADER, STREAM_MODE_TLS_RELAY, type DirectStreamOutcome, type RelayOffer } from './server.js';
import { socketBytes, socketEnds } from './socket-bytes.js';
import { BACKUP_ERR_TLS_RELAY, connectRelay, defaultRelayProgram, type RelayConnection, type RelayProgram } from './tls-relay.js';
import { findPgBinaries } from '../postgres/binaries.js';
import { resolveOsUser, type OsUser } from '../postgres/os-user.js';
import { verifyDataDir, type DataDirReport } from './verify.js';
import { errorMessage } from '../errors.js';
import { peerServerIdentity, TLS_ERR } from '../tls/index.js';

/** How a received copy is checked: the local pg_controldata, run as the PostgreSQL OS user. */
export interface ZfsVerifyConfig {
  readonly pgControldata: string;
  readonly user: OsUser;
}

export interface ZfsBackendOptions {
  readonly zfs: Zfs;
  /** The local dataset that holds PostgreSQL's data, e.g. "pool/manatee/b". */
  readonly dataset: string;
  /** Where that dataset is mounted (PostgreSQL's data lives there). */
  readonly mountpoint: string;
  /** PostgreSQL's data directory inside the mount, checked after a receive. Default: the mountpoint itself. */
  readonly dataDir?: string;
  /** This peer's id, sent to the source for its logs. */
  readonly peerId: string;
  /** The shard's secret, for the source's backup server; a function is asked at each request (a rotation reloads it). */
  readonly secret: string | (() => string);
  /**
   * TLS (the sources serve HTTPS): the CA that must have issued the source's certificate, and this
   * peer's certificate and key, which the source requires. Asked at each request (it may be reloaded).
   */
  readonly tls?: () => PeerTlsOptions;
  readonly log: Logger;
  /** OS user that owns the data (chown -R after a receive); null to skip. Default "postgres". */
  readonly pgUser?: string | null;
  /** Limit for the job request (not for the stream, which may take hours). */
  readonly requestTimeoutMs?: number;
  /** A stream that delivers no byte for this long is considered dead. */
  readonly streamIdleTimeoutMs?: number;
  /** How often progress goes to the log and the callback. */
  readonly progressIntervalMs?: number;
  /**
   * How to check that a received copy holds a PostgreSQL data directory before the old data
   * goes. Default: the local PostgreSQL 15 installation (findPgBinaries) run as `pgUser`.
   * false only for datasets that hold no PostgreSQL (tests of the transport).
   */
  readonly verify?: ZfsVerifyConfig | false;
  /**
   * Over plain HTTP, ask the source to hand the connection to its `zfs send` and hand it here to
   * `zfs recv` (default true): the stream then passes through no Node code on either side. A
   * source that does not offer it streams through Node as before. Never over TLS.
   */
  readonly directStream?: boolean;
  /**
   * Over TLS, ask the source for its TLS relay (default true): the relay (manatee-tls-relay or socat) at both ends carries the
   * stream between zfs send and zfs recv (tls-relay.ts), out of Node. A source that does not offer
   * it streams through Node as before.
   */
  readonly tlsRelay?: boolean;
  /** The TLS relay's program (default: manatee-tls-relay when built, else socat; tls-relay.ts). */
  readonly relayProgram?: RelayProgram;
}

/** The receiving end of a stream that zfs recv reads without Node: the connection itself, or the TLS relay's pipe. */
interface DirectLink {
  readonly recv: ZfsSocketStream;
  /** The bytes received so far (null when they cannot be read): the kernel's count of the connection. */
  received(): Promise<number | null>;
  /**
   * The source's count of a stream it reports done is the stream's exact size (the TLS relay's
   * socat counts the stream, where the connection here counts TLS records too).
   */
  readonly sourceCountExact: boolean;
  /** Extra headers of the go request. */
  readonly goHeaders: Record<string, string>;
  /** Stops the receiving side at once (abort, or a source that cannot be told to stop). */
  cut(why: string): void;
  /** Releases everything once the receive ended. */
  close(): void;
}

interface JobCreated {
  readonly jobId: string;
  readonly method: 'full' | 'incremental';
  readonly snapshot: string;
  readonly fromSnapshot: string | null;
  readonly sizeEstimateBytes: number;
  readonly streamPath: string;
}

/** zfs recv's words when an increment does not start from the local snapshot's data. */
const LINEAGE_MISMATCH_RE = /does not[\s;]+match incremental source|destination has been modified|incremental source .* does not exist/;

/** Snapshots offered to the source as incremental bases: the newest ones are the useful ones. */
const OFFERED_SNAPSHOTS_MAX = 100;

function message(err: unknown): string {
  return errorMessage(err);
}

export class ZfsBackupBackend implements BackupBackend {
  readonly kind = 'zfs' as const;
  private readonly o: ZfsBackendOptions;
  private current: RestoreProgress | null = null;
  private verifyConfig: ZfsVerifyConfig | null = null;
  /** Jobs whose stream this restore has asked for: a failed restore cancels the others (see cancelJob). */
  private readonly fetchedJobs = new Set<string>();
  /** The peer id of the source at each base URL being restored from (its certificate must be bound to it). */
  private readonly sourceIds = new Map<string, string>();

  constructor(opts: ZfsBackendOptions) {
    validateDatasetName(opts.dataset);
    if (parentOf(opts.dataset) === null) throw new BackupError('MANATEE_ERR_BACKUP_CONFIG', `the restore dataset must not be a pool root: ${opts.dataset}`);
    this.o = opts;
  }

  /** The latest progress (null before the first restore), for the status API. */
  get status(): RestoreProgress | null {
    return this.current;
  }

  async restore(opts: RestoreOptions): Promise<RestoreResult> {
    const { zfs, dataset } = this.o;
    const startedMs = Date.now();
    const base = opts.source.backupUrl.replace(/\/+$/, '');
    this.sourceIds.set(base, opts.source.peerId);
    this.report(opts, { phase: 'preparing', percent: 0, bytesDone: 0, bytesTotal: null, rateBytesPerSec: null, etaSec: null });
    const existed = await zfs.exists(dataset);
    const local = existed ? await zfs.listSnapshots(dataset) : [];
    const job = await this.createJob(base, local.slice(-OFFERED_SNAPSHOTS_MAX).map((s) => s.short), opts.signal);
    try {
      return await this.restoreJob(base, job, opts, existed, startedMs);
    } finally {
      this.fetchedJobs.clear();
      this.sourceIds.delete(base);
    }
  }

  /**
   * The TLS options of a request to the source at `base`: the shard CA, this peer's certificate,
   * and the source's peer id, which the source's certificate must be bound to (a certificate of
   * another peer of the same CA, found at that address, is refused: MANATEE_ERR_TLS_PEER_ID).
   */
  private tlsTo(base: string): { tls?: PeerTlsOptions & { peerId: string } } {
    // No id known for this base is no id at all: nothing matches it, and the request is refused.
    return this.o.tls !== undefined ? { tls: { ...this.o.tls(), peerId: this.sourceIds.get(base) ?? '' } } : {};
  }

  private async restoreJob(base: string, job: JobCreated, opts: RestoreOptions, existed: boolean, startedMs: number): Promise<RestoreResult> {
    const { zfs, dataset, log } = this.o;
    log.info({ source: opts.source.peerId, dataset, jobId: job.jobId, method: job.method, snapshot: job.snapshot, fromSnapshot: job.fromSnapshot, sizeEstimateBytes: job.sizeEstimateBytes, reason: opts.reason }, `restore: ${job.method} receive from ${opts.source.peerId}`);

    let bytes: number;
    let method = job.method;
    if (job.method === 'incremental' && job.fromSnapshot !== null) {
      try {
        bytes = await this.cancellingOnFailure(base, job, () => this.receiveIncremental(base, job, opts));
      } catch (err) {
        // Same snapshot name but another lineage (the names are only timestamps): no increment
        // can ever apply, so retrying would fail for ever. A full copy is the way out.
        if (!(err instanceof RestoreFailedError) || !LINEAGE_MISMATCH_RE.test(message(err))) throw err;
        log.warn({ dataset, jobId: job.jobId, fromSnapshot: job.fromSnapshot, reason: 'local snapshot has the same name but not the same data as the source' }, 'restore: incremental impossible, falling back to a full receive');
        const full = await this.createJob(base, [], opts.signal);
        method = full.method;
        const existsNow = await zfs.exists(dataset);
        bytes = await this.cancellingOnFailure(base, full, () => this.receiveFull(base, full, opts, existsNow));
      }
    } else {
      bytes = await this.cancellingOnFailure(base, job, () => this.receiveFull(base, job, opts, existed));
    }
    const durationMs = Date.now() - startedMs;
    this.report(opts, { phase: 'done', percent: 100, bytesDone: bytes, bytesTotal: bytes, rateBytesPerSec: durationMs > 0 ? Math.round((bytes * 1000) / durationMs) : null, etaSec: 0 });
    log.info({ dataset, method, bytes, durationMs }, 'restore: done');
    return { method, bytes, durationMs };
  }

  private async receiveFull(base: string, job: JobCreated, opts: RestoreOptions, existed: boolean): Promise<number> {
    const { zfs, dataset, log } = this.o;
    let isolated: string | null = null;
    if (existed) {
      this.report(opts, { phase: 'isolating', percent: 0, bytesDone: 0, bytesTotal: job.sizeEstimateBytes, rateBytesPerSec: null, etaSec: null });
      isolated = await this.setAside('moved aside', () => zfs.isolate(dataset, opts.reason));
    } else {
      const parent = parentOf(dataset)!;
      if (!(await zfs.exists(parent))) await zfs.createDataset(parent, { parents: true });
    }
    let bytes: number;
    try {
      bytes = await this.receive(base, job, opts, false);
      await this.finishReceived(opts);
    } catch (err) {
      const restoredOld = await this.putBack(isolated);
      const old = isolated === null ? 'there was no previous dataset' : restoredOld ? `the previous dataset was put back at ${dataset}` : `the previous dataset could NOT be put back; it is at ${isolated}`;
      if (err instanceof RestoreInvalidError) {
        log.error({ decision: 'restore-rejected', reason: err.problems.join('; '), dataset, jobId: job.jobId, isolated, restoredOld, badCopy: 'destroyed' },
          `restore: rejected the received copy of ${dataset}: ${err.problems.join('; ')}; ${old}`);
        throw new RestoreInvalidError(`${err.message}; the bad copy was destroyed; ${old}`, { path: err.path, dataset, problems: err.problems, restoredOld, cause: err });
      }
      log.error({ dataset, jobId: job.jobId, err: message(err), isolated, restoredOld }, 'restore: full receive failed');
      throw new RestoreFailedError(`full restore of ${dataset} from ${opts.source.peerId} failed: ${message(err)}; ${old}`, { cause: err, restoredOld });
    }
    if (isolated !== null) {
      try {
        await zfs.destroy(isolated, { recursive: true });
      } catch (err) {
        // The new data is good; a leftover isolated copy only costs space and is listed by listIsolated().
        log.warn({ isolated, err: message(err) }, 'restore: could not destroy the isolated copy; left in place');
      }
    }
    return bytes;
  }

  private async receiveIncremental(base: string, job: JobCreated, opts: RestoreOptions): Promise<number> {
    const { zfs, dataset, log } = this.o;
    const from = `${dataset}@${job.fromSnapshot!.slice(job.fromSnapshot!.indexOf('@') + 1)}`;
    this.report(opts, { phase: 'rolling back', percent: 0, bytesDone: 0, bytesTotal: job.sizeEstimateBytes, rateBytesPerSec: null, etaSec: null });
    await this.setAside('rolled back', async () => {
      try {
        await zfs.unmount(dataset);
        await zfs.rollback(from, { destroyLater: true });
      } catch (err) {
        // Nothing was rolled back (rollback is atomic): serve the data as it was until the retry.
        await zfs.mount(dataset).catch(() => undefined);
        throw err;
      }
    });
    let bytes: number;
    try {
      bytes = await this.receive(base, job, opts, true);
    } catch (err) {
      const mounted = await zfs.mount(dataset).then(() => true, () => false);
      log.error({ dataset, jobId: job.jobId, err: message(err), at: from }, 'restore: incremental receive failed');
      throw new RestoreFailedError(`incremental restore of ${dataset} from ${opts.source.peerId} failed: ${message(err)}; the dataset was left at the common snapshot ${from}${mounted ? '' : ' (not mounted)'}`, { cause: err, restoredOld: true });
    }
    try {
      await this.finishReceived(opts);
    } catch (err) {
      if (!(err instanceof RestoreInvalidError)) throw err;
      // The increment is the bad copy: back to the common snapshot, as a failed receive leaves it.
      const restoredOld = await zfs.unmount(dataset)
        .then(() => zfs.rollback(from, { destroyLater: true }))
        .then(() => zfs.mount(dataset))
        .then(() => true, (e: unknown) => { log.error({ dataset, at: from, err: message(e) }, 'restore: could not roll the rejected increment back'); return false; });
      const old = restoredOld ? `the increment was rolled back: the dataset is at the common snapshot ${from}` : `the increment could NOT be rolled back to ${from}`;
      log.error({ decision: 'restore-rejected', reason: err.problems.join('; '), dataset, jobId: job.jobId, at: from, restoredOld },
        `restore: rejected the received increment of ${dataset}: ${err.problems.join('; ')}; ${old}`);
      throw new RestoreInvalidError(`${err.message}; ${old}`, { path: err.path, dataset, problems: err.problems, restoredOld, cause: err });
    }
    return bytes;
  }

  /**
   * The first change to the local dataset (moving it aside, or unmounting and rolling it back).
   * zfs-fuse can hold a dataset busy for minutes after its mount was used (seen in a 30-minute zfs
   * chaos run: 2 to 4 minutes); past Zfs's own retries, that is a RestoreBusyError, on which the
   * sitter retries soon (nothing changed, and the source is not at fault).
   */
  private async setAside<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const { dataset, log } = this.o;
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof ZfsBusyError)) throw err;
      log.warn({ dataset, err: message(err), reason: 'zfs-fuse holds the dataset busy' }, `restore: the local dataset could not be ${what}: it is busy; nothing was changed`);
      throw new RestoreBusyError(`the local dataset ${dataset} could not be ${what}: it is busy (${message(err)}); nothing was received or changed`, { dataset, cause: err });
    }
  }

  /**
   * Runs a restore step for a job and, when it fails before the job's stream was asked for, cancels
   * the job on the source: a pending job holds one of the source's job slots for its pending timeout
   * (10 minutes), and a peer that retries soon (a busy dataset) would fill them.
   */
  private async cancellingOnFailure<T>(base: string, job: JobCreated, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (!this.fetchedJobs.has(job.jobId)) await this.cancelJob(base, job.jobId);
      throw err;
    }
  }

  /** DELETE of a pending job, best effort: a job not cancelled only waits for its pending timeout. */
  private async cancelJob(base: string, jobId: string): Promise<void> {
    const { log } = this.o;
    try {
      const res = await httpSend(`${base}/backup/jobs/${jobId}`, {
        method: 'DELETE',
        headers: this.headers(),
        signal: AbortSignal.timeout(Math.min(this.o.requestTimeoutMs ?? 60_000, 10_000)),
        ...this.tlsTo(base),
      });
      const text = await readSome(res, 4096);
      if (res.statusCode === 204) log.info({ jobId, reason: 'the restore failed before its stream flowed' }, 'restore: cancelled the job on the source');
      else log.warn({ jobId, status: res.statusCode, body: text }, 'restore: the source did not cancel the job; it ends at its pending timeout');
    } catch (err) {
      log.warn({ jobId, err: message(err) }, 'restore: could not cancel the job on the source; it ends at its pending timeout');
    }
  }

  /** Mount at the configured place, give the data to the PostgreSQL user, and snapshot it. */
  private async finishReceived(opts: RestoreOptions): Promise<void> {
    const { zfs, dataset, mountpoint, log } = this.o;
    this.report(opts, { ...(this.current ?? { percent: 100, bytesDone: 0, bytesTotal: null, rateBytesPerSec: null, etaSec: null }), phase: 'mounting' });
    if ((await zfs.getProperty(dataset, 'mountpoint')) !== mountpoint) await zfs.setProperty(dataset, 'mountpoint', mountpoint);
    await zfs.mount(dataset);
    const user = this.o.pgUser === undefined ? 'postgres' : this.o.pgUser;
    if (user !== null && process.getuid?.() === 0) {
      // Only what the PostgreSQL user does not own yet. A copy from a peer whose PostgreSQL user
      // has the same ids (the usual case) needs no change at all, and on zfs-fuse every chown is
      // a write through the daemon: `chown -R` of an unchanged 1 GiB data directory took a second
      // of the bootstrap (tools/bench/bootstrap.ts). -h: a symbolic link itself, never its target.
      const owner = await resolveOsUser(user);
      const ids = `${owner.uid}:${owner.gid}`;
      const r = await execa('find', [mountpoint, '(', '!', '-uid', String(owner.uid), '-o', '!', '-gid', String(owner.gid), ')',
        '-print', '-exec', 'chown', '-h', ids, '{}', '+'], { timeout: 600_000, maxBuffer: 64 * 1024 * 1024 });
      const changed = r.stdout === '' ? 0 : r.stdout.split('\n').length;
      log.info({ mountpoint, user, uid: owner.uid, gid: owner.gid, changed }, `restore: data ownership given to the PostgreSQL user (${changed} entries changed)`);
    }
    const verified = await this.verify(opts);
    if (verified !== null) {
      log.info({ decision: 'restore-accepted', reason: `a PostgreSQL ${verified.pgVersion} data directory in state "${verified.clusterState}"`, dataset, ...verified },
        `restore: the received copy is a PostgreSQL ${verified.pgVersion} data directory ("${verified.clusterState}")`);
    }
    this.report(opts, { ...(this.current ?? { percent: 100, bytesDone: 0, bytesTotal: null, rateBytesPerSec: null, etaSec: null }), phase: 'snapshotting' });
    await zfs.createSnapshot(dataset);
  }

  /** Checks the mounted copy (verify.ts); null when verification is off. Throws RestoreInvalidError. */
  private async verify(opts: RestoreOptions): Promise<DataDirReport | null> {
    const { dataset, mountpoint } = this.o;
    if (this.o.verify === false) return null;
    const dataDir = this.o.dataDir ?? mountpoint;
    this.report(opts, { ...(this.current ?? { percent: 100, bytesDone: 0, bytesTotal: null, rateBytesPerSec: null, etaSec: null }), phase: 'verifying' });
    return verifyDataDir(dataDir, { ...(await this.verifyWith()), dataset });
  }

  private async verifyWith(): Promise<ZfsVerifyConfig> {
    if (this.o.verify !== undefined && this.o.verify !== false) return this.o.verify;
    if (this.verifyConfig === null) {
      const user = this.o.pgUser === undefined ? 'postgres' : this.o.pgUser;
      const binaries = await findPgBinaries();
      // No PostgreSQL user (no chown): the data stays ours, and pg_controldata reads it as us.
      const osUser: OsUser = user === null
        ? { name: 'self', uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, switchUser: false }
        : await resolveOsUser(user);
      this.verifyConfig = { pgControldata: binaries.pgControldata, user: osUser };
    }
    return this.verifyConfig;
  }

  private async putBack(isolated: string | null): Promise<boolean> {
    const { zfs, dataset, log } = this.o;
    try {
      if (await zfs.exists(dataset)) {
        await zfs.destroy(dataset, { recursive: true }).catch((err: unknown) => {
          // An aborted zfs recv returns before zfs-fuse's daemon has discarded the partial dataset:
          // it can vanish between the check and the destroy (seen in CI). Gone is what was wanted.
          if (!(err instanceof ZfsNotFoundError)) throw err;
          log.info({ dataset, reason: 'the zfs daemon discarded the partial receive itself' }, 'restore: the partial dataset was already gone');
        });
      }
      if (isolated !== null) await zfs.unisolate(isolated, dataset);
      return true;
    } catch (err) {
      log.error({ dataset, isolated, err: message(err) }, 'restore: could not put the previous dataset back');
      return false;
    }
  }

  private headers(): Record<string, string> {
    return { [SECRET_HEADER]: typeof this.o.secret === 'string' ? this.o.secret : this.o.secret() };
  }

  private async createJob(base: string, fromSnapshots: string[], signal?: AbortSignal): Promise<JobCreated> {
    const timeout = AbortSignal.timeout(this.o.requestTimeoutMs ?? 60_000);
    // Always a fresh snapshot: an older one may predate the source's initdb, or need WAL that
    // the source has since recycled, and the standby could then never start or stream.
    const payload = JSON.stringify({ peerId: this.o.peerId, fromSnapshots, fresh: true });
    const res = await httpSend(`${base}/backup/jobs`, {
      method: 'POST',
      headers: { ...this.headers(), 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) },
      signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
      ...this.tlsTo(base),
    }, payload).catch((err: unknown) => {
      throw new BackupError(unreachableCode(err), `cannot reach the backup server at ${base}: ${message(err)}`, { cause: err });
    });
    const text = await readSome(res, 64 * 1024);
    let body: (Partial<JobCreated> & { code?: string; message?: string }) | null = null;
    try {
      body = JSON.parse(text) as Partial<JobCreated> & { code?: string; message?: string };
    } catch {
      body = null;
    }
    const status = res.statusCode ?? 0;
    if (status !== 201 || body === null || typeof body.jobId !== 'string') {
      throw new BackupError(BACKUP_ERR_HTTP, `backup server at ${base} refused the job (HTTP ${status}): ${body?.code ?? ''} ${body?.message ?? ''}`.trim());
    }
    return body as JobCreated;
  }

  /** GETs the stream and pipes it into zfs recv, counting bytes. Returns the bytes received. */
  private async receive(base: string, job: JobCreated, opts: RestoreOptions, force: boolean, relayAllowed = true): Promise<number> {
    const { zfs, dataset, log } = this.o;
    const idle = new AbortController();
    const signal = opts.signal === undefined ? idle.signal : AbortSignal.any([opts.signal, idle.signal]);
    if (opts.signal?.aborted === true) throw new BackupError(BACKUP_ERR_ABORTED, 'restore aborted');
    this.fetchedJobs.add(job.jobId);
    // node:http rather than fetch: a native Readable (no web-stream conversion) keeps the
    // stream near the speed of a pipe, and a connection cut mid-body surfaces as an error.
    const askDirect = this.o.directStream !== false && this.o.tls === undefined && base.startsWith('http:');
    const askRelay = relayAllowed && this.o.tlsRelay !== false && this.o.tls !== undefined && base.startsWith('https:');
    const modeHeader: Record<string, string> = askDirect ? { [STREAM_MODE_HEADER]: STREAM_MODE_DIRECT, connection: 'close' } : askRelay ? { [STREAM_MODE_HEADER]: STREAM_MODE_TLS_RELAY } : {};
    // A direct stream takes the connection for itself: a fresh one (no agent), never reused.
    const body = await httpSend(`${base}${job.streamPath}`, {
      method: 'GET',
      headers: { ...this.headers(), ...modeHeader },
      signal: askDirect ? (opts.signal ?? AbortSignal.any([])) : signal,
      ...(askDirect ? { agent: false as const } : {}),
      ...this.tlsTo(base),
    }).catch((err: unknown) => {
      throw new BackupError(unreachableCode(err), `cannot fetch the stream of job ${job.jobId}: ${message(err)}`, { cause: err });
    });
    if (body.statusCode !== 200) {
      const text = await readSome(body, 4096);
      throw new BackupError(BACKUP_ERR_HTTP, `backup server refused the stream of job ${job.jobId} (HTTP ${body.statusCode ?? '?'}): ${text}`);
    }
    if (askDirect && body.headers[STREAM_MODE_HEADER] === STREAM_MODE_DIRECT) return this.receiveDirect(base, job, opts, this.socketLink(body, force));
    if (askRelay && body.headers[STREAM_MODE_HEADER] === STREAM_MODE_TLS_RELAY) {
      const link = await this.relayLink(base, job, body, force).catch(async (err: unknown) => {
        // The source's relay waits for a connection that will not come: stop it now, not at its go timeout.
        if (err instanceof BackupError && err.code === TLS_ERR.peerId) await this.cancelJob(base, job.jobId);
        if (!(err instanceof BackupError) || err.code !== BACKUP_ERR_TLS_RELAY) throw err;
        // The source gives its relay up when the stream is asked again without it.
        log.warn({ jobId: job.jobId, reason: err.message }, 'restore: the TLS relay could not be used; asking for the stream through Node');
        return null;
      });
      return link === null ? this.receive(base, job, opts, force, false) : this.receiveDirect(base, job, opts, link);
    }
    const progress = new ByteProgress(job.sizeEstimateBytes);
    const idleMs = this.o.streamIdleTimeoutMs ?? 120_000;
    const idleTimer = setTimeout(() => { idle.abort(new BackupError(BACKUP_ERR_ABORTED, `no data for ${idleMs} ms`)); }, idleMs);
    const intervalMs = this.o.progressIntervalMs ?? 1000;
    const ticker = setInterval(() => {
      const p = progress.snapshot('receiving');
      this.report(opts, p);
      log.info({ dataset, jobId: job.jobId, ...p }, 'restore: receiving');
    }, intervalMs);
    // Counting with a 'data' listener next to the pipe, not a Transform in the path: a Transform
    // with its 16 KiB buffer between 64 KiB socket reads and the recv pipe halves the throughput.
    body.on('data', (chunk: Buffer) => {
      progress.add(chunk.length);
      idleTimer.refresh();
    });
    // pipeline() in zfs.receive sees this error as the input's failure.
    const failure: { err: Error | null } = { err: null };
    body.on('error', (err) => {
      const why = signal.aborted
        ? `stream aborted: ${message(signal.reason)}`
        : `the connection to ${base} broke before the end of the stream (${err.message})`;
      failure.err = new BackupError(BACKUP_ERR_HTTP, why, { cause: err });
    });
    this.report(opts, progress.snapshot('receiving'));
    try {
      await zfs.receive(dataset, body, { force });
    } catch (err) {
      if (err instanceof ZfsStreamInterruptedError && failure.err !== null) {
        throw new ZfsStreamInterruptedError(err.code, `stream into zfs recv ${dataset} was interrupted: ${failure.err.message} (zfs recv: ${err.stderr.trim() || 'no output'})`, { args: err.args, stderr: err.stderr, cause: failure.err });
      }
      if (err instanceof ZfsError) throw err;
      throw new BackupError(BACKUP_ERR_HTTP, `receive of job ${job.jobId} failed: ${message(err)}`, { cause: err });
    } finally {
      clearTimeout(idleTimer);
      clearInterval(ticker);
      body.destroy();
    }
    this.report(opts, progress.snapshot('received', true));
    return progress.bytesDone;
  }

  /**
   * The direct stream (see server.ts): `zfs recv` reads the connection itself, then the source is
   * told to go; that request stays open until the source's zfs send ended and answers its outcome.
   * Progress is the kernel's count of received bytes. Aborting (the restore's signal, or no byte
   * for streamIdleTimeoutMs) closes the go request, on which the source stops zfs send and ends
   * the connection: zfs recv then reads an early end, refuses the stream and discards it.
   */
  /** zfs recv on the connection of the stream request itself (plain HTTP). */
  private socketLink(body: IncomingMessage, force: boolean): DirectLink {
    const socket = body.socket;
    const ends = socketEnds(socket);
    // This process no longer reads the connection; its errors (a reset) are zfs recv's to report.
    body.on('error', () => undefined);
    socket.on('error', () => undefined);
    // A connection whose other end vanished (a partition) while nothing here aborts is found dead
    // by keepalive probes, which end zfs recv's read with an error.
    socket.setKeepAlive(true, 10_000);
    const recv = this.o.zfs.receiveFromSocket(this.o.dataset, socket, { force });
    return {
      recv, goHeaders: {}, sourceCountExact: false,
      received: async () => (await socketBytes(ends))?.received ?? null,
      cut: (why) => { recv.abort(why); },
      close: () => { socket.destroy(); body.destroy(); },
    };
  }

  /**
   * zfs recv on the pipe of a TLS relay connected to the source's (tls-relay.ts): the stream
   * request answered the relay's port; socat dials it with this peer's certificate and checks the
   * source's against the shard CA and the source's peer id.
   */
  private async relayLink(base: string, job: JobCreated, body: IncomingMessage, force: boolean): Promise<DirectLink> {
    const { zfs, dataset, log } = this.o;
    const text = await readSome(body, 4096);
    let port: number | null = null;
    try {
      const offer = JSON.parse(text) as Partial<RelayOffer>;
      if (typeof offer.relayPort === 'number' && Number.isInteger(offer.relayPort) && offer.relayPort > 0 && offer.relayPort < 65536) port = offer.relayPort;
    } catch {
      port = null;
    }
    if (port === null) throw new BackupError(BACKUP_ERR_HTTP, `backup server offered a TLS relay for job ${job.jobId} without a valid port: ${text.slice(0, 200)}`);
    const tls = this.o.tls!();
    const peerId = this.sourceIds.get(base) ?? '';
    let conn: RelayConnection;
    try {
      conn = await connectRelay({ program: this.o.relayProgram ?? defaultRelayProgram(), tls, log, host: new URL(base).hostname, port, peerId, timeoutMs: Math.min(this.o.requestTimeoutMs ?? 60_000, 15_000) });
    } catch (err) {
      // Another peer's relay is no reason to ask for the stream another way: the restore fails.
      if (unreachableCode(err) === TLS_ERR.peerId) throw new BackupError(TLS_ERR.peerId, `refused the TLS relay of job ${job.jobId} at ${base} port ${port}: ${message(err)}`, { cause: err });
      throw new BackupError(BACKUP_ERR_TLS_RELAY, `cannot connect to the TLS relay of job ${job.jobId} at ${base} port ${port}: ${message(err)}`, { cause: err });
    }
    log.info({ jobId: job.jobId, port, cipher: conn.cipher, localPort: conn.ends.localPort, pid: conn.relay.pid }, 'restore: TLS relay connected');
    const recv = zfs.receiveFromSocket(dataset, conn.output, { force });
    // zfs recv (and zfs-fuse's daemon) read the pipe now; this process keeps no copy of it.
    conn.output.destroy();
    return {
      recv, goHeaders: { [RELAY_FROM_HEADER]: String(conn.ends.localPort) },
      received: async () => (await socketBytes(conn.ends))?.received ?? null,
      sourceCountExact: true,
      // socat's end is zfs recv's end of stream, even when the source cannot be reached to say so.
      cut: (why) => { conn.relay.kill(); recv.abort(why); },
      close: () => { conn.relay.kill(); },
    };
  }

  private async receiveDirect(base: string, job: JobCreated, opts: RestoreOptions, link: DirectLink): Promise<number> {
    const { dataset, log } = this.o;
    const { recv } = link;
    const control = new AbortController();
    const abortReason: { why: string | null } = { why: null };
    const abort = (why: string): void => {
      if (abortReason.why !== null) return;
      abortReason.why = why;
      log.warn({ dataset, jobId: job.jobId, reason: why }, 'restore: aborting the direct stream');
      // The source stops when the go request closes; zfs recv's read ends here at once, even if the
      // source cannot be reached to say so (a partition).
      control.abort(new BackupError(BACKUP_ERR_ABORTED, why));
      link.cut(why);
    };
    const onSignal = (): void => { abort(`stream aborted: ${message(opts.signal?.reason)}`); };
    if (opts.signal?.aborted === true) onSignal();
    opts.signal?.addEventListener('abort', onSignal, { once: true });
    const go = httpSend(`${base}/backup/jobs/${job.jobId}/go`, {
      method: 'POST', headers: { ...this.headers(), ...link.goHeaders, 'content-length': '0' }, signal: control.signal,
      ...this.tlsTo(base),
    })
      .then(async (res) => {
        const text = await readSome(res, 64 * 1024);
        if (res.statusCode !== 200) throw new BackupError(BACKUP_ERR_HTTP, `backup server refused to start the stream of job ${job.jobId} (HTTP ${res.statusCode ?? '?'}): ${text}`);
        return JSON.parse(text) as DirectStreamOutcome;
      });
    go.catch(() => undefined);

    const progress = new ByteProgress(job.sizeEstimateBytes);
    const idleMs = this.o.streamIdleTimeoutMs ?? 120_000;
    const intervalMs = this.o.progressIntervalMs ?? 1000;
    let lastGrowthMs = Date.now();
    let polling = false;
    const ticker = setInterval(() => {
      if (polling) return;
      polling = true;
      void link.received().then((b) => {
        if (b !== null && b > progress.bytesDone) {
          progress.set(b);
          lastGrowthMs = Date.now();
        } else if (Date.now() - lastGrowthMs > idleMs) {
          abort(`no data for ${idleMs} ms`);
        }
        const p = progress.snapshot('receiving');
        this.report(opts, p);
        log.info({ dataset, jobId: job.jobId, direct: true, ...p }, 'restore: receiving');
      }).finally(() => { polling = false; });
    }, intervalMs);
    this.report(opts, progress.snapshot('receiving'));
    // If the source fails or is stopped, it ends the connection and zfs recv exits by itself; if
    // it cannot be reached to say so, zfs recv is stopped after a while (zfs-fuse's daemon may then
    // still wait for the keepalive probes to give up on the connection).
    let recvTimer: NodeJS.Timeout | undefined;
    const goSettled = go.then(
      (outcome) => {
        if (outcome.state === 'failed') recvTimer = setTimeout(() => { link.cut(`the source failed: ${outcome.error ?? ''}`); }, 60_000);
        return { outcome, error: null };
      },
      (err: unknown) => {
        recvTimer = setTimeout(() => { link.cut('the source could not be told to stop'); }, 30_000);
        return { outcome: null, error: err };
      },
    );
    const recvErr: unknown = await recv.done.then(() => null, (err: unknown) => err ?? new ZfsError(ZFS_ERR_COMMAND, 'zfs recv failed'));
    clearTimeout(recvTimer);
    // The source's outcome: after a failed receive, a short wait (the source answers once its zfs
    // send ended); after a complete one, longer (the source's zfs send exits after its last write).
    let graceTimer: NodeJS.Timeout | undefined;
    const goResult = await Promise.race([
      goSettled,
      new Promise<null>((resolve) => { graceTimer = setTimeout(() => { resolve(null); }, recvErr === null ? 30_000 : 5_000); }),
    ]);
    clearTimeout(graceTimer);
    clearInterval(ticker);
    opts.signal?.removeEventListener('abort', onSignal);
    // Closing the go request (if it is still open) stops the source's zfs send.
    control.abort(new BackupError(BACKUP_ERR_ABORTED, 'the receive ended'));
    const final = await link.received();
    if (final !== null && final > progress.bytesDone) progress.set(final);
    link.close();
    const outcome = goResult?.outcome ?? null;
    if (outcome !== null && outcome.bytesSent !== null && recvErr === null) progress.set(outcome.bytesSent);
    if (recvErr === null) {
      // zfs recv checks the stream to its end record: a stream it took whole is complete.
      if (outcome?.state !== 'done') log.warn({ dataset, jobId: job.jobId, err: outcome?.error ?? (goResult?.error === undefined || goResult.error === null ? 'no answer' : message(goResult.error)) }, 'restore: the source did not report success, but zfs recv had the whole stream');
      const exact = link.sourceCountExact && outcome?.state === 'done' && outcome.bytesSent !== null ? outcome.bytesSent : null;
      const bytes = exact ?? progress.bytesDone;
      this.report(opts, { ...progress.snapshot('received', true), bytesDone: bytes });
      return bytes;
    }
    const stderr = recvErr instanceof ZfsError ? recvErr.stderr.trim() : '';
    const recvWords = `zfs recv: ${stderr === '' ? message(recvErr) : stderr}`;
    // A full pool is the more useful diagnosis even if the sender also broke off.
    if (recvErr instanceof ZfsNoSpaceError) throw recvErr;
    let why: string | null = null;
    if (abortReason.why !== null) why = abortReason.why;
    else if (outcome?.state === 'failed') why = `the source's stream failed: ${outcome.error ?? 'no reason given'}`;
    else if (goResult !== null && goResult.error !== null) why = `the connection to ${base} broke before the end of the stream (${message(goResult.error)})`;
    if (why !== null) {
      throw new ZfsStreamInterruptedError(ZFS_ERR_STREAM_INTERRUPTED, `stream into zfs recv ${dataset} was interrupted: ${why} (${recvWords})`, { args: recvErr instanceof ZfsError ? recvErr.args : [], stderr, cause: recvErr });
    }
    if (recvErr instanceof ZfsError) throw recvErr;
    throw new BackupError(BACKUP_ERR_HTTP, `receive of job ${job.jobId} failed: ${message(recvErr)}`, { cause: recvErr });
  }

  private report(opts: RestoreOptions, p: RestoreProgress): void {
    this.current = p;
    if (opts.onProgress !== undefined) {
      try {
        opts.onProgress(p);
      } catch (err) {
        this.o.log.warn({ err: message(err) }, 'restore: onProgress callback threw; ignored');
      }
    }
  }
}

/** The code of a request that got no answer: the source's certificate bound to another peer, or any other failure. */
function unreachableCode(err: unknown): string {
  return (err as { code?: unknown } | null)?.code === TLS_ERR.peerId ? TLS_ERR.peerId : BACKUP_ERR_HTTP;
}

/** TLS options of a peer's connection to another peer's API: the shard CA, and this peer's certificate and key. */
export interface PeerTlsOptions {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/**
 * One request with node:http(s) (fetch cannot be given a CA and a client certificate without a
 * dispatcher). With `tls`, https only: the server must hold a certificate of the shard's CA for
 * the host dialled, and this peer shows its own.
 */
function httpSend(
  url: string,
  opts: { method: string; headers: Record<string, string>; signal: AbortSignal; tls?: PeerTlsOptions & { peerId: string }; agent?: false },
  payload?: string,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    if (opts.tls !== undefined && u.protocol !== 'https:') {
      reject(new BackupError('MANATEE_ERR_BACKUP_CONFIG', `${u.origin} is not https: with TLS configured, backups are fetched over TLS only`));
      return;
    }
    const req = u.protocol === 'https:'
      ? httpsRequest(u, { method: opts.method, headers: opts.headers, signal: opts.signal, ...(opts.tls !== undefined ? tlsRequestOptions(opts.tls) : {}) }, resolve)
      : httpRequest(u, { method: opts.method, headers: opts.headers, signal: opts.signal, ...(opts.agent === false ? { agent: false } : {}) }, resolve);
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * node:https options for a request to peer `peerId`: its certificate checked against the host and
 * bound to that id. No pooled connection (the agent's pool is keyed by host, not by the check), so
 * every request is checked against the peer it is for.
 */
function tlsRequestOptions(t: PeerTlsOptions & { peerId: string }): { ca: string; cert: string; key: string; minVersion: 'TLSv1.3'; checkServerIdentity: ReturnType<typeof peerServerIdentity>; agent: false } {
  return { ca: t.ca, cert: t.cert, key: t.key, minVersion: 'TLSv1.3', checkServerIdentity: peerServerIdentity(t.peerId), agent: false };
}

/** The first `maxBytes` of a (small, error) response body as text. */
async function readSome(res: IncomingMessage, maxBytes: number): Promise<string> {
  let text = '';
  try {
    for await (const chunk of res) {
      text += (chunk as Buffer).toString('utf8');
      if (text.length >= maxBytes) break;
    }
  } catch {
    // A broken error body is not worth more than what was read.
  }
  res.destroy();
  return text.slice(0, maxBytes);
}
