// The backup server: routes that let a peer copy this peer's dataset by `zfs send`.
//
// Design (pull): the restoring peer POSTs /backup/jobs naming the snapshots it already has;
// the server picks the newest snapshot (taking one if needed) and, when the peer shares an
// older one, an incremental base; the peer then GETs /backup/jobs/:id/stream and pipes the
// response into its own `zfs recv`. Pulling keeps every connection initiated by the peer
// that needs the data (no listener on the restoring side, no callback address to trust), and
// a cut connection is seen at once by both ends. The server kills `zfs send` when the peer
// goes away, and ends the HTTP response with an error (not a clean end) when `zfs send`
// fails, so the peer never mistakes a truncated stream for a complete one.
//
// Over plain HTTP the stream can skip Node entirely (direct stream, see serveDirect and the go
// route): the connection itself becomes zfs send's stdout here and zfs recv's stdin on the peer.
// Through Node the 1 GiB bootstrap ran at 0.14x to 0.22x a shell's `zfs send | zfs recv` on a loaded
// 2-core machine; direct, at 0.91x (tools/bench/bootstrap.ts).
// Over TLS the connection cannot be handed over (Node encrypts it): on the peer's asking, a TLS
// relay (manatee-tls-relay or socat at both ends, tls-relay.ts) carries the stream on a TLS connection of its own,
// checked with the same certificates, and zfs send writes into its pipe (serveRelay and the go route).
//
// The routes are a fastify plugin (registered by the sitter's API or by a standalone server),
// authenticated by the shard's secret in the `x-manatee-secret` header (constant-time compare).
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import { socketBytes, socketEnds, type SocketEnds } from './socket-bytes.js';
import { acceptedConnection, defaultRelayProgram, listenRelay, plainAddress, type RelayListener, type RelayProgram, type RelayTls } from './tls-relay.js';
import type { Logger } from '../log.js';
import { peerIdOfSocket } from '../tls/index.js';
import { PEER_ID_PATTERN } from '../model/index.js';
import type { Zfs } from '../zfs/index.js';
import { ByteProgress } from './rate.js';
import {
  BackupError,
  BACKUP_ERR_ABORTED,
  BACKUP_ERR_BAD_REQUEST,
  BACKUP_ERR_FORBIDDEN,
  BACKUP_ERR_JOB_CONFLICT,
  BACKUP_ERR_JOB_NOT_FOUND,
  BACKUP_ERR_NO_SNAPSHOT,
  BACKUP_ERR_PEER_CERTIFICATE,
  BACKUP_ERR_TOO_MANY_JOBS,
  BACKUP_ERR_UNAUTHORIZED,
} from './errors.js';
import { asError, errorMessage } from '../errors.js';

export const SECRET_HEADER = 'x-manatee-secret';
/**
 * Asked by a restoring peer on the stream request, answered by a server that hands the connection
 * itself to `zfs send` (plain HTTP only): see serveDirect below.
 */
export const STREAM_MODE_HEADER = 'x-manatee-stream-mode';
export const STREAM_MODE_DIRECT = 'direct-socket';
/**
 * Over TLS: the stream goes through a TLS relay of its own (manatee-tls-relay or socat at both ends, see tls-relay.ts);
 * the stream request answers {relayPort}, and the go request names the relay connection's local
 * port in RELAY_FROM_HEADER.
 */
export const STREAM_MODE_TLS_RELAY = 'tls-relay';
export const RELAY_FROM_HEADER = 'x-manatee-relay-from-port';

/** What the stream request answers in the TLS relay mode. */
export interface RelayOffer {
  readonly relayPort: number;
}

/** What POST /backup/jobs/:id/go answers once the direct stream ended: the source's outcome. */
export interface DirectStreamOutcome {
  readonly state: 'done' | 'failed';
  /** The kernel's count of the bytes the peer acknowledged (null when `ss` could not say). */
  readonly bytesSent: number | null;
  readonly error: string | null;
}

export type BackupJobState = 'pending' | 'sending' | 'done' | 'failed';

export interface BackupJobStatus {
  readonly jobId: string;
  readonly peerId: string;
  readonly state: BackupJobState;
  readonly method: 'full' | 'incremental';
  readonly snapshot: string;
  readonly fromSnapshot: string | null;
  readonly bytesSent: number;
  /** Estimated total (zfs-fuse has no `zfs send -nP`: see Zfs.estimateSendBytes). */
  readonly bytesTotal: number | null;
  readonly percent: number | null;
  readonly rateBytesPerSec: number | null;
  readonly error: string | null;
  readonly createdAt: string;
  readonly finishedAt: string | null;
  /** pid of the running `zfs send`, for operators (and tests that cut a stream). */
  readonly sendPid: number | null;
}

export interface BackupRoutesOptions {
  readonly zfs: Zfs;
  /** The dataset this peer serves (its PostgreSQL data). */
  readonly dataset: string;
  /** The shard's secret; requests must carry it in `x-manatee-secret`. */
  readonly secret: string;
  /**
   * Every shard secret accepted, read at each request (a rotation's window: both the old and the
   * new value); absent: `secret` alone.
   */
  readonly secrets?: () => readonly string[];
  readonly log: Logger;
  /** Jobs kept for status queries; the oldest finished ones are forgotten first. */
  readonly jobsMax?: number;
  /** A job whose stream nobody fetched within this time is failed. */
  readonly pendingTimeoutMs?: number;
  /**
   * Served over TLS: every request must come with a certificate of the shard's CA bound to a peer,
   * and a job may be asked only for the peer that certificate names.
   */
  readonly requirePeerCertificate?: boolean;
  /**
   * Over plain HTTP, hand the connection to `zfs send` when the peer asks for it (default true): the
   * stream then passes through no Node code. false: always through Node (the TLS path).
   */
  readonly directStream?: boolean;
  /** How often the kernel's byte count of a direct stream is read for the job's progress. */
  readonly directProgressIntervalMs?: number;
  /**
   * Over TLS (with requirePeerCertificate): this peer's certificate, key and the shard CA, asked at
   * each stream, for the TLS relay (tls-relay.ts) that a restoring peer may ask for instead of a
   * stream through Node. Absent: no relay.
   */
  readonly tlsRelay?: () => RelayTls;
  /** The TLS relay's program (default: manatee-tls-relay when built, else socat; tls-relay.ts). */
  readonly relayProgram?: RelayProgram;
}

interface Job {
  readonly id: string;
  readonly peerId: string;
  readonly method: 'full' | 'incremental';
  readonly snapshot: string;
  readonly fromSnapshot: string | null;
  readonly createdMs: number;
  state: BackupJobState;
  progress: ByteProgress;
  error: string | null;
  finishedMs: number | null;
  sendPid: number | null;
  pendingTimer: NodeJS.Timeout | null;
  /**
   * A direct stream: the connection handed over (its response head written), or the TLS relay's
   * input pipe (with `relay`), waiting for the peer's go.
   */
  direct: { readonly socket: Socket; started: boolean; readonly relay?: { readonly listener: RelayListener; readonly controlAddress: string } } | null;
  /** Stops a sending job (DELETE, a closed control connection): kills zfs send and cuts the stream. */
  stop: ((reason: string) => void) | null;
}

const SECRET_HEADER_CHARS_MAX = 4096;
const STREAM_BUFFER_BYTES = 1024 * 1024;
const SNAPSHOT_SHORT = '^[0-9]{13}$';
const FROM_SNAPSHOTS_MAX = 1000;

const errorSchema = {
  type: 'object',
  properties: { code: { type: 'string' }, message: { type: 'string' } },
  required: ['code', 'message'],
} as const;

const jobStatusSchema = {
  type: 'object',
  properties: {
    jobId: { type: 'string' },
    peerId: { type: 'string' },
    state: { type: 'string', enum: ['pending', 'sending', 'done', 'failed'] },
    method: { type: 'string', enum: ['full', 'incremental'] },
    snapshot: { type: 'string' },
    fromSnapshot: { type: ['string', 'null'] },
    bytesSent: { type: 'integer' },
    bytesTotal: { type: ['integer', 'null'] },
    percent: { type: ['number', 'null'] },
    rateBytesPerSec: { type: ['integer', 'null'] },
    error: { type: ['string', 'null'] },
    createdAt: { type: 'string' },
    finishedAt: { type: ['string', 'null'] },
    sendPid: { type: ['integer', 'null'] },
  },
  required: ['jobId', 'state', 'bytesSent'],
} as const;

const jobParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', format: 'uuid' } },
  additionalProperties: false,
} as const;

interface CreateJobBody {
  peerId: string;
  /** Short names (13 digits) of the snapshots the peer has, for an incremental send. */
  fromSnapshots?: string[];
  /** Take a new snapshot first, instead of sending the newest existing one. */
  fresh?: boolean;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function sendError(reply: FastifyReply, err: BackupError): FastifyReply {
  return reply.code(err.statusCode).send({ code: err.code, message: err.message });
}

/** How long a relay that exited 0 (its input ended) waits for zfs send's own exit before it is the reason the stream ended. */
const RELAY_CLEAN_EXIT_GRACE_MS = 2000;

/** Counts bytes on their way to the peer and holds back the end until `zfs send` exited 0. */
class CountingStream extends Transform {
  constructor(
    private readonly onBytes: (n: number) => void,
    private readonly sendDone: Promise<void>,
  ) {
    // Buffers larger than a pipe read (64 KiB): with the default 16 KiB every chunk would stall
    // the pipe until drained, which halves the throughput.
    super({ highWaterMark: STREAM_BUFFER_BYTES });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.onBytes(chunk.length);
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    // zfs send that dies mid-way closes stdout like a finished one: only its exit status tells.
    this.sendDone.then(() => { cb(); }, (err: unknown) => { cb(asError(err)); });
  }
}

/** Shuts the sending side of a socket down (FIN) and waits for it, at most 5 s. */
function endSocket(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed || socket.writableFinished) {
      resolve();
      return;
    }
    const timer = setTimeout(resolve, 5000);
    socket.end(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Whether `given` is one of `secrets`; every one is compared, in constant time, whichever matches. */
function matchesAny(given: string, secrets: readonly string[]): boolean {
  const d = digest(given);
  let ok = false;
  for (const s of secrets) ok = (s.length > 0 && timingSafeEqual(d, digest(s))) || ok;
  return ok;
}

export const backupRoutes: FastifyPluginCallback<BackupRoutesOptions> = (app: FastifyInstance, opts: BackupRoutesOptions, done: (err?: Error) => void) => {
  const { zfs, dataset, log } = opts;
  if (opts.secret.length === 0) {
    done(new BackupError('MANATEE_ERR_BACKUP_CONFIG', 'backup server: the shard secret must not be empty'));
    return;
  }
  const accepted = opts.secrets ?? ((): readonly string[] => [opts.secret]);
  const jobsMax = opts.jobsMax ?? 32;
  const pendingTimeoutMs = opts.pendingTimeoutMs ?? 10 * 60_000;
  const jobs = new Map<string, Job>();

  // These routes answer {code, message} (their schemas say so): a request that fails its schema
  // gets a 400 in that shape here, where the API's handler would answer in its own shape, which
  // these routes' response schemas cannot serialize (it came out as a 500).
  app.setErrorHandler((err: FastifyError, _req, reply) => {
    // fastify tags a schema failure with the part that failed (validationContext: params, body...).
    if (err.validation === undefined && err.validationContext === undefined) throw err;
    log.warn({ reason: err.message }, 'backup: refused a malformed request');
    return sendError(reply, new BackupError(BACKUP_ERR_BAD_REQUEST, err.message, { statusCode: 400 }));
  });

  const certPeers = new WeakMap<FastifyRequest, string>();
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    if (opts.requirePeerCertificate === true) {
      const sock = req.raw.socket as Partial<TLSSocket>;
      const certPeer = typeof sock.getPeerX509Certificate === 'function' ? peerIdOfSocket(sock as TLSSocket) : null;
      if (certPeer === null) {
        const authz: unknown = (sock as { authorizationError?: unknown }).authorizationError;
        const why = sock.encrypted !== true ? 'the connection is not TLS' : typeof authz === 'string' ? authz : 'no certificate bound to a peer id';
        log.warn({ ip: req.ip, url: req.url, reason: why }, 'backup: refused request without a peer certificate');
        return sendError(reply, new BackupError(BACKUP_ERR_PEER_CERTIFICATE, `backup routes need a certificate of the shard's CA bound to a peer (${why})`, { statusCode: 403 }));
      }
      certPeers.set(req, certPeer);
    }
    const given = req.headers[SECRET_HEADER];
    if (typeof given !== 'string' || given.length === 0) {
      return sendError(reply, new BackupError(BACKUP_ERR_UNAUTHORIZED, `backup routes need the shard secret in the ${SECRET_HEADER} header`, { statusCode: 401 }));
    }
    if (given.length > SECRET_HEADER_CHARS_MAX || !matchesAny(given, accepted())) {
      log.warn({ ip: req.ip, url: req.url, code: BACKUP_ERR_FORBIDDEN }, 'backup: refused request with a wrong shard secret (none of the accepted ones)');
      return sendError(reply, new BackupError(BACKUP_ERR_FORBIDDEN, 'the shard secret is wrong', { statusCode: 403 }));
    }
    return undefined;
  });

  function status(job: Job): BackupJobStatus {
    const p = job.progress.snapshot(job.state, job.state === 'done');
    return {
      jobId: job.id,
      peerId: job.peerId,
      state: job.state,
      method: job.method,
      snapshot: job.snapshot,
      fromSnapshot: job.fromSnapshot,
      bytesSent: p.bytesDone,
      bytesTotal: p.bytesTotal,
      percent: p.percent,
      rateBytesPerSec: p.rateBytesPerSec,
      error: job.error,
      createdAt: new Date(job.createdMs).toISOString(),
      finishedAt: job.finishedMs === null ? null : new Date(job.finishedMs).toISOString(),
      sendPid: job.sendPid,
    };
  }

  function finish(job: Job, state: 'done' | 'failed', error: string | null): void {
    if (job.state === 'done' || job.state === 'failed') return;
    job.state = state;
    job.error = error;
    job.finishedMs = Date.now();
    job.sendPid = null;
    if (job.pendingTimer !== null) clearTimeout(job.pendingTimer);
    const s = status(job);
    log.info({ jobId: job.id, peerId: job.peerId, state, reason: error, bytesSent: s.bytesSent, rateBytesPerSec: s.rateBytesPerSec }, `backup: job ${state}`);
  }

  /** Makes room for one job: forgets the oldest finished one, or refuses when all are active. */
  function admit(): void {
    if (jobs.size < jobsMax) return;
    for (const [id, j] of jobs) {
      if (j.state === 'done' || j.state === 'failed') {
        jobs.delete(id);
        return;
      }
    }
    throw new BackupError(BACKUP_ERR_TOO_MANY_JOBS, `backup server has ${jobsMax} active jobs; try again later`, { statusCode: 503 });
  }

  app.post<{ Body: CreateJobBody }>('/backup/jobs', {
    schema: {
      body: {
        type: 'object',
        required: ['peerId'],
        additionalProperties: false,
        properties: {
          peerId: { type: 'string', pattern: PEER_ID_PATTERN },
          fromSnapshots: { type: 'array', maxItems: FROM_SNAPSHOTS_MAX, items: { type: 'string', pattern: SNAPSHOT_SHORT } },
          fresh: { type: 'boolean' },
        },
      },
      response: {
        201: {
          type: 'object',
          properties: {
            jobId: { type: 'string' },
            method: { type: 'string', enum: ['full', 'incremental'] },
            snapshot: { type: 'string' },
            fromSnapshot: { type: ['string', 'null'] },
            sizeEstimateBytes: { type: 'integer' },
            streamPath: { type: 'string' },
          },
          required: ['jobId', 'method', 'snapshot', 'fromSnapshot', 'sizeEstimateBytes', 'streamPath'],
        },
        '4xx': errorSchema,
        '5xx': errorSchema,
      },
    },
  }, async (req, reply) => {
    const body = req.body;
    try {
      const certPeer = certPeers.get(req);
      if (certPeer !== undefined && certPeer !== body.peerId) {
        log.warn({ ip: req.ip, peerId: body.peerId, certPeer, reason: 'peer id does not match the certificate' }, 'backup: refused job');
        throw new BackupError(BACKUP_ERR_PEER_CERTIFICATE, `a job for peer ${body.peerId} asked with the certificate of peer ${certPeer}`, { statusCode: 403 });
      }
      admit();
      const peerHas = new Set(body.fromSnapshots ?? []);
      let snaps = await zfs.listSnapshots(dataset);
      let newest = snaps.at(-1);
      // A fresh snapshot when asked, when there is none, or when the peer already has the
      // newest (it is catching up: it wants what changed since).
      if (body.fresh === true || newest === undefined || peerHas.has(newest.short)) {
        await zfs.createSnapshot(dataset);
        snaps = await zfs.listSnapshots(dataset);
        newest = snaps.at(-1);
      }
      if (newest === undefined) throw new BackupError(BACKUP_ERR_NO_SNAPSHOT, `no snapshot of ${dataset} to send`);
      const common = [...snaps].reverse().find((s) => s.name !== newest.name && peerHas.has(s.short));
      const fromSnapshot = common?.name ?? null;
      const sizeEstimateBytes = Math.round(await zfs.estimateSendBytes(newest.name, fromSnapshot ?? undefined));
      const job: Job = {
        id: randomUUID(),
        peerId: body.peerId,
        method: fromSnapshot === null ? 'full' : 'incremental',
        snapshot: newest.name,
        fromSnapshot,
        createdMs: Date.now(),
        state: 'pending',
        progress: new ByteProgress(sizeEstimateBytes),
        error: null,
        finishedMs: null,
        sendPid: null,
        pendingTimer: null,
        direct: null,
        stop: null,
      };
      job.pendingTimer = setTimeout(() => {
        if (job.state === 'pending') finish(job, 'failed', `stream not fetched within ${pendingTimeoutMs} ms`);
      }, pendingTimeoutMs);
      job.pendingTimer.unref();
      jobs.set(job.id, job);
      log.info({ jobId: job.id, peerId: job.peerId, method: job.method, snapshot: job.snapshot, fromSnapshot, sizeEstimateBytes, reason: fromSnapshot === null ? 'peer shares no snapshot with us' : `peer has ${common?.short ?? ''}` }, 'backup: job created');
      return await reply.code(201).send({ jobId: job.id, method: job.method, snapshot: job.snapshot, fromSnapshot, sizeEstimateBytes, streamPath: `/backup/jobs/${job.id}/stream` });
    } catch (err) {
      if (err instanceof BackupError) return sendError(reply, err);
      throw err;
    }
  });

  app.get<{ Params: { id: string } }>('/backup/jobs/:id', {
    schema: { params: jobParams, response: { 200: jobStatusSchema, '4xx': errorSchema } },
  }, async (req, reply) => {
    const job = jobs.get(req.params.id);
    if (job === undefined) return sendError(reply, new BackupError(BACKUP_ERR_JOB_NOT_FOUND, `no backup job ${req.params.id}`, { statusCode: 404 }));
    return reply.send(status(job));
  });

  // A peer whose restore failed before it asked for the stream (its own dataset was busy, say)
  // gives the job's slot back at once instead of holding it for the pending timeout.
  app.delete<{ Params: { id: string } }>('/backup/jobs/:id', {
    schema: { params: jobParams, response: { '4xx': errorSchema } },
  }, async (req, reply) => {
    const job = jobs.get(req.params.id);
    if (job === undefined) return sendError(reply, new BackupError(BACKUP_ERR_JOB_NOT_FOUND, `no backup job ${req.params.id}`, { statusCode: 404 }));
    if (job.state === 'sending') {
      // The peer gives up (its restore was aborted): zfs send stops and the stream is cut, so that
      // the peer's zfs recv, which may read the connection directly, sees the end at once.
      log.info({ jobId: job.id, peerId: job.peerId, reason: 'cancelled by the peer while sending' }, 'backup: stopping a sending job');
      if (job.stop !== null) job.stop('cancelled by the peer while sending');
      else finish(job, 'failed', 'cancelled by the peer while sending');
      return reply.code(204).send();
    }
    // A finished job no longer holds a slot (admit() forgets it when one is needed).
    if (job.state === 'pending') finish(job, 'failed', 'cancelled by the peer before its stream was fetched');
    return reply.code(204).send();
  });

  app.get<{ Params: { id: string } }>('/backup/jobs/:id/stream', {
    schema: { params: jobParams, response: { '4xx': errorSchema } },
  }, async (req, reply) => {
    const job = jobs.get(req.params.id);
    if (job === undefined) return sendError(reply, new BackupError(BACKUP_ERR_JOB_NOT_FOUND, `no backup job ${req.params.id}`, { statusCode: 404 }));
    const certPeer = certPeers.get(req);
    if (certPeer !== undefined && certPeer !== job.peerId) {
      log.warn({ jobId: job.id, peerId: job.peerId, certPeer, reason: 'peer id does not match the certificate' }, 'backup: refused a stream');
      return sendError(reply, new BackupError(BACKUP_ERR_PEER_CERTIFICATE, `backup job ${job.id} is for peer ${job.peerId}, not for ${certPeer}`, { statusCode: 403 }));
    }
    // A peer that could not reach or run its end of the TLS relay asks again without it: the relay
    // goes, and the stream goes through Node (a firewall that lets only the API's port through).
    const waitingRelay = job.direct?.started === false ? job.direct.relay : undefined;
    if (job.state === 'sending' && waitingRelay !== undefined && req.headers[STREAM_MODE_HEADER] !== STREAM_MODE_TLS_RELAY) {
      log.warn({ jobId: job.id, peerId: job.peerId, reason: 'the peer could not use the TLS relay' }, 'backup: TLS relay given up; the stream goes through Node');
      job.direct = null;
      job.stop = null;
      waitingRelay.listener.relay.kill();
      job.state = 'pending';
    }
    if (job.state !== 'pending') {
      return sendError(reply, new BackupError(BACKUP_ERR_JOB_CONFLICT, `backup job ${job.id} is ${job.state}; its stream can be fetched once`, { statusCode: 409 }));
    }
    job.state = 'sending';
    if (job.pendingTimer !== null) clearTimeout(job.pendingTimer);
    job.progress = new ByteProgress(job.progress.snapshot('sending').bytesTotal);
    const sock = req.raw.socket as Socket & { encrypted?: boolean };
    if (req.headers[STREAM_MODE_HEADER] === STREAM_MODE_TLS_RELAY && opts.tlsRelay !== undefined && sock.encrypted === true && certPeer !== undefined) {
      if (await serveRelay(job, sock, opts.tlsRelay, reply)) return reply;
    }
    if (req.headers[STREAM_MODE_HEADER] === STREAM_MODE_DIRECT && opts.directStream !== false && sock.encrypted !== true) {
      serveDirect(job, sock, reply);
      return reply;
    }
    const send = zfs.send(job.snapshot, job.fromSnapshot === null ? {} : { fromSnapshot: job.fromSnapshot });
    job.sendPid = send.pid ?? null;
    const counting = new CountingStream((n) => { job.progress.add(n); }, send.done);
    send.stdout.pipe(counting);
    send.stdout.on('error', (err: Error) => counting.destroy(err));
    send.done.then(
      () => undefined,
      (err: unknown) => {
        const reason = `zfs send failed: ${errorMessage(err)}`;
        finish(job, 'failed', reason);
        counting.destroy(new BackupError('MANATEE_ERR_BACKUP_SEND_FAILED', reason));
      },
    );
    job.stop = (reason: string): void => {
      finish(job, 'failed', reason);
      send.abort();
      counting.destroy(new BackupError(BACKUP_ERR_ABORTED, reason));
    };
    reply.raw.on('close', () => {
      if (reply.raw.writableFinished) {
        finish(job, 'done', null);
        return;
      }
      // The peer went away (or the send failed and we cut the connection): stop zfs send.
      send.abort();
      finish(job, 'failed', 'the connection to the peer closed before the stream ended');
    });
    log.info({ jobId: job.id, peerId: job.peerId, snapshot: job.snapshot, fromSnapshot: job.fromSnapshot, pid: send.pid }, 'backup: streaming');
    return reply.header('content-type', 'application/octet-stream').header('cache-control', 'no-store').send(counting);
  });

  /**
   * The direct stream, first half: the response head goes out on the connection, which is then
   * left to zfs send. The body is the raw send stream up to the connection's end (no length, no
   * chunks: `connection: close`). Nothing more is written until the peer says go (POST .../go), so
   * that no byte of the stream reaches the peer's HTTP parser before its zfs recv holds the socket.
   */
  function serveDirect(job: Job, socket: Socket, reply: FastifyReply): void {
    void reply.hijack();
    job.direct = { socket, started: false };
    const goTimeoutMs = Math.min(pendingTimeoutMs, 120_000);
    const goTimer = setTimeout(() => {
      if (job.direct?.started === false) {
        finish(job, 'failed', `the peer did not start the direct stream within ${goTimeoutMs} ms`);
        socket.destroy();
      }
    }, goTimeoutMs);
    goTimer.unref();
    job.stop = (reason: string): void => {
      clearTimeout(goTimer);
      finish(job, 'failed', reason);
      socket.destroy();
    };
    socket.once('close', () => {
      clearTimeout(goTimer);
      if (job.direct?.started === false) finish(job, 'failed', 'the connection to the peer closed before it started the direct stream');
    });
    socket.write(
      `HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncache-control: no-store\r\nconnection: close\r\n${STREAM_MODE_HEADER}: ${STREAM_MODE_DIRECT}\r\n\r\n`,
    );
    log.info({ jobId: job.id, peerId: job.peerId, snapshot: job.snapshot, fromSnapshot: job.fromSnapshot }, 'backup: direct stream offered; waiting for the peer to start it');
  }

  /**
   * The TLS relay's first half: socat listens on the address the peer reached this API at, for one
   * TLS connection from the job's peer (tls-relay.ts); the answer names its port. zfs send starts on
   * the peer's go, once that connection is there and verified. false: no relay (socat cannot run).
   */
  async function serveRelay(job: Job, sock: Socket, tls: () => RelayTls, reply: FastifyReply): Promise<boolean> {
    let listener: RelayListener;
    try {
      listener = await listenRelay({ program: opts.relayProgram ?? defaultRelayProgram(), tls: tls(), log, bindAddress: sock.localAddress ?? '127.0.0.1', peerId: job.peerId, timeoutMs: 30_000 });
    } catch (err) {
      // As a source without the relay: the stream goes through Node.
      log.warn({ jobId: job.id, peerId: job.peerId, reason: errorMessage(err) }, 'backup: cannot start the TLS relay; the stream goes through Node');
      return false;
    }
    const relay = listener.relay;
    job.direct = { socket: listener.input, started: false, relay: { listener, controlAddress: plainAddress(sock.remoteAddress ?? '') } };
    const goTimeoutMs = Math.min(pendingTimeoutMs, 120_000);
    const goTimer = setTimeout(() => {
      if (job.direct?.started === false) {
        finish(job, 'failed', `the peer did not start the TLS relay stream within ${goTimeoutMs} ms`);
        relay.kill();
      }
    }, goTimeoutMs);
    goTimer.unref();
    job.stop = (reason: string): void => {
      clearTimeout(goTimer);
      finish(job, 'failed', reason);
      relay.kill();
    };
    void relay.exited.then(() => {
      clearTimeout(goTimer);
      if (job.direct?.started === false) finish(job, 'failed', `the TLS relay ended before the peer started the stream: ${relay.errors() || 'no output'}`);
      listener.input.destroy();
    });
    log.info({ jobId: job.id, peerId: job.peerId, port: listener.port, pid: relay.pid, reason: 'the peer asked for the TLS relay' }, 'backup: TLS relay offered; waiting for the peer to connect and start it');
    const offer: RelayOffer = { relayPort: listener.port };
    await reply.header(STREAM_MODE_HEADER, STREAM_MODE_TLS_RELAY).header('cache-control', 'no-store').send(offer);
    return true;
  }

  /**
   * The direct stream, second half: the peer holds its zfs recv on the connection and says go.
   * zfs send then writes straight into the connection, and this request stays open until it ends:
   * its answer is the source's outcome ({state, bytesSent, error}), so a send that fails mid-stream
   * is reported to the peer in words, not only as a stream that zfs recv refuses. If this request's
   * connection closes first (the peer aborted, or died), zfs send is stopped and the stream cut.
   */
  app.post<{ Params: { id: string } }>('/backup/jobs/:id/go', {
    schema: {
      params: jobParams,
      response: {
        200: {
          type: 'object',
          properties: { state: { type: 'string', enum: ['done', 'failed'] }, bytesSent: { type: ['integer', 'null'] }, error: { type: ['string', 'null'] } },
          required: ['state', 'bytesSent', 'error'],
        },
        '4xx': errorSchema,
      },
    },
  }, async (req, reply) => {
    const job = jobs.get(req.params.id);
    if (job === undefined) return sendError(reply, new BackupError(BACKUP_ERR_JOB_NOT_FOUND, `no backup job ${req.params.id}`, { statusCode: 404 }));
    const certPeer = certPeers.get(req);
    if (certPeer !== undefined && certPeer !== job.peerId) {
      return sendError(reply, new BackupError(BACKUP_ERR_PEER_CERTIFICATE, `backup job ${job.id} is for peer ${job.peerId}, not for ${certPeer}`, { statusCode: 403 }));
    }
    const direct = job.direct;
    if (direct === null || direct.started || job.state !== 'sending') {
      return sendError(reply, new BackupError(BACKUP_ERR_JOB_CONFLICT, `backup job ${job.id} has no direct stream waiting to start (${job.state})`, { statusCode: 409 }));
    }
    direct.started = true;
    const socket = direct.socket;
    const relay = direct.relay;
    let ends: SocketEnds = socketEnds(socket);
    if (relay !== undefined) {
      // The relay's connection must be the one this peer made: from the control connection's
      // address and the port it names (socat checked its certificate: the shard CA, the job's peer).
      try {
        ends = await relayConnection(relay, req.headers[RELAY_FROM_HEADER]);
      } catch (err) {
        const e = err instanceof BackupError ? err : new BackupError('MANATEE_ERR_BACKUP_TLS_RELAY', errorMessage(err));
        log.warn({ jobId: job.id, peerId: job.peerId, reason: e.message }, 'backup: refused to start the TLS relay stream');
        job.stop?.(e.message);
        return sendError(reply, e);
      }
    }
    const send = zfs.sendToSocket(job.snapshot, socket, job.fromSnapshot === null ? {} : { fromSnapshot: job.fromSnapshot });
    job.sendPid = send.pid ?? null;
    // zfs send (and zfs-fuse's daemon) hold the relay's input now; socat must see its end when they let go.
    if (relay !== undefined) socket.destroy();
    // A holder object: TypeScript does not see assignments made inside the callback below.
    const stopped: { reason: string | null } = { reason: null };
    job.stop = (reason: string): void => {
      if (stopped.reason !== null) return;
      stopped.reason = reason;
      send.abort(reason);
      // The daemon writes on into the pipe until its reader is gone: socat's end stops it.
      relay?.listener.relay.kill();
    };
    const onControlClose = (): void => {
      if (!reply.raw.writableFinished) job.stop?.('the peer closed its control connection before the stream ended');
    };
    // A relay that ends while zfs send still runs (its connection broke, or it was killed) ends the stream.
    // One that exited 0 saw its input end: zfs send closed it, and its own exit (a success or its
    // reason for failing) follows in moments, so it has RELAY_CLEAN_EXIT_GRACE_MS to say so first.
    const sendEnded = { now: false };
    const sendRuns = (): boolean => !sendEnded.now;
    void relay?.listener.relay.exited.then(async ({ code, signal }) => {
      if (!sendRuns()) return;
      if (code === 0 && signal === null) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          send.done.then(() => undefined, () => undefined),
          new Promise<void>((resolve) => { timer = setTimeout(resolve, RELAY_CLEAN_EXIT_GRACE_MS); }),
        ]);
        clearTimeout(timer);
        // The request's own continuation after `await send.done` ran first and set sendEnded.
        if (!sendRuns()) return;
      }
      job.stop?.(`the TLS relay to the peer ended mid-stream: ${relay.listener.relay.errors() || 'no output'}`);
    });
    reply.raw.on('close', onControlClose);
    log.info({ jobId: job.id, peerId: job.peerId, snapshot: job.snapshot, fromSnapshot: job.fromSnapshot, pid: send.pid, direct: true }, 'backup: streaming (zfs send writes on the connection)');
    const intervalMs = opts.directProgressIntervalMs ?? 1000;
    let polling = false;
    const acked = { max: 0, known: false };
    const sample = async (): Promise<void> => {
      // The relay counts the stream's own bytes; a connection's count is the kernel's.
      const b = relay !== undefined ? { acked: relay.listener.relay.transferred } : await socketBytes(ends);
      if (b !== null) {
        acked.known = true;
        acked.max = Math.max(acked.max, b.acked);
        job.progress.set(acked.max);
      }
    };
    const ticker = setInterval(() => {
      if (polling) return;
      polling = true;
      void sample().finally(() => { polling = false; });
    }, intervalMs);
    let error: string | null = null;
    try {
      await send.done;
    } catch (err) {
      error = stopped.reason ?? `zfs send failed: ${errorMessage(err)}`;
    } finally {
      sendEnded.now = true;
      clearInterval(ticker);
    }
    if (relay !== undefined) await relayDrained(relay.listener, error);
    // The count before the connection goes: once closed, the kernel forgets it.
    await sample();
    const bytes = acked.known ? { acked: acked.max } : null;
    // A failed send may leave zfs-fuse's daemon writing (it holds the socket too): the shutdown of
    // the sending side stops it, and the peer's zfs recv reads an early end, which it refuses.
    if (error !== null) await endSocket(socket);
    socket.destroy();
    finish(job, error === null ? 'done' : 'failed', error);
    reply.raw.off('close', onControlClose);
    const outcome: DirectStreamOutcome = { state: error === null ? 'done' : 'failed', bytesSent: bytes === null ? null : bytes.acked, error };
    return reply.send(outcome);
  });

  /** The relay's verified connection, checked against the control connection and the port the peer names. */
  async function relayConnection(relay: { readonly listener: RelayListener; readonly controlAddress: string }, fromHeader: string | string[] | undefined): Promise<SocketEnds> {
    const from = typeof fromHeader === 'string' && /^[0-9]{1,5}$/.test(fromHeader) ? Number(fromHeader) : null;
    if (from === null) throw new BackupError(BACKUP_ERR_BAD_REQUEST, `the go of a TLS relay stream must name the relay connection's local port in ${RELAY_FROM_HEADER}`, { statusCode: 400 });
    const accepted = await acceptedConnection(relay.listener, 30_000);
    const a = accepted.ends;
    if (a.remoteAddress !== relay.controlAddress || a.remotePort !== from) {
      throw new BackupError(BACKUP_ERR_PEER_CERTIFICATE, `the TLS relay's connection came from ${a.remoteAddress ?? '?'}:${a.remotePort ?? '?'}, not from the peer's ${relay.controlAddress}:${from}`, { statusCode: 403 });
    }
    return a;
  }

  /**
   * After zfs send: a relay that is to deliver the stream gets time to pass its last bytes on and
   * close the connection (counted while it does); a failed stream's relay is stopped at once.
   */
  async function relayDrained(listener: RelayListener, error: string | null): Promise<void> {
    const relay = listener.relay;
    if (error !== null) {
      relay.kill();
      await relay.exited;
      return;
    }
    const timer = setTimeout(() => {
      log.warn({ pid: relay.pid, reason: 'the peer did not take the last bytes within 60 s' }, 'backup: stopping the TLS relay');
      relay.kill();
    }, 60_000);
    await relay.exited;
    clearTimeout(timer);
  }

  app.addHook('onClose', (_instance, next) => {
    for (const job of jobs.values()) if (job.pendingTimer !== null) clearTimeout(job.pendingTimer);
    next();
  });
  done();
};
