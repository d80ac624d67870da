// The zfs restore over HTTPS through the TLS relay (src/backup/tls-relay.ts): zfs send and zfs recv
// on the relay's pipes, the relay's program at both ends with the shard's certificates, on a real
// zfs-fuse pool over real TLS on 127.0.0.1. Every test runs with each program: manatee-tls-relay
// (built by tools/build-tls-relay.sh) and socat. The direct stream's behaviours (sender dies,
// abort, idle timeout, DELETE) hold here too, and the relay serves only the job's peer: the shard
// CA, the peer id, the connection the peer named on its go.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { connect as netConnect, createServer as netServer, type Socket } from 'node:net';
import { execa } from 'execa';
import Fastify, { type FastifyInstance } from 'fastify';
import { silentLogger } from '../../src/log.js';
import { Zfs, type ZfsSendStream, type ZfsSocketStream } from '../../src/zfs/index.js';
import { backupRoutes, ZfsBackupBackend, RestoreFailedError, type BackupJobStatus } from '../../src/backup/index.js';
import { builtRelayPath, connectRelay, defaultRelayProgram, plainAddress, type RelayProgram } from '../../src/backup/tls-relay.js';
import type { RestoreProgress } from '../../src/model/index.js';
import { createTestPool, ZFS_HOOK_TIMEOUT_MS, type TestPool } from '../../tools/lib/zfs-pool.js';
import { waitFor } from '../../tools/lib/wait.js';
import { capturingLogger } from '../../tools/lib/memory-peer.js';
import { expiredPeerCert, handMadePeerCert, makeTestCa } from '../helpers/certs.js';
import { expectOldBack as expectOldBackIn, faultySend, oldPeer as oldPeerIn, type FaultySend, type SendMode } from './zfs-stream-faults.js';

const SECRET = 'shard-secret-for-tls-tests';
const log = silentLogger();
let pool: TestPool;
let zfs: Zfs;
let srcDs: string;
let srcMp: string;
let faults: FaultySend;
const setMode = (m: SendMode): Promise<void> => faults.setMode(m);

type Pem = { ca: string; cert: string; key: string };
const pems = new Map<string, Pem>();
let otherCaB: Pem;
let expiredB: Pem;
/** CN b (socat's check), but the URI name of peer c. */
let cnBUriC: Pem;

const PROGRAMS: RelayProgram[] = [{ kind: 'manatee-tls-relay', path: builtRelayPath() }, { kind: 'socat', path: 'socat' }];
/** The program of the tests running now (each describe below runs once per program). */
let program: RelayProgram = PROGRAMS[0]!;

/** Counts the streams served on a socket or pipe (sendToSocket) and through this process (send). */
class CountingZfs extends Zfs {
  readonly served = { node: 0, direct: 0 };
  override sendToSocket(snapshot: string, socket: Socket, opts: { fromSnapshot?: string } = {}): ZfsSocketStream {
    this.served.direct++;
    return super.sendToSocket(snapshot, socket, opts);
  }
  override send(snapshot: string, opts: { fromSnapshot?: string } = {}): ZfsSendStream {
    this.served.node++;
    return super.send(snapshot, opts);
  }
}
let serverZfs: CountingZfs;
const apps: FastifyInstance[] = [];
let url: string;

/** The source: peer a's backup server, or one holding another peer's certificate on its API (`as`) or its relay (`relayAs`). */
async function startSource(extra: { relayProgram?: RelayProgram; pendingTimeoutMs?: number } = {}, as = 'a', relayAs = as): Promise<string> {
  const a = pems.get(as)!;
  const relay = pems.get(relayAs)!;
  const app = Fastify({ logger: false, https: { ...a, minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: false } });
  await app.register(backupRoutes, { zfs: serverZfs, dataset: srcDs, secret: SECRET, log, requirePeerCertificate: true, tlsRelay: () => relay, directProgressIntervalMs: 50, relayProgram: program, ...extra });
  await app.listen({ port: 0, host: '127.0.0.1' });
  apps.push(app);
  const addr = app.server.address();
  return `https://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;
}

function backend(dataset: string, mountpoint: string, extra: Partial<ConstructorParameters<typeof ZfsBackupBackend>[0]> = {}): ZfsBackupBackend {
  return new ZfsBackupBackend({ zfs, dataset, mountpoint, peerId: 'b', secret: SECRET, log, pgUser: null, progressIntervalMs: 20, verify: false, tls: () => pems.get('b')!, relayProgram: program, ...extra });
}

const source = (backupUrl = url): { peerId: string; pgUrl: string; backupUrl: string } => ({ peerId: 'a', pgUrl: 'postgres://unused', backupUrl });

/** One HTTPS request as peer `as`; resolves with the status and body. */
function request(as: Pem, method: string, path: string, opts: { body?: string; headers?: Record<string, string>; base?: string } = {}): Promise<{ status: number; headers: IncomingMessage['headers']; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'x-manatee-secret': SECRET, ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}), ...opts.headers };
    const req = httpsRequest(`${opts.base ?? url}${path}`, { method, headers, ...as, minVersion: 'TLSv1.3', agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString('utf8'); });
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }); });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function jobStatus(id: string, base = url): Promise<BackupJobStatus> {
  return JSON.parse((await request(pems.get('b')!, 'GET', `/backup/jobs/${id}`, { base })).body) as BackupJobStatus;
}

/** Relay processes (socat, manatee-tls-relay) this test process started (the source's and the restoring peer's), by pid. */
async function relayChildren(): Promise<string> {
  const r = await execa('pgrep', ['-a', '-P', String(process.pid), '-f', '^([^ ]*/)?(socat|manatee-tls-relay) '], { reject: false });
  return r.stdout.trim();
}

async function noRelayLeft(): Promise<void> {
  await waitFor('no relay process left running', async () => ((await relayChildren()) === '' ? true : null), { timeoutMs: 30_000 });
}

const stalledSendGone = (): Promise<void> => faults.stalledSendGone();

/** The source's job failed because its relay ended while zfs send ran. */
async function expectRelayEndedJob(jobId: string): Promise<void> {
  const st = await jobStatus(jobId);
  expect(st.state).toBe('failed');
  expect(st.error).toMatch(/the TLS relay to the peer ended mid-stream/);
}
const oldPeer = (name: string): Promise<{ ds: string; mp: string }> => oldPeerIn(zfs, pool, name);
const expectOldBack = (ds: string, mp: string): Promise<void> => expectOldBackIn(zfs, ds, mp, `${pool.name}/peers`);

/** After a restore the source stopped: the old dataset is back, and no send nor relay is left running. */
async function expectStoppedAndBack(ds: string, mp: string): Promise<void> {
  await expectOldBack(ds, mp);
  await stalledSendGone();
  await noRelayLeft();
}

beforeAll(async () => {
  pool = await createTestPool({ sizeMb: 384 });
  zfs = new Zfs({ log });
  srcDs = `${pool.name}/a`;
  srcMp = join(pool.dir, 'a-mnt');
  await zfs.createDataset(srcDs, { mountpoint: srcMp });
  // Random data so that the stream is large (no compression) and failures land mid-stream.
  await writeFile(join(srcMp, 'big'), randomBytes(24 * 1024 * 1024));
  await writeFile(join(srcMp, 'marker'), 'v1');
  await zfs.createSnapshot(srcDs);
  // Failures on the source, made by a zfs wrapper (`mode` file next to it): "die", "stall" and
  // "hang" (SendMode says what each does); anything else is plain zfs.
  faults = await faultySend(join(pool.dir, 'zfs-wrapper'));
  serverZfs = new CountingZfs({ log, zfsPath: faults.path });
  const ca = await makeTestCa(join(pool.dir, 'ca'));
  for (const id of ['a', 'b', 'c']) {
    const f = await ca.peer(id);
    pems.set(id, { ca: await readFile(f.caFile, 'utf8'), cert: await readFile(f.certFile, 'utf8'), key: await readFile(f.keyFile, 'utf8') });
  }
  const other = await makeTestCa(join(pool.dir, 'other-ca'), 'Another CA');
  const ob = await other.peer('b');
  otherCaB = { ca: pems.get('b')!.ca, cert: await readFile(ob.certFile, 'utf8'), key: await readFile(ob.keyFile, 'utf8') };
  const eb = await expiredPeerCert(ca, 'b', join(pool.dir, 'expired'));
  expiredB = { ca: pems.get('b')!.ca, cert: await readFile(eb.certFile, 'utf8'), key: await readFile(eb.keyFile, 'utf8') };
  const cb = await handMadePeerCert(ca, 'c', join(pool.dir, 'cn-b-uri-c'), { cn: 'b', tag: 'cn-b' });
  cnBUriC = { ca: pems.get('b')!.ca, cert: await readFile(cb.certFile, 'utf8'), key: await readFile(cb.keyFile, 'utf8') };
  const ca2 = await handMadePeerCert(ca, 'c', join(pool.dir, 'cn-a-uri-c'), { cn: 'a', tag: 'cn-a' });
  pems.set('cn-a-uri-c', { ca: pems.get('a')!.ca, cert: await readFile(ca2.certFile, 'utf8'), key: await readFile(ca2.keyFile, 'utf8') });
}, ZFS_HOOK_TIMEOUT_MS);
afterAll(async () => {
  await setMode('plain').catch(() => undefined);
  for (const app of apps) await app.close();
  await pool.destroy();
});

it('the relay program is manatee-tls-relay once built (npm test builds it), else socat', () => {
  expect(defaultRelayProgram()).toEqual(PROGRAMS[0]);
});

describe.each(PROGRAMS)('with $kind', (p) => {
  beforeAll(async () => {
    program = p;
    url = await startSource();
  });

  describe('TLS relay', () => {
    it('a full and an incremental restore go from zfs send to zfs recv through the relay over TLS 1.3, none of it through Node', async () => {
      const before = { ...serverZfs.served };
      const ds = `${pool.name}/peers/relay-${program.kind}`;
      const mp = join(pool.dir, `relay-mnt-${program.kind}`);
      // The source's data as this program's run starts (the other program's run changed it).
      await writeFile(join(srcMp, 'marker'), `v1 ${program.kind}`);
      const cap = capturingLogger();
      const b = backend(ds, mp, { log: cap.logger });
      const full = await b.restore({ source: source(), reason: 'bootstrap' });
      expect(full.method).toBe('full');
      expect(full.bytes).toBeGreaterThan(24 * 1024 * 1024);
      // The source's relay counted the stream itself (not its TLS records): both sides say the same.
      const fullJob = cap.lines().find((l) => typeof l['jobId'] === 'string')?.['jobId'] as string;
      const fullStatus = await jobStatus(fullJob);
      expect(fullStatus.state).toBe('done');
      expect(fullStatus.bytesSent).toBe(full.bytes);
      expect(await readFile(join(mp, 'marker'), 'utf8')).toBe(`v1 ${program.kind}`);
      await writeFile(join(srcMp, 'marker'), `v2 ${program.kind}`);
      const inc = await b.restore({ source: source(), reason: 'rebuild' });
      expect(inc.method).toBe('incremental');
      expect(await readFile(join(mp, 'marker'), 'utf8')).toBe(`v2 ${program.kind}`);
      expect(serverZfs.served).toEqual({ node: before.node, direct: before.direct + 2 });
      // TLS 1.3 suites are the TLS_* ones (1.2's are named ECDHE-...).
      const connected = cap.lines().filter((l) => l['msg'] === 'restore: TLS relay connected');
      expect(connected).toHaveLength(2);
      for (const l of connected) expect(l['cipher']).toMatch(/^TLS_AES_|^TLS_CHACHA20_/);
      await noRelayLeft();
    });

    it('a source whose zfs send dies mid-stream: zfs recv refuses the truncated stream, the error says why, the old dataset is back', async () => {
      const { ds, mp } = await oldPeer(`relay-died-${program.kind}`);
      await setMode('die');
      try {
        const err = await backend(ds, mp).restore({ source: source(), reason: 'rebuild' }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(RestoreFailedError);
        expect(((err as Error).cause as { code?: string }).code).toBe('MANATEE_ERR_ZFS_STREAM_INTERRUPTED');
        expect((err as Error).message).toMatch(/the source's stream failed: zfs send failed: zfs send \S+ failed \(exit 3\)/);
        expect((err as Error).message).toMatch(/previous dataset was put back/);
      } finally {
        await setMode('plain');
      }
      await expectOldBack(ds, mp);
      await noRelayLeft();
    });

    it('a source whose zfs send closes its output and never exits: its relay ends cleanly, the send is stopped 2 s later and named the reason', async () => {
      const { ds, mp } = await oldPeer(`relay-hung-${program.kind}`);
      await setMode('hang');
      try {
        const cap = capturingLogger();
        const started = Date.now();
        const err = await backend(ds, mp, { log: cap.logger }).restore({ source: source(), reason: 'rebuild' }).catch((e: unknown) => e);
        // A lower bound only: the source waited its grace for zfs send's own exit before stopping it.
        expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
        expect(err).toBeInstanceOf(RestoreFailedError);
        expect((err as Error).message).toMatch(/the source's stream failed: the TLS relay to the peer ended mid-stream: .*exiting with status 0/);
        await expectRelayEndedJob(cap.lines().find((l) => typeof l['jobId'] === 'string')?.['jobId'] as string);
      } finally {
        await setMode('plain');
      }
      await expectStoppedAndBack(ds, mp);
    });

    it('a restore aborted mid-stream (progress from the kernel first) stops the source\'s zfs send and both relays, and puts the old dataset back', async () => {
      const { ds, mp } = await oldPeer(`relay-aborted-${program.kind}`);
      await setMode('stall');
      const ac = new AbortController();
      const seen: RestoreProgress[] = [];
      try {
        const err = await backend(ds, mp).restore({
          source: source(), reason: 'rebuild', signal: ac.signal,
          onProgress: (p) => { seen.push(p); if (p.phase === 'receiving' && p.bytesDone >= 1024 * 1024) ac.abort(new Error('operator cancelled')); },
        }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(RestoreFailedError);
        expect((err as Error).message).toMatch(/stream aborted: operator cancelled/);
      } finally {
        await setMode('plain');
      }
      expect(seen.some((p) => p.phase === 'receiving' && p.bytesDone >= 1024 * 1024)).toBe(true);
      await expectStoppedAndBack(ds, mp);
    });

    it('a relay stream that stops flowing fails the restore after streamIdleTimeoutMs, and the source stops its send', async () => {
      const { ds, mp } = await oldPeer(`relay-idle-${program.kind}`);
      await setMode('stall');
      try {
        const err = await backend(ds, mp, { streamIdleTimeoutMs: 1500 }).restore({ source: source(), reason: 'rebuild' }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(RestoreFailedError);
        expect((err as Error).message).toMatch(/interrupted: no data for 1500 ms/);
      } finally {
        await setMode('plain');
      }
      await expectStoppedAndBack(ds, mp);
    });

    it('DELETE of a sending job stops it: the peer\'s restore fails naming the cancellation', async () => {
      const { ds, mp } = await oldPeer(`relay-deleted-${program.kind}`);
      await setMode('stall');
      try {
        const cap = capturingLogger();
        const restore = backend(ds, mp, { log: cap.logger }).restore({ source: source(), reason: 'rebuild' }).catch((e: unknown) => e);
        const jobId = await waitFor('a sending job', async () => {
          const id = cap.lines().find((l) => typeof l['jobId'] === 'string')?.['jobId'] as string | undefined;
          if (id === undefined) return null;
          const st = await jobStatus(id);
          return st.state === 'sending' && st.bytesSent >= 1024 * 1024 ? id : null;
        }, { timeoutMs: 30_000 });
        const del = await request(pems.get('b')!, 'DELETE', `/backup/jobs/${jobId}`);
        expect(del.status).toBe(204);
        const err = await restore;
        expect(err).toBeInstanceOf(RestoreFailedError);
        expect((err as Error).message).toMatch(/the source's stream failed: cancelled by the peer while sending/);
        const st = await jobStatus(jobId);
        expect(st.state).toBe('failed');
        expect(st.error).toMatch(/cancelled by the peer while sending/);
      } finally {
        await setMode('plain');
      }
      await expectOldBack(ds, mp);
      await noRelayLeft();
    });

    it('the source\'s relay killed mid-stream: the source stops its send, the restore fails and the old dataset is back', async () => {
      const { ds, mp } = await oldPeer(`relay-killed-${program.kind}`);
      await setMode('stall');
      try {
        const cap = capturingLogger();
        const restore = backend(ds, mp, { log: cap.logger }).restore({ source: source(), reason: 'rebuild' }).catch((e: unknown) => e);
        const jobId = await waitFor('a sending job', async () => {
          const id = cap.lines().find((l) => typeof l['jobId'] === 'string')?.['jobId'] as string | undefined;
          if (id === undefined) return null;
          const st = await jobStatus(id);
          return st.state === 'sending' && st.bytesSent >= 1024 * 1024 ? id : null;
        }, { timeoutMs: 30_000 });
        // The source's relay: the one of this process's children that listens.
        const r = await execa('pgrep', ['-P', String(process.pid), '-f', program.kind === 'socat' ? 'socat .*OPENSSL-LISTEN' : 'manatee-tls-relay listen '], { reject: false });
        const pids = r.stdout.trim().split('\n').filter((x) => x !== '').map(Number);
        expect(pids).toHaveLength(1);
        process.kill(pids[0]!, 'SIGKILL');
        const err = await restore;
        expect(err).toBeInstanceOf(RestoreFailedError);
        expect((err as Error).message).toMatch(/interrupted/);
        await expectRelayEndedJob(jobId);
      } finally {
        await setMode('plain');
      }
      await expectStoppedAndBack(ds, mp);
    });
  });

  describe('TLS relay security', () => {
    async function newJob(): Promise<{ jobId: string; streamPath: string }> {
      const r = await request(pems.get('b')!, 'POST', '/backup/jobs', { body: '{"peerId":"b"}' });
      expect(r.status).toBe(201);
      return JSON.parse(r.body) as { jobId: string; streamPath: string };
    }
    async function offer(as: Pem, streamPath: string): Promise<{ status: number; port: number | null; body: string }> {
      const r = await request(as, 'GET', streamPath, { headers: { 'x-manatee-stream-mode': 'tls-relay' } });
      const port = r.status === 200 ? (JSON.parse(r.body) as { relayPort: number }).relayPort : null;
      if (r.status === 200) expect(r.headers['x-manatee-stream-mode']).toBe('tls-relay');
      return { status: r.status, port, body: r.body };
    }
    const go = (jobId: string, fromPort: string | null): Promise<{ status: number; body: string }> =>
      request(pems.get('b')!, 'POST', `/backup/jobs/${jobId}/go`, { headers: { 'content-length': '0', ...(fromPort !== null ? { 'x-manatee-relay-from-port': fromPort } : {}) } });

    it('the stream of a job asked with another peer\'s certificate is refused (403) and the job stays pending', async () => {
      const job = await newJob();
      const r = await offer(pems.get('c')!, job.streamPath);
      expect(r.status).toBe(403);
      expect(JSON.parse(r.body)).toMatchObject({ code: 'MANATEE_ERR_BACKUP_PEER_CERTIFICATE', message: expect.stringMatching(/is for peer b, not for c/) });
      expect((await jobStatus(job.jobId)).state).toBe('pending');
      await request(pems.get('b')!, 'DELETE', `/backup/jobs/${job.jobId}`);
    });

    it('the relay refuses a connection with another peer\'s certificate, one of another CA, or an expired one, and no stream starts', async () => {
      const sendsBefore = serverZfs.served.direct;
      const cases: Array<readonly [string, Pem, RegExp]> = [['c', pems.get('c')!, /commonName does not match/], ['b of another CA', otherCaB, /certificate verify failed/], ['b expired', expiredB, /certificate verify failed|certificate expired/]];
      // socat checks the CN only; manatee-tls-relay also the URI name that binds the peer id.
      if (program.kind === 'manatee-tls-relay') cases.push(['CN b with the URI name of c', cnBUriC, /peer URI name does not match "urn:manatee:peer:b"/]);
      for (const [who, pem, why] of cases) {
        const job = await newJob();
        const o = await offer(pems.get('b')!, job.streamPath);
        expect(o.status).toBe(200);
        // The handshake may look complete to the client (TLS 1.3) before the source refuses it.
        const conn: Awaited<ReturnType<typeof connectRelay>> | Error = await connectRelay({ program, tls: pem, log, host: '127.0.0.1', port: o.port!, peerId: 'a', timeoutMs: 30_000 }).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
        const fromPort = conn instanceof Error ? '1' : String(conn.ends.localPort);
        // The source's relay refused it: the go finds it ended (409), or fails on it (500), as it comes.
        const g = await go(job.jobId, fromPort);
        expect(g.status, `${who}: ${g.body}`).toBeGreaterThanOrEqual(400);
        expect(JSON.parse(g.body), who).toMatchObject({ code: expect.stringMatching(/^MANATEE_ERR_BACKUP_(TLS_RELAY|JOB_CONFLICT)$/) });
        const st = await jobStatus(job.jobId);
        expect(st.state).toBe('failed');
        expect(st.error, who).toMatch(why);
        expect(st.sendPid).toBeNull();
        if (!(conn instanceof Error)) conn.relay.kill();
      }
      expect(serverZfs.served.direct).toBe(sendsBefore);
      await noRelayLeft();
    });

    it('a source whose API holds another peer\'s certificate of the same CA is refused (MANATEE_ERR_TLS_PEER_ID): no job, no stream', async () => {
      const before = { ...serverZfs.served };
      const asC = await startSource({}, 'c');
      const { ds, mp } = await oldPeer(`api-of-c-${program.kind}`);
      const err = await backend(ds, mp).restore({ source: source(asC), reason: 'rebuild' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'MANATEE_ERR_TLS_PEER_ID', message: expect.stringMatching(/cannot reach the backup server at https:\/\/127\.0\.0\.1:\d+: the server's certificate is bound to peer "c", not to "a", the peer dialled/) });
      expect(serverZfs.served).toEqual(before);
      await expectOldBack(ds, mp);
    });

    it('a source whose relay holds another peer\'s certificate of the same CA is refused (MANATEE_ERR_TLS_PEER_ID), not asked again through Node: no stream, the old dataset is back', async () => {
      const before = { ...serverZfs.served };
      const relayOfC = await startSource({}, 'a', 'c');
      const { ds, mp } = await oldPeer(`relay-of-c-${program.kind}`);
      const cap = capturingLogger();
      const err = await backend(ds, mp, { log: cap.logger }).restore({ source: source(relayOfC), reason: 'rebuild' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RestoreFailedError);
      const cause = (err as Error).cause as { code?: string; message?: string };
      expect(cause.code).toBe('MANATEE_ERR_TLS_PEER_ID');
      expect(cause.message).toMatch(/refused the TLS relay of job \S+ at https:\/\/127\.0\.0\.1:\d+ port \d+: TLS relay at 127\.0\.0\.1:\d+: its certificate is not bound to peer "a", the source dialled \(.*commonName does not match hostname "a"/);
      expect(cap.lines().some((l) => l['msg'] === 'restore: the TLS relay could not be used; asking for the stream through Node')).toBe(false);
      expect(serverZfs.served).toEqual(before);
      await expectOldBack(ds, mp);
      await noRelayLeft();
    });

    // socat checks the CN only, so this case exists for manatee-tls-relay alone (not a skipped test for socat).
    if (p.kind === 'manatee-tls-relay') it('a source whose relay holds a certificate with the source\'s CN but another peer\'s URI name is refused by manatee-tls-relay (MANATEE_ERR_TLS_PEER_ID)', async () => {
      const before = { ...serverZfs.served };
      const relayOfC = await startSource({}, 'a', 'cn-a-uri-c');
      const { ds, mp } = await oldPeer(`relay-cn-a-uri-c-${program.kind}`);
      const err = await backend(ds, mp).restore({ source: source(relayOfC), reason: 'rebuild' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RestoreFailedError);
      const cause = (err as Error).cause as { code?: string; message?: string };
      expect(cause.code).toBe('MANATEE_ERR_TLS_PEER_ID');
      expect(cause.message).toMatch(/its certificate is not bound to peer "a", the source dialled \(.*peer URI name does not match "urn:manatee:peer:a"/);
      expect(serverZfs.served).toEqual(before);
      await expectOldBack(ds, mp);
      await noRelayLeft();
    });

    it('a relay asked for a peer id that is none fails before its program runs (MANATEE_ERR_TLS_BAD_ARGUMENT)', async () => {
      const err = await connectRelay({ program, tls: pems.get('b')!, log, host: '127.0.0.1', port: 1, peerId: 'a,verify=0', timeoutMs: 5000 }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'MANATEE_ERR_TLS_BAD_ARGUMENT', message: expect.stringMatching(/"a,verify=0" is not a peer id/) });
      expect(await relayChildren()).toBe('');
    });

    it('the relay refuses plain TCP (no TLS), and no stream starts', async () => {
      const sendsBefore = serverZfs.served.direct;
      const job = await newJob();
      const o = await offer(pems.get('b')!, job.streamPath);
      expect(o.status).toBe(200);
      const plain = netConnect({ host: '127.0.0.1', port: o.port! });
      plain.on('error', () => undefined);
      await new Promise<void>((r, j) => { plain.once('connect', r); plain.once('error', j); });
      plain.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
      const g = await go(job.jobId, String(plain.localPort));
      expect(g.status, g.body).toBeGreaterThanOrEqual(400);
      expect(JSON.parse(g.body)).toMatchObject({ code: expect.stringMatching(/^MANATEE_ERR_BACKUP_(TLS_RELAY|JOB_CONFLICT)$/) });
      const st = await jobStatus(job.jobId);
      expect(st.state).toBe('failed');
      // The job fails on the relay's end, or the go on it, as they come: either way on the refused handshake.
      expect(st.error).toMatch(/(TLS relay ended before the peer started the stream|ended \(exit 1\) before a verified TLS connection): SSL_accept\(\)/);
      expect(st.sendPid).toBeNull();
      plain.destroy();
      expect(serverZfs.served.direct).toBe(sendsBefore);
      await noRelayLeft();
    });

    it('go must name the relay connection the peer made: a missing port is a 400, another port a 403, and the job fails', async () => {
      const job = await newJob();
      const o = await offer(pems.get('b')!, job.streamPath);
      const missing = await go(job.jobId, null);
      expect(missing.status).toBe(400);
      expect(JSON.parse(missing.body)).toMatchObject({ code: 'MANATEE_ERR_BACKUP_BAD_REQUEST', message: expect.stringMatching(/x-manatee-relay-from-port/) });
      expect((await jobStatus(job.jobId)).state).toBe('failed');

      const job2 = await newJob();
      const o2 = await offer(pems.get('b')!, job2.streamPath);
      const conn = await connectRelay({ program, tls: pems.get('b')!, log, host: '127.0.0.1', port: o2.port!, peerId: 'a', timeoutMs: 30_000 });
      try {
        const wrong = await go(job2.jobId, String(conn.ends.localPort === 1 ? 2 : 1));
        expect(wrong.status).toBe(403);
        expect(JSON.parse(wrong.body)).toMatchObject({ code: 'MANATEE_ERR_BACKUP_PEER_CERTIFICATE', message: expect.stringMatching(/relay's connection came from 127\.0\.0\.1:\d+, not from the peer's 127\.0\.0\.1:1/) });
        const st = await jobStatus(job2.jobId);
        expect(st.state).toBe('failed');
      } finally {
        conn.relay.kill();
      }
      expect(o.port).not.toBeNull();
      await noRelayLeft();
    });

    it('without the relay\'s program at either end the stream goes through Node (TLS still): the source says so, the restoring peer asks again without the relay', async () => {
      const noSocatUrl = await startSource({ relayProgram: { kind: program.kind, path: `/nonexistent/${program.kind}` } });
      const { ds, mp } = await oldPeer(`relay-nosocat-${program.kind}`);
      const before = { ...serverZfs.served };
      const full = await backend(ds, mp).restore({ source: source(noSocatUrl), reason: 'rebuild' });
      expect(full.method).toBe('full');
      expect(await readFile(join(mp, 'marker'), 'utf8')).toBe(await readFile(join(srcMp, 'marker'), 'utf8'));
      expect(serverZfs.served).toEqual({ node: before.node + 1, direct: before.direct });

      const cap = capturingLogger();
      const { ds: ds2, mp: mp2 } = await oldPeer(`relay-nosocat-peer-${program.kind}`);
      const again = await backend(ds2, mp2, { relayProgram: { kind: program.kind, path: `/nonexistent/${program.kind}` }, log: cap.logger }).restore({ source: source(), reason: 'rebuild' });
      expect(again.method).toBe('full');
      expect(await readFile(join(mp2, 'marker'), 'utf8')).toBe(await readFile(join(srcMp, 'marker'), 'utf8'));
      expect(serverZfs.served).toEqual({ node: before.node + 2, direct: before.direct });
      const warned = cap.lines().find((l) => l['msg'] === 'restore: the TLS relay could not be used; asking for the stream through Node');
      expect(warned?.['reason']).toMatch(new RegExp(`cannot connect to the TLS relay of job \\S+ .*cannot run ${program.kind}`));
      // The source's relay for that job was given up when the stream was asked again.
      await noRelayLeft();
    });
  });

  describe('TLS relay edges', () => {
    it('an offered relay that the peer never starts fails its job at the go timeout and is stopped', async () => {
      const shortUrl = await startSource({ pendingTimeoutMs: 400 });
      const b = pems.get('b')!;
      const created = await request(b, 'POST', '/backup/jobs', { body: '{"peerId":"b"}', base: shortUrl });
      const job = JSON.parse(created.body) as { jobId: string; streamPath: string };
      const offer = await request(b, 'GET', job.streamPath, { base: shortUrl, headers: { 'x-manatee-stream-mode': 'tls-relay' } });
      expect(offer.status).toBe(200);
      expect(offer.headers['x-manatee-stream-mode']).toBe('tls-relay');
      const failed = await waitFor('the job to fail', async () => { const st = await jobStatus(job.jobId, shortUrl); return st.state === 'failed' ? st : null; });
      expect(failed.error).toMatch(/did not start the TLS relay stream within 400 ms/);
      await noRelayLeft();
    });

    it('the relay\'s certificate files that cannot be written fail the relay with MANATEE_ERR_BACKUP_TLS_RELAY, before it runs', async () => {
      const saved = process.env['TMPDIR'];
      process.env['TMPDIR'] = join(pool.dir, 'no-such-dir');
      try {
        const err = await connectRelay({ program, tls: pems.get('b')!, log, host: '127.0.0.1', port: 1, peerId: 'a', timeoutMs: 5000 }).catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'MANATEE_ERR_BACKUP_TLS_RELAY', message: expect.stringMatching(new RegExp(`cannot write the certificates for ${program.kind} in .*no-such-dir`)) });
      } finally {
        if (saved === undefined) delete process.env['TMPDIR'];
        else process.env['TMPDIR'] = saved;
      }
      expect(await relayChildren()).toBe('');
    });

    // The handshake deadline is manatee-tls-relay's (socat has none: Node's 15 s wait stops it), so this case exists for it alone.
    if (p.kind === 'manatee-tls-relay') it('a source relay that accepts TCP and never speaks TLS: the peer\'s manatee-tls-relay gives up at its handshake deadline (10 s, before Node\'s 15 s), and the restore asks for the stream through Node', async () => {
      // The source's "relay": a program that says it listens on the port of a server that accepts and stays silent.
      const held: Socket[] = [];
      const silent = netServer((c) => { c.on('error', () => undefined); held.push(c); });
      await new Promise<void>((resolve) => { silent.listen(0, '127.0.0.1', resolve); });
      const addr = silent.address();
      const silentPort = typeof addr === 'object' && addr !== null ? addr.port : 0;
      const fake = join(pool.dir, 'silent-relay.sh');
      await writeFile(fake, `#!/bin/sh\necho "2026/12/07 00:00:00 manatee-tls-relay[$$] N listening on AF=2 127.0.0.1:${silentPort}" >&2\nexec sleep 6001\n`);
      await chmod(fake, 0o755);
      try {
        const silentUrl = await startSource({ relayProgram: { kind: 'manatee-tls-relay', path: fake } });
        const { ds, mp } = await oldPeer('relay-silent-source');
        const before = { ...serverZfs.served };
        const cap = capturingLogger();
        const t0 = Date.now();
        const full = await backend(ds, mp, { log: cap.logger }).restore({ source: source(silentUrl), reason: 'rebuild' });
        expect(full.method).toBe('full');
        expect(await readFile(join(mp, 'marker'), 'utf8')).toBe(await readFile(join(srcMp, 'marker'), 'utf8'));
        expect(serverZfs.served).toEqual({ node: before.node + 1, direct: before.direct });
        expect(held.length).toBe(1);
        const warned = cap.lines().find((l) => l['msg'] === 'restore: the TLS relay could not be used; asking for the stream through Node');
        expect(warned?.['reason']).toMatch(new RegExp(String.raw`cannot connect to the TLS relay of job \S+ .*manatee-tls-relay gave up at its deadline \(exit 3\) before a verified TLS connection: SSL_connect\(\): no TLS handshake within the handshake deadline of 10 s \(handshake-timeout\): peer a at AF=2 127\.0\.0\.1:${silentPort}`));
        expect(Date.now() - t0).toBeGreaterThanOrEqual(9000);
        // The source gave its "relay" up when the stream was asked again without it.
        await waitFor('the fake relay stopped', async () => ((await execa('pgrep', ['-P', String(process.pid), '-f', '^sleep 6001$'], { reject: false })).stdout.trim() === '' ? true : null), { timeoutMs: 30_000 });
        await noRelayLeft();
      } finally {
        for (const c of held) c.destroy();
        silent.close();
      }
    });

    it('a relay that cannot connect fails with its program\'s reason, and addresses of dual-stack sockets are their IPv4 form', async () => {
      const err = await connectRelay({ program, tls: pems.get('b')!, log, host: '127.0.0.1', port: 1, peerId: 'a', timeoutMs: 10_000 }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'MANATEE_ERR_BACKUP_TLS_RELAY', message: expect.stringMatching(new RegExp(`${program.kind} ended \\(exit 1\\) before its connection: .*Connection refused`)) });
      expect(plainAddress('::ffff:10.1.2.3')).toBe('10.1.2.3');
      expect(plainAddress('[::1]')).toBe('::1');
      expect(plainAddress('192.168.0.1')).toBe('192.168.0.1');
      await noRelayLeft();
    });
  });
});
