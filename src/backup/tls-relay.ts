// The TLS relay: the byte path of a backup stream over TLS, kept out of Node.
//
// Over plain HTTP the connection itself is zfs send's stdout and zfs recv's stdin (the direct
// stream, server.ts). A TLS connection cannot be handed over that way: its bytes are encrypted by
// Node, 16 KiB record by record on the event loop, and through Node the 1 GiB bootstrap over HTTPS
// ran at 0.16x to 0.43x a shell's `zfs send | zfs recv` (tools/bench/bootstrap.ts: 8 s of Node CPU
// per GiB, both ends). Here each end runs `socat` (OpenSSL) between zfs and one TLS connection
// of its own, with the same certificates as the API:
//
//   zfs send -> pipe -> socat OPENSSL-LISTEN ==TLS 1.3==> socat OPENSSL -> pipe -> zfs recv
//
// Security, as on the API's connections: TLS 1.3 only (min-version), both sides verify the other's
// certificate against the shard's CA alone (cafile, verify=1), each side checks that the other's
// certificate is bound to the peer id it expects (commonname; every peer certificate carries the
// id as its CN next to its URI name): the source accepts one connection only, from the job's peer,
// and the restoring peer accepts only the source's certificate (socat's commonname then replaces
// its check of the host dialled, which manatee-tls-relay makes as well; the host was checked, with
// the peer id, on the API connection that offered the relay), and refuses another peer's with MANATEE_ERR_TLS_PEER_ID. The source starts zfs send only when
// the job's peer says go on the API (its URI-bound certificate and the shard secret checked) and
// names the relay connection it made, which must come from the control connection's address.
//
// The certificates reach socat as files in a private temporary directory (0700) that is removed
// as soon as socat has loaded them (socat cannot read them from Node's stdio, which are sockets).
//
// The relay's program: manatee-tls-relay (relay/manatee-tls-relay.c, built into build/ by
// tools/build-tls-relay.sh) when it is built, else socat. Both make the same checks and write the
// same log lines (socat's format); manatee-tls-relay moves the stream in large chunks where socat
// moves one 16 KiB TLS record per select loop, about 8 system calls each (README, "Bootstrap
// speed": 1.1 CPU seconds instead of 1.8 for the receiving end of 1.3 GB).
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';
import type { Logger } from '../log.js';
import type { SocketEnds } from './socket-bytes.js';
import { BackupError } from './errors.js';
import { TLS_ERR } from '../tls/index.js';
import { isPeerId, PEER_ID_EXPECTED } from '../model/index.js';

/** socat could not be run, did not start its listener or connection, or refused the other side. */
export const BACKUP_ERR_TLS_RELAY = 'MANATEE_ERR_BACKUP_TLS_RELAY';
/**
 * manatee-tls-relay gave up at one of its deadlines (it exited RELAY_EXIT_DEADLINE): no connection
 * to its listener within accept-timeout, or no TCP connection and TLS handshake within
 * handshake-timeout (an other side that accepts TCP and never speaks TLS, or never answers).
 * The message carries its E line, which names the step and the other side.
 */
export const BACKUP_ERR_TLS_RELAY_DEADLINE = 'MANATEE_ERR_BACKUP_TLS_RELAY_DEADLINE';
/** manatee-tls-relay's exit status when a deadline passed (relay/manatee-tls-relay.c, EXIT_DEADLINE). */
export const RELAY_EXIT_DEADLINE = 3;

/** The relay's program: socat, or manatee-tls-relay (relay/manatee-tls-relay.c). */
export interface RelayProgram {
  readonly kind: 'socat' | 'manatee-tls-relay';
  readonly path: string;
}

/**
 * Where tools/build-tls-relay.sh puts manatee-tls-relay: build/ at the package's root, the nearest
 * directory above this module (src/backup, dist/src/backup, or the sitter's bundle under
 * node_modules/.cache) whose package.json is Manatee's. Never a directory further up.
 */
export function builtRelayPath(): string {
  relayPath ??= findBuiltRelayPath();
  return relayPath;
}

/** The package's place does not change while the process runs: its walk up is done once. */
let relayPath: string | undefined;

function findBuiltRelayPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  let dir = here;
  for (let up = 0; up < 5; up++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown };
      if (pkg.name === 'manatee') return join(dir, 'build', 'manatee-tls-relay');
    } catch {
      // no package.json here, or not JSON
    }
    dir = dirname(dir);
  }
  return join(here, '..', '..', 'build', 'manatee-tls-relay');
}

/** manatee-tls-relay when it is built (and can be run: checked at each call, a build may come later), else socat from PATH. */
export function defaultRelayProgram(): RelayProgram {
  const built = builtRelayPath();
  try {
    accessSync(built, fsConstants.X_OK);
    return { kind: 'manatee-tls-relay', path: built };
  } catch {
    return { kind: 'socat', path: 'socat' };
  }
}

/** PEM texts: the shard CA's certificate, this peer's certificate and key. */
export interface RelayTls {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/**
 * socat's transfer size. Its default (8 KiB) cost 2.3x the system CPU of 128 KiB moving 1 GiB through
 * TLS on loopback (client 1.28 s vs 0.43 s); a few TLS records per read is enough.
 */
export const RELAY_BLOCK_BYTES = 256 * 1024;

const ADDR = String.raw`AF=\d+ (\[[^\]]+\]|[^\s:]+):(\d+)`;
const LISTENING_RE = new RegExp(`listening on ${ADDR}`);
const ACCEPTED_RE = new RegExp(`accepting connection from ${ADDR} on ${ADDR}`);
const CONNECTED_RE = new RegExp(`successfully connected from local address ${ADDR}`);
const OPENING_GLOBAL_RE = new RegExp(`opening connection to ${ADDR}`, 'g');
const SECURED_RE = /SSL connection using (\S+)/;

function unbracket(a: string): string {
  return a.replace(/^\[(.*)\]$/, '$1');
}

/** An IPv4 address as a dual-stack socket shows it (::ffff:10.0.0.1) is the plain IPv4 one. */
export function plainAddress(a: string): string {
  const u = unbracket(a);
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(u) ? u.slice(7) : u;
}

const TRANSFERRED_RE = / I transferred (\d+) bytes from /;

/**
 * One relay process (socat, or manatee-tls-relay, which logs the same lines); its log lines (socat -d -d) say what it did. The source's (-d -d -d) also
 * logs a line per transfer, a read of its input pipe (about 180 KiB on average), which counts the
 * stream's bytes exactly; the receiving socat moves one TLS record (16 KiB) per transfer, and a
 * line each would double its writes (strace -c: 103k writes for 51k records), so it counts nothing.
 */
export class SocatRelay {
  private text = '';
  private partial = '';
  /** The stream's bytes (not TLS's) socat passed on so far. */
  transferred = 0;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly listeners = new Set<() => void>();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(readonly child: ChildProcess, readonly what: string, private readonly certDir: string, readonly program: RelayProgram['kind'] = 'socat') {
    child.stderr?.on('data', (c: Buffer) => {
      const lines = (this.partial + c.toString('utf8')).split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) {
        const t = TRANSFERRED_RE.exec(line);
        if (t !== null) this.transferred += Number(t[1]);
        else if (this.text.length < 64 * 1024 && !/ I /.test(line)) this.text += `${line}\n`;
      }
      for (const l of this.listeners) l();
    });
    this.exited = new Promise((resolve) => {
      let spawnError: string | null = null;
      child.once('error', (err) => { spawnError = err.message; if (child.pid === undefined) this.exit(null, null, spawnError, resolve); });
      child.once('close', (code, signal) => { this.exit(code, signal, spawnError, resolve); });
    });
  }

  private exit(code: number | null, signal: NodeJS.Signals | null, spawnError: string | null, resolve: (v: { code: number | null; signal: NodeJS.Signals | null }) => void): void {
    if (this.exitInfo !== null) return;
    if (spawnError !== null) this.text += `\ncannot run ${this.program}: ${spawnError}`;
    this.exitInfo = { code, signal };
    void this.removeCerts();
    for (const l of this.listeners) l();
    resolve(this.exitInfo);
  }

  /** What socat logged so far. */
  get logText(): string {
    return this.text;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitInfo === null;
  }

  /** socat's error lines (E), or its last lines when it logged none. */
  errors(): string {
    const lines = this.text.split('\n').filter((l) => l.trim() !== '');
    const errs = lines.filter((l) => / E /.test(l) || l.startsWith('cannot run'));
    return (errs.length > 0 ? errs : lines.slice(-3)).map((l) => l.replace(/^\S+ \S+ [\w-]+\[\d+\] E /, '')).join('; ');
  }

  /** The first match of `re` in socat's log; waits for it, failing when socat exits first or after timeoutMs. */
  waitFor(re: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const m = re.exec(this.text);
        if (m !== null) {
          done();
          resolve(m);
        } else if (this.exitInfo !== null) {
          done();
          const how = this.exitInfo.signal !== null ? `killed by ${this.exitInfo.signal}` : `exit ${this.exitInfo.code ?? '?'}`;
          if (this.program === 'manatee-tls-relay' && this.exitInfo.code === RELAY_EXIT_DEADLINE) {
            reject(new BackupError(BACKUP_ERR_TLS_RELAY_DEADLINE, `TLS relay (${this.what}): ${this.program} gave up at its deadline (${how}) before ${what}: ${this.errors() || 'no output'}`));
          } else {
            reject(new BackupError(BACKUP_ERR_TLS_RELAY, `TLS relay (${this.what}): ${this.program} ended (${how}) before ${what}: ${this.errors() || 'no output'}`));
          }
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new BackupError(BACKUP_ERR_TLS_RELAY, `TLS relay (${this.what}): no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (): void => { clearTimeout(timer); this.listeners.delete(check); };
      this.listeners.add(check);
      check();
    });
  }

  /** Stops socat (SIGTERM): its connection closes, and the zfs on its pipe sees the end or EPIPE. */
  kill(): void {
    if (this.exitInfo === null) this.child.kill('SIGTERM');
    void this.removeCerts();
  }

  /** Waits for socat to exit, killing it after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    if (this.exitInfo !== null) return;
    const timer = setTimeout(() => { this.kill(); }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  private removed = false;
  async removeCerts(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    await rm(this.certDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

interface SpawnOptions {
  readonly program: RelayProgram;
  readonly tls: RelayTls;
  readonly log: Logger;
}

type CertFiles = { ca: string; cert: string; key: string };

async function spawnRelay(o: SpawnOptions, what: string, args: (files: CertFiles) => string[], stdio: StdioOptions): Promise<SocatRelay> {
  let dir: string | null = null;
  const files: CertFiles = { ca: '', cert: '', key: '' };
  try {
    dir = await mkdtemp(join(tmpdir(), 'manatee-relay-'));
    Object.assign(files, { ca: join(dir, 'ca.crt'), cert: join(dir, 'peer.crt'), key: join(dir, 'peer.key') });
    await writeFile(files.ca, o.tls.ca, { mode: 0o600 });
    await writeFile(files.cert, o.tls.cert, { mode: 0o600 });
    await writeFile(files.key, o.tls.key, { mode: 0o600 });
  } catch (err) {
    if (dir !== null) await rm(dir, { recursive: true, force: true });
    throw new BackupError(BACKUP_ERR_TLS_RELAY, `TLS relay (${what}): cannot write the certificates for ${o.program.kind} in ${dir ?? tmpdir()}: ${(err as Error).message}`, { cause: err });
  }
  const argv = args(files);
  const child = spawn(o.program.path, argv, { stdio });
  const relay = new SocatRelay(child, what, dir, o.program.kind);
  const certDir = dir;
  o.log.info({ pid: child.pid, what, program: o.program.path, args: argv.map((a) => a.replace(certDir, '<certs>')) }, 'backup: TLS relay started');
  return relay;
}

/** socat's arguments: its log (-d -d, and a line per transfer with `count`), its transfer size, one direction. */
const SOCAT_ARGS = (count: boolean): string[] => ['-d', '-d', ...(count ? ['-d'] : []), '-b', String(RELAY_BLOCK_BYTES), '-u'];

const TLS_OPTS = (f: { ca: string; cert: string; key: string }): string => `cert=${f.cert},key=${f.key},cafile=${f.ca},verify=1,min-version=TLS1.3`;

/**
 * manatee-tls-relay's deadlines, in whole seconds (its defaults when left out: accept 60, handshake
 * 10); socat is given none (the waits in Node stop it).
 */
export interface RelayDeadlines {
  /** The listener: how long it waits for its one connection. */
  readonly acceptTimeoutS?: number;
  /** The listener: the TLS handshake of that connection; the connecting end: its TCP connection and TLS handshake together. */
  readonly handshakeTimeoutS?: number;
}

function deadlineArgs(d: RelayDeadlines, listener: boolean): string[] {
  return [
    ...(d.handshakeTimeoutS !== undefined ? [`handshake-timeout=${d.handshakeTimeoutS}`] : []),
    ...(listener && d.acceptTimeoutS !== undefined ? [`accept-timeout=${d.acceptTimeoutS}`] : []),
  ];
}

/** The source's end: listening on `bindAddress` (an ephemeral port) for one connection from `peerId`. */
export interface RelayListener {
  readonly relay: SocatRelay;
  readonly port: number;
  /** socat's stdin: the write end of its pipe, for zfs send's stdout. */
  readonly input: Socket;
}

export async function listenRelay(o: SpawnOptions & RelayDeadlines & { bindAddress: string; peerId: string; timeoutMs: number }): Promise<RelayListener> {
  const bind = plainAddress(o.bindAddress);
  const v6 = bind.includes(':');
  const relay = await spawnRelay(o, `to peer ${o.peerId}`, (f) => o.program.kind === 'socat'
    ? [...SOCAT_ARGS(true), 'STDIN', `OPENSSL-LISTEN:0,${v6 ? 'pf=ip6,' : ''}bind=${v6 ? `[${bind}]` : bind},${TLS_OPTS(f)},commonname=${o.peerId}`]
    : ['listen', bind, o.peerId, f.cert, f.key, f.ca, 'count', ...deadlineArgs(o, true)], ['pipe', 'ignore', 'pipe']);
  try {
    const m = await relay.waitFor(LISTENING_RE, o.timeoutMs, 'its listener');
    void relay.removeCerts();
    return { relay, port: Number(m[2]), input: relay.child.stdin as unknown as Socket };
  } catch (err) {
    relay.kill();
    throw err;
  }
}

/**
 * The accepted connection of a listener, once its TLS handshake (and the client's check) passed.
 * Rejects with MANATEE_ERR_BACKUP_TLS_RELAY_DEADLINE when manatee-tls-relay gave up at its accept or
 * handshake deadline, else with MANATEE_ERR_BACKUP_TLS_RELAY.
 */
export async function acceptedConnection(l: RelayListener, timeoutMs: number): Promise<{ ends: SocketEnds; cipher: string }> {
  const secured = await l.relay.waitFor(SECURED_RE, timeoutMs, 'a verified TLS connection');
  const m = ACCEPTED_RE.exec(l.relay.logText);
  if (m === null) throw new BackupError(BACKUP_ERR_TLS_RELAY, `TLS relay: ${l.relay.program} secured a connection it did not log accepting`);
  return {
    ends: { remoteAddress: plainAddress(m[1]!), remotePort: Number(m[2]), localAddress: plainAddress(m[3]!), localPort: Number(m[4]) },
    cipher: secured[1]!,
  };
}

/** The restoring peer's end: connected to the source's relay, socat's stdout for zfs recv's stdin. */
export interface RelayConnection {
  readonly relay: SocatRelay;
  readonly output: Socket;
  readonly ends: SocketEnds;
  readonly cipher: string;
}

/** socat's words for a server certificate whose names do not include the commonname asked for (manatee-tls-relay's too, and for the URI name). */
const NAME_MISMATCH_RE = /commonName does not match|peer URI name does not match/;

/**
 * The restoring peer's end: a connection to the relay of source `peerId` at host:port. Rejects
 * with MANATEE_ERR_TLS_PEER_ID when the relay's certificate (of the shard CA) is not `peerId`'s,
 * with MANATEE_ERR_BACKUP_TLS_RELAY_DEADLINE when manatee-tls-relay had no TCP connection and TLS
 * handshake within its handshake deadline (every address of the host tried), else with
 * MANATEE_ERR_BACKUP_TLS_RELAY.
 */
export async function connectRelay(o: SpawnOptions & Pick<RelayDeadlines, 'handshakeTimeoutS'> & { host: string; port: number; peerId: string; timeoutMs: number }): Promise<RelayConnection> {
  const host = o.host.includes(':') && !o.host.startsWith('[') ? `[${o.host}]` : o.host;
  if (!isPeerId(o.peerId)) throw new BackupError(TLS_ERR.badArgument, `TLS relay: ${JSON.stringify(o.peerId)} is not a peer id: ${PEER_ID_EXPECTED}`);
  const relay = await spawnRelay(o, `from ${host}:${o.port}`, (f) => o.program.kind === 'socat'
    ? [...SOCAT_ARGS(false), `OPENSSL:${host}:${o.port},${TLS_OPTS(f)},commonname=${o.peerId},keepalive`, 'STDOUT']
    : ['connect', unbracket(o.host), String(o.port), o.peerId, f.cert, f.key, f.ca, ...deadlineArgs(o, false)], ['ignore', 'pipe', 'pipe']);
  try {
    // manatee-tls-relay gives up on its own at its handshake deadline (default 10 s, below the
    // restore's 15 s), for the TCP connection and the TLS handshake together. socat has no such
    // option here (with connect-timeout it does not log the connection's local address): the
    // wait's own timeout stops a connection that hangs, or a source that never speaks TLS.
    const c = await relay.waitFor(CONNECTED_RE, o.timeoutMs, 'its connection');
    const secured = await relay.waitFor(SECURED_RE, o.timeoutMs, 'a verified TLS connection');
    void relay.removeCerts();
    // The address dialled as socat resolved it (ss needs an address, not a name): the last one
    // tried, the one that connected (manatee-tls-relay tries the host's addresses in turn).
    const opening = [...relay.logText.matchAll(OPENING_GLOBAL_RE)].at(-1);
    const remote = opening === undefined ? unbracket(host) : opening[1]!;
    return {
      relay,
      output: relay.child.stdout as unknown as Socket,
      ends: { localAddress: plainAddress(c[1]!), localPort: Number(c[2]), remoteAddress: plainAddress(remote), remotePort: o.port },
      cipher: secured[1]!,
    };
  } catch (err) {
    relay.kill();
    if (NAME_MISMATCH_RE.test(relay.logText)) {
      throw new BackupError(TLS_ERR.peerId, `TLS relay at ${host}:${o.port}: its certificate is not bound to peer "${o.peerId}", the source dialled (${relay.errors()})`, { cause: err });
    }
    throw err;
  }
}
