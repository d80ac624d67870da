// A real partition between two transport endpoints: one in this process, one in its own process
// inside a network namespace, with iptables dropping every packet between them for 27 s. Left to
// TCP, bytes queued on a connection wait out the retransmission back-off (about 24 s after such a
// partition); the transport must notice the silence, dial again, and be heard within a second or
// so of the heal. The figures (heal -> first message each way) are printed.
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { TcpTransport } from '../../src/raft/transport/index.js';
import type { PeerMessage as Message } from '../../src/raft/transport/index.js';
import { createVethNamespace, type VethNamespace } from '../helpers/netns.js';
import { freePort, waitFor } from '../../tools/lib/wait.js';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

const SECRET = 'partition-test-secret-0123456789';
const PARTITION_MS = 27_000;
let net: VethNamespace | null = null;
let child: ChildProcess | null = null;
let local: TcpTransport | null = null;
let beat: NodeJS.Timeout | null = null;

afterEach(async () => {
  if (beat !== null) clearInterval(beat);
  await local?.close();
  if (child !== null && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => { child!.once('exit', r); });
    child.kill('SIGKILL');
    await exited;
  }
  await net?.remove();
  net = null; child = null; local = null; beat = null;
});

describe('TcpTransport across a real partition', () => {
  it('hears the peer again within a short deadline after a partition of more than 20 s heals', async () => {
    const n = await createVethNamespace();
    net = n;
    const localPort = await freePort();
    const remotePort = 17_000 + Math.floor(Math.random() * 1000); // inside the fresh namespace, all ports are free
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } });
    const got: { m: Message; atMs: number }[] = [];
    const t = new TcpTransport({
      id: 'a', secret: SECRET, listen: { host: n.hostAddress, port: localPort }, peers: { b: `${n.nsAddress}:${remotePort}` }, logger,
      handlers: { onMessages: (ms) => { for (const m of ms) got.push({ m, atMs: performance.now() }); } },
    });
    local = t;
    await t.start();

    const cfg = { id: 'b', peer: 'a', listenHost: n.nsAddress, listenPort: remotePort, peerAddress: `${n.hostAddress}:${localPort}`, secret: SECRET };
    const c = spawn('ip', ['netns', 'exec', n.ns, process.execPath, '--import', 'tsx', 'test/raft/transport-peer-main.ts', JSON.stringify(cfg)], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    let remoteLog = '';
    c.stderr.setEncoding('utf8');
    c.stderr.on('data', (s: string) => { if (remoteLog.length < 1_000_000) remoteLog += s; });
    c.stdout.resume();

    let seq = 0;
    beat = setInterval(() => { t.send([{ type: 'heartbeat', from: 'a', to: 'b', term: ++seq, commit: 0 }]); }, 50);
    const fromB = (kind: Message['type'], afterMs: number): number | undefined => got.find((g) => g.m.type === kind && g.atMs > afterMs)?.atMs;
    await waitFor('both directions flow', () => fromB('heartbeat', 0) !== undefined && fromB('heartbeatResp', 0) !== undefined, { timeoutMs: 60_000 });

    await n.partition();
    const cutMs = performance.now();
    // Nothing may cross while cut (a message already in flight may land in the first moment).
    const partitionEnd = cutMs + PARTITION_MS;
    await waitFor('the partition to last its time', () => performance.now() > partitionEnd, { timeoutMs: PARTITION_MS + 10_000, intervalMs: 200 });
    expect(got.filter((g) => g.atMs > cutMs + 1000)).toEqual([]);
    await n.heal();
    const healMs = performance.now();

    // b dials a (its heartbeats), and a dials b (the echoes of a's heartbeats come back over b's link,
    // but only once a's own link delivers a heartbeat sent after the heal).
    const seqAtHeal = seq;
    const heard = await waitFor('messages from b after the heal', () => {
      const hb = fromB('heartbeat', healMs);
      const echo = got.find((g) => g.m.type === 'heartbeatResp' && g.m.term > seqAtHeal && g.atMs > healMs)?.atMs;
      return hb !== undefined && echo !== undefined ? { hb: hb - healMs, echo: echo - healMs } : null;
    }, { timeoutMs: 30_000, intervalMs: 20 });
    console.log(`transport partition of ${PARTITION_MS} ms healed: first message from b after ${Math.round(heard.hb)} ms, first echo of a new message after ${Math.round(heard.echo)} ms`);
    // Generous for a loaded machine, yet far below the ~24 s that TCP's back-off alone would take.
    expect(heard.hb).toBeLessThan(5000);
    expect(heard.echo).toBeLessThan(5000);
    // Both ends said why they dropped their connection.
    expect(lines.some((l) => l['msg'] === 'raft transport: connection to peer is silent, dropping it and dialling again' && l['peer'] === 'b')).toBe(true);
    expect(remoteLog).toContain('raft transport: connection to peer is silent, dropping it and dialling again');
    expect(lines.some((l) => l['msg'] === 'raft transport: connected to peer' && l['peer'] === 'b')).toBe(true);
  }, 120_000);
});
