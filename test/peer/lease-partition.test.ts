// A real partition of the primary (its namespace cut off from the other peers' by iptables; the
// test, in the root namespace, still reaches every peer's API): the isolated primary must answer
// 503 on /primary before the new primary answers 200, because its lease ends before its session
// can expire and the sync take over. /primary is polled on every peer every few ms, as a load
// balancer that can still reach the old primary would. Three real sitters with PostgreSQL 15, each
// in its own network namespace (the chaos harness's Cluster, on namespaces named "nt...").
import { afterAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Cluster } from '../jepsen-like/cluster.js';
import { createBridgedNamespaces, type BridgedNamespaces } from '../helpers/netns.js';
import { httpJson } from '../../tools/lib/shard.js';
import { sitterBundle } from '../../tools/lib/sitter-bundle.js';
import { waitFor } from '../../tools/lib/wait.js';
import type { SitterStatus } from '../../src/model/index.js';

const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
let net: BridgedNamespaces | null = null;
let cluster: Cluster | null = null;
let dir: string | null = null;

afterAll(async () => {
  await net?.heal().catch(() => undefined);
  await cluster?.stopAll().catch(() => undefined);
  await net?.remove();
  if (dir !== null) await rm(dir, { recursive: true, force: true });
}, 120_000);

interface Sample { peer: string; sentMs: number; gotMs: number; status: number }

describe('the primary\'s lease under a real partition', () => {
  it('an isolated primary answers 503 on /primary before the new primary answers 200', async () => {
    const ids = ['lp1', 'lp2', 'lp3'];
    net = await createBridgedNamespaces(ids);
    dir = await mkdtemp(join(tmpdir(), 'manatee-lease-'));
    await chmod(dir, 0o755); // PostgreSQL runs as its own user and must reach the data directories
    const c = new Cluster(net, {
      repoRoot: REPO_ROOT, sitterScript: await sitterBundle(), workDir: join(dir, 'work'), logsDir: join(dir, 'logs'),
      secret: randomBytes(24).toString('hex'), adminToken: randomBytes(24).toString('hex'), superuserPassword: randomBytes(12).toString('hex'),
      sessionTimeoutMs: 1500, raftTickMs: 50, raftElectionTicks: 20,
    });
    cluster = c;
    await c.writeConfigs();
    // The peers serve https with certificates of the run's shard CA: every call here checks them against it.
    const ca = c.caPem;
    const api = (url: string, timeoutMs?: number) => httpJson(url, { ...(timeoutMs !== undefined ? { timeoutMs } : {}), ...(ca !== undefined ? { ca } : {}) });
    for (const id of ids) c.start(id);
    const chain = await waitFor('a three-peer chain with a writable primary', async () => {
      const st = await c.status(ids[0]!);
      const s = st?.state;
      if (s === null || s === undefined || s.sync === null || s.async.length !== 1) return null;
      const p = await api(`${c.peer(s.primary.id).apiUrl}/primary`, 2000).catch(() => null);
      const sync = await c.status(s.sync.id);
      return p?.status === 200 && sync?.postgres.inRecovery === true ? s : null;
    }, { timeoutMs: 240_000, intervalMs: 500 });
    const oldId = chain.primary.id;

    const samples: Sample[] = [];
    let stopped = false;
    const loops = ids.map(async (id) => {
      while (!stopped) {
        const sentMs = performance.now();
        const status = await api(`${c.peer(id).apiUrl}/primary`, 2000).then((r) => r.status, () => 0);
        samples.push({ peer: id, sentMs, gotMs: performance.now(), status });
        await new Promise((r) => setTimeout(r, 5));
      }
    });
    try {
      await waitFor('the poller seeing the primary', () => samples.some((s) => s.peer === oldId && s.status === 200), { timeoutMs: 30_000 });
      await net.isolate([oldId]);
      const cutMs = performance.now();
      const firstNew = await waitFor('a new primary answering 200', () => samples.find((s) => s.peer !== oldId && s.status === 200 && s.sentMs > cutMs), { timeoutMs: 120_000, intervalMs: 20 });
      const until = performance.now() + 1000;
      await waitFor('a second of polls after it', () => performance.now() > until, { timeoutMs: 10_000, intervalMs: 50 });
      stopped = true;
      await Promise.all(loops);
      const oldFirst503 = samples.find((s) => s.peer === oldId && s.status === 503 && s.sentMs > cutMs);
      expect(oldFirst503, 'the isolated primary answered 503').toBeDefined();
      // Certainly before: the 503 was received before the request that got the new 200 was sent.
      expect(oldFirst503!.gotMs).toBeLessThan(firstNew.sentMs);
      // And never 200 again once the new primary had answered 200.
      expect(samples.filter((s) => s.peer === oldId && s.status === 200 && s.sentMs > firstNew.gotMs)).toEqual([]);
      const fenceLine = readFileSync(c.peer(oldId).logPath, 'utf8').split('\n').find((l) => l.includes('"decision":"lease-fence"'));
      expect(fenceLine, 'the old primary logged its lease fence').toBeDefined();
      const body = (await api(`${c.peer(oldId).apiUrl}/primary`)).body as { reason: string };
      expect(body.reason).toMatch(/fenced|not the primary|PostgreSQL is not serving/);
      console.log(`partition of ${oldId}: its /primary 503 after ${Math.round(oldFirst503!.gotMs - cutMs)} ms, the new primary's 200 after ${Math.round(firstNew.gotMs - cutMs)} ms`);
      const newId = firstNew.peer;
      const st = (await api(`${c.peer(newId).apiUrl}/status`)).body as SitterStatus;
      expect(st.role).toBe('primary');
    } finally {
      stopped = true;
      await Promise.all(loops);
    }
  }, 420_000);
});
