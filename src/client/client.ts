// The client that applications use to follow the shard (the successor of node-manatee).
//
// It follows GET /watch (server-sent events) on one peer at a time. Each peer's stream starts
// with that peer's committed state and then delivers every committed change, so a reconnect
// never misses anything: the first event of the new stream is the whole current state.
// Because every peer applies the same Raft log, the store's version numbers one state the same
// way on every peer: a peer that is behind (partitioned, catching up) shows an older version,
// which is ignored. A peer cut off from the Raft leader still answers its stream from its stale
// copy, so the client also asks the peer for a linearizable read (GET /state) every
// checkIntervalMs; a peer that cannot give one (no leader) is left for the next.
//
// Failover between peers: when a stream ends or fails, the next peer in the list is tried at
// once; after a whole round of failures the client waits (exponential backoff, capped) and emits
// 'error' with MANATEE_ERR_CLIENT_NO_PEER, and keeps trying until close().
import { EventEmitter } from 'node:events';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Logger } from '../log.js';
import type { ClusterState } from '../model/index.js';
import { CLIENT_ERR, ClientError } from './errors.js';
import { createPool, type PrimaryPool, type PrimaryPoolOptions } from './pool.js';
import { SseParser } from './sse.js';
import { sameTopology, topologyOf, type Topology } from './topology.js';
import { certificateProblem, errorMessage } from '../errors.js';
import { ApiClient, WIRE_ERR, WireError, isVersionedState } from '../wire/index.js';

export interface ClientOptions {
  /** The peers' API URLs (http://host:port), tried in this order. At least one, at most 64. */
  readonly peers: readonly string[];
  /** Deadline for a peer to answer a request with its headers. Default 3000. */
  readonly connectTimeoutMs?: number;
  /** A stream that sends nothing (not even its keepalive comment) for this long is dropped. Default 15000 (the API sends one every 5 s). */
  readonly idleTimeoutMs?: number;
  /** How often the followed peer is asked for a linearizable read of the state (0: never). Default 5000. */
  readonly checkIntervalMs?: number;
  /** Waits between rounds of failed attempts: doubling from initialMs up to maxMs. Defaults 100 and 5000. */
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number };
  /** Largest event accepted on a stream. Default 4 MiB. */
  readonly eventBytesMax?: number;
  /** Where the client says what it does (pino); silent when absent. */
  readonly logger?: Logger;
  /**
   * The shard CA's certificate (PEM text, e.g. readFileSync('ca.crt', 'utf8')): https peers must
   * present a certificate it signed for the host in their URL, and the pool's connections to
   * PostgreSQL use TLS checked against it (unless the pool is given its own `ssl`). Without it,
   * https peers are checked against the system's CAs.
   */
  readonly ca?: string;
}

export interface ClientEvents {
  /** The first topology is known (emitted once, just before the first 'topology'). */
  ready: [topology: Topology];
  /** [primaryUrl, syncUrl, ...asyncUrls] whenever it changes (never deposed peers). */
  topology: [topology: Topology];
  /** Each newer committed state seen, with its store version (whether or not the topology changed). */
  state: [state: ClusterState, version: number];
  /** Following a peer's stream started (its API URL). */
  connect: [apiUrl: string];
  /** A round of peers failed (MANATEE_ERR_CLIENT_NO_PEER). Emitted only when someone listens. */
  error: [err: ClientError];
}

interface Settings {
  readonly peers: readonly string[];
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly checkIntervalMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly eventBytesMax: number;
  readonly ca: string | undefined;
}

const PEERS_MAX = 64;
/** A stream that delivered a state and lasted this long was healthy: its end is followed by an immediate move. */
const STREAM_HEALTHY_MS = 1000;
/** Most bytes of an error answer's body read (for its message). */
const ERROR_BODY_BYTES_MAX = 16 * 1024;

function settingsOf(o: ClientOptions): Settings {
  const given: unknown = o.peers;
  if (!Array.isArray(given) || given.length === 0 || given.length > PEERS_MAX) {
    throw new ClientError(CLIENT_ERR.badOptions, `peers: must list 1 to ${PEERS_MAX} API URLs`);
  }
  for (const [i, p] of (given as unknown[]).entries()) {
    if (typeof p !== 'string') throw new ClientError(CLIENT_ERR.badOptions, `peers[${i}]: must be a string (an API URL)`);
    let url: URL;
    try {
      url = new URL(p);
    } catch {
      throw new ClientError(CLIENT_ERR.badOptions, `peers[${i}]: "${p}" is not a URL (expected http://host:port)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ClientError(CLIENT_ERR.badOptions, `peers[${i}]: "${p}" must be an http or https URL`);
  }
  const positive = (name: string, v: number | undefined, dflt: number, min = 1): number => {
    const x = v ?? dflt;
    if (!Number.isInteger(x) || x < min) throw new ClientError(CLIENT_ERR.badOptions, `${name}: must be an integer >= ${min}`);
    return x;
  };
  const s: Settings = {
    peers: o.peers.map((p) => p.replace(/\/+$/, '')),
    connectTimeoutMs: positive('connectTimeoutMs', o.connectTimeoutMs, 3000),
    idleTimeoutMs: positive('idleTimeoutMs', o.idleTimeoutMs, 15_000),
    checkIntervalMs: positive('checkIntervalMs', o.checkIntervalMs, 5000, 0),
    backoffInitialMs: positive('backoff.initialMs', o.backoff?.initialMs, 100),
    backoffMaxMs: positive('backoff.maxMs', o.backoff?.maxMs, 5000),
    eventBytesMax: positive('eventBytesMax', o.eventBytesMax, 4 * 1024 * 1024),
    ca: checkCa(o.ca),
  };
  if (s.backoffMaxMs < s.backoffInitialMs) throw new ClientError(CLIENT_ERR.badOptions, 'backoff.maxMs: must be at least backoff.initialMs');
  return s;
}

const PEM_CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

function checkCa(ca: unknown): string | undefined {
  if (ca === undefined) return undefined;
  if (typeof ca !== 'string' || !PEM_CERT_RE.test(ca)) {
    throw new ClientError(CLIENT_ERR.badOptions, 'ca: must be the PEM text of the shard CA\'s certificate (-----BEGIN CERTIFICATE-----...), e.g. readFileSync("ca.crt", "utf8"), not a file name');
  }
  return ca;
}

/** A GET on a peer's API: https with the CA given (the certificate and the host are checked), or plain http. */
function get(url: string, s: Settings, opts: { headers?: Record<string, string>; timeout?: number }, onResponse: (res: IncomingMessage) => void): ClientRequest {
  const base = { method: 'GET', ...opts };
  if (!url.startsWith('https:')) return httpRequest(url, base, onResponse);
  return httpsRequest(url, s.ca === undefined ? base : { ...base, ca: s.ca }, onResponse);
}

/** An error of a request to `apiUrl`, said plainly when it is a refused certificate. */
function requestError(apiUrl: string, err: Error, s: Settings): Error {
  const problem = certificateProblem(err);
  if (problem === null) return err;
  const hint = s.ca === undefined ? "pass the shard CA's certificate as the client's `ca` option" : 'is `ca` this shard\'s CA, and does the peer\'s certificate list the host in its URL?';
  return new ClientError(CLIENT_ERR.tls, `${apiUrl} refused: ${problem}; ${hint}`, { cause: err });
}

/** Reads a bounded body and says what it was: the API's {error: {code, message}} when it is one. */
function describeAnswer(res: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      if (size < ERROR_BODY_BYTES_MAX) chunks.push(c);
      size += c.length;
    });
    const done = (): void => {
      const text = Buffer.concat(chunks).toString('utf8').slice(0, ERROR_BODY_BYTES_MAX);
      try {
        const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
        if (typeof body.error?.code === 'string') {
          resolve(`HTTP ${res.statusCode ?? 0} ${body.error.code}: ${String(body.error.message)}`);
          return;
        }
      } catch {
        // not JSON
      }
      resolve(`HTTP ${res.statusCode ?? 0}`);
    };
    res.on('end', done);
    res.on('error', done);
  });
}

export class ManateeClient extends EventEmitter<ClientEvents> {
  private readonly s: Settings;
  private readonly log: Logger | null;
  private closed = false;
  private current: { state: ClusterState | null; version: number } | null = null;
  private topo: Topology | null = null;
  private peerIndex = 0;
  private following: string | null = null;
  /** Ends the current stream or wait (close(), a failed check). */
  private abortCurrent: ((reason: Error) => void) | null = null;
  private readonly loopDone: Promise<void>;
  /** whenReady() callers to reject on close(). */
  private readonly closedWaiters = new Set<() => void>();

  constructor(options: ClientOptions) {
    super();
    this.s = settingsOf(options);
    this.log = options.logger?.child({ room: 'client' }) ?? null;
    // Start on the next turn, so that listeners attached right after creation see 'ready'.
    this.loopDone = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.run());
  }

  /** The current topology, or null before 'ready'. */
  topology(): Topology | null {
    return this.topo;
  }

  /** The primary's pgUrl, or null before 'ready'. */
  primaryUrl(): string | null {
    return this.topo?.[0] ?? null;
  }

  /** The newest committed state seen, with its version, or null before any. */
  state(): { state: ClusterState | null; version: number } | null {
    return this.current;
  }

  /** The shard CA's certificate given as `ca` (PEM), or undefined. */
  get ca(): string | undefined {
    return this.s.ca;
  }

  /** The API URL of the peer whose stream is followed now, or null. */
  connectedPeer(): string | null {
    return this.following;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Resolves with the topology once known; rejects after `timeoutMs` or on close(). */
  whenReady(timeoutMs = 30_000): Promise<Topology> {
    if (this.topo !== null) return Promise.resolve(this.topo);
    if (this.closed) return Promise.reject(new ClientError(CLIENT_ERR.closed, 'the client is closed'));
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('ready', onReady);
        closedWaiters.delete(onClosed);
      };
      const onReady = (t: Topology): void => {
        cleanup();
        resolve(t);
      };
      const onClosed = (): void => {
        cleanup();
        reject(new ClientError(CLIENT_ERR.closed, 'the client was closed before the topology was known'));
      };
      const closedWaiters = this.closedWaiters;
      const timer = setTimeout(() => {
        cleanup();
        reject(new ClientError(CLIENT_ERR.noPrimary, `no topology known after ${timeoutMs} ms (peers: ${this.s.peers.join(', ')})`));
      }, timeoutMs);
      this.on('ready', onReady);
      closedWaiters.add(onClosed);
    });
  }

  /** A pg Pool whose connections go to the current primary (src/client/pool.ts). */
  pool(config: PrimaryPoolOptions = {}): PrimaryPool {
    return createPool(this, config);
  }

  /** Stops following; no event is emitted afterwards. */
  async close(): Promise<void> {
    if (this.closed) return this.loopDone;
    this.closed = true;
    this.abortCurrent?.(new ClientError(CLIENT_ERR.closed, 'the client is closed'));
    for (const w of [...this.closedWaiters]) w();
    await this.loopDone;
    this.removeAllListeners();
  }

  // ---------------------------------------------------------------- following peers

  private async run(): Promise<void> {
    let failures = 0;
    let backoffMs = this.s.backoffInitialMs;
    const lastErrors: string[] = [];
    while (!this.closed) {
      const url = this.s.peers[this.peerIndex % this.s.peers.length]!;
      let delivered = false;
      const startedMs = Date.now();
      try {
        delivered = await this.follow(url);
        if (this.isClosed) break;
        this.log?.info({ client: 'stream-ended', peer: url }, `the stream of ${url} ended; following the next peer`);
      } catch (err) {
        if (this.isClosed) break;
        const message = errorMessage(err);
        delivered = (err as { delivered?: boolean }).delivered === true;
        this.log?.warn({ client: 'peer-failed', peer: url, err: message }, `following ${url} failed: ${message}`);
        lastErrors.push(`${url}: ${message}`);
        if (lastErrors.length > this.s.peers.length) lastErrors.shift();
      }
      this.following = null;
      this.peerIndex = (this.peerIndex + 1) % this.s.peers.length;
      // A peer that delivers and then drops the stream at once counts as a failure (no tight loop).
      if (delivered && Date.now() - startedMs >= STREAM_HEALTHY_MS) {
        // It worked for a while: try the next peer at once, with a fresh backoff.
        failures = 0;
        backoffMs = this.s.backoffInitialMs;
        continue;
      }
      failures += 1;
      if (delivered) {
        lastErrors.push(`${url}: the stream ended after ${Date.now() - startedMs} ms`);
        if (lastErrors.length > this.s.peers.length) lastErrors.shift();
      }
      if (failures % this.s.peers.length === 0) {
        const err = new ClientError(CLIENT_ERR.noPeer, `no peer could be followed (${failures} attempts in a row); retrying in ${backoffMs} ms: ${lastErrors.join('; ')}`);
        if (this.listenerCount('error') > 0) this.emit('error', err);
        await this.sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, this.s.backoffMaxMs);
      }
    }
    this.following = null;
  }

  /** Waits `ms`, or less when close() is called. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.abortCurrent = null;
        resolve();
      }, ms);
      this.abortCurrent = () => {
        clearTimeout(timer);
        this.abortCurrent = null;
        resolve();
      };
    });
  }

  /**
   * Follows one peer's /watch until it ends. Resolves true when it delivered a state (the peer
   * worked), false when it ended before; rejects with a ClientError (its `delivered` set) on failure.
   */
  private follow(apiUrl: string): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      let delivered = false;
      let settled = false;
      let idleTimer: NodeJS.Timeout | null = null;
      let checkTimer: NodeJS.Timeout | null = null;
      let req: ClientRequest | null = null;
      const finish = (err: Error | null): void => {
        if (settled) return;
        settled = true;
        if (idleTimer !== null) clearTimeout(idleTimer);
        if (checkTimer !== null) clearInterval(checkTimer);
        this.abortCurrent = null;
        req?.destroy();
        if (err === null) {
          resolve(delivered);
        } else {
          const e = err instanceof ClientError ? err : new ClientError(CLIENT_ERR.watch, err.message, { cause: err });
          (e as { delivered?: boolean }).delivered = delivered;
          reject(e);
        }
      };
      const armIdle = (ms: number, what: string): void => {
        if (idleTimer !== null) clearTimeout(idleTimer);
        idleTimer = setTimeout(() => { finish(new ClientError(CLIENT_ERR.watch, `${what} within ${ms} ms`)); }, ms);
      };
      this.abortCurrent = (reason) => { finish(reason); };
      armIdle(this.s.connectTimeoutMs, `${apiUrl} did not answer GET /watch`);
      req = get(`${apiUrl}/watch`, this.s, { headers: { accept: 'text/event-stream' } }, (res) => {
        if (res.statusCode !== 200) {
          void describeAnswer(res).then((what) => { finish(new ClientError(CLIENT_ERR.watch, `GET ${apiUrl}/watch answered ${what}`)); });
          return;
        }
        this.following = apiUrl;
        this.log?.info({ client: 'following', peer: apiUrl }, `following ${apiUrl}/watch`);
        this.emit('connect', apiUrl);
        armIdle(this.s.idleTimeoutMs, `${apiUrl}/watch sent nothing`);
        const parser = new SseParser(this.s.eventBytesMax);
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          armIdle(this.s.idleTimeoutMs, `${apiUrl}/watch sent nothing`);
          let events;
          try {
            events = parser.push(chunk);
          } catch (err) {
            finish(new ClientError(CLIENT_ERR.watch, `${apiUrl}/watch: ${(err as Error).message}`));
            return;
          }
          for (const e of events) {
            if (e.event !== 'state') continue;
            let body: unknown;
            try {
              body = JSON.parse(e.data);
            } catch {
              finish(new ClientError(CLIENT_ERR.watch, `${apiUrl}/watch sent a state event that is not JSON`));
              return;
            }
            if (!isVersionedState(body)) {
              finish(new ClientError(CLIENT_ERR.watch, `${apiUrl}/watch sent a state event without {state, version}`));
              return;
            }
            delivered = true;
            this.apply(body.state, body.version, apiUrl);
            if (this.closed) return;
          }
        });
        res.on('end', () => { finish(null); });
        res.on('error', (err) => { finish(err); });
        res.on('close', () => { finish(null); });
        if (this.s.checkIntervalMs > 0) {
          checkTimer = setInterval(() => {
            void this.check(apiUrl).then((problem) => { if (problem !== null) finish(new ClientError(CLIENT_ERR.watch, problem)); });
          }, this.s.checkIntervalMs);
        }
      });
      req.on('error', (err) => { finish(requestError(apiUrl, err, this.s)); });
      req.end();
    });
  }

  /** A linearizable read on the followed peer (the typed client's GET /state): null when fine, else why to leave it. */
  private async check(apiUrl: string): Promise<string | null> {
    try {
      const api = new ApiClient({
        baseUrl: apiUrl, timeoutMs: this.s.connectTimeoutMs, responseBytesMax: this.s.eventBytesMax,
        ...(this.s.ca !== undefined ? { tls: { ca: this.s.ca } } : {}),
      });
      const body = await api.state();
      // The stream may lag behind the read (it is delivered after the commit is applied): take the newer.
      if (!this.closed) this.apply(body.state, body.version, apiUrl);
      return null;
    } catch (err) {
      if (err instanceof WireError && err.status !== null && err.status !== 200 && err.code !== WIRE_ERR.badResponse) {
        return `${apiUrl} cannot read the committed state (HTTP ${err.status} ${err.code}: ${err.message})`;
      }
      const refused = err instanceof WireError && certificateProblem(err.cause) !== null ? requestError(apiUrl, err.cause as Error, this.s) : err;
      return `${apiUrl}/state failed: ${errorMessage(refused)}`;
    }
  }

  private apply(state: ClusterState | null, version: number, from: string): void {
    const cur = this.current;
    if (cur !== null && version <= cur.version) {
      if (version < cur.version) this.log?.debug({ client: 'stale', peer: from, version, newest: cur.version }, `ignoring version ${version} from ${from}: version ${cur.version} was seen`);
      return;
    }
    this.current = { state, version };
    if (state === null) return;
    this.emit('state', state, version);
    const next = topologyOf(state);
    if (sameTopology(this.topo, next)) return;
    const first = this.topo === null;
    this.topo = next;
    this.log?.info({ client: 'topology', topology: next, generation: state.generation, version, peer: from }, `topology: ${next.join(' -> ')}`);
    if (first) this.emit('ready', next);
    this.emit('topology', next);
  }
}

/** Starts following the shard; see ManateeClient. */
export function createClient(options: ClientOptions): ManateeClient {
  return new ManateeClient(options);
}
