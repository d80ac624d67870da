// The API and manatee-adm against a real three-peer shard (real sitters, real PostgreSQL 15 on
// 127.0.0.1, ephemeral ports; test/helpers/shard.ts): health checks per role, /shard with lag in
// bytes and in seconds from the heartbeat row, /metrics, /watch, and `manatee-adm verify`, which
// passes on a healthy shard and fails once the async is stopped.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { request } from 'node:http';
import { execa } from 'execa';
import { Shard, httpJson, type ShardPeer } from '../helpers/shard.js';
import type { ShardReport } from '../../src/api/shard.js';
import type { SitterStatus } from '../../src/peer/status.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let shard: Shard;
let primary: ShardPeer;
let sync: ShardPeer;
let async0: ShardPeer;

async function adm(args: string[], url: string) {
  const r = await execa('node', ['--import', 'tsx', 'src/cli/manatee-adm.ts', ...args], {
    cwd: ROOT,
    reject: false,
    timeout: 60_000,
    env: { MANATEE_URL: url, MANATEE_ADMIN_TOKEN: shard.adminToken },
  });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

function rawGet(url: string, method = 'GET'): Promise<{ status: number; text: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), type: String(res.headers['content-type']) }); });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  shard = await Shard.create({ prefix: 'adm' });
  const st = await shard.waitFor('a three-peer chain', async () => {
    const s = await shard.statusOf(shard.peers[0]!);
    return s?.state !== null && s?.state !== undefined && s.state.async.length === 1 ? s.state : null;
  }, 180_000);
  primary = shard.peer(st.primary.id);
  sync = shard.peer(st.sync!.id);
  async0 = shard.peer(st.async[0]!.id);
  await shard.waitForTopology({ primary: primary.id, sync: sync.id, async: [async0.id] }, 180_000);
}, 240_000);

afterAll(async () => {
  // Unset when Shard.create() itself failed (it cleans up after itself then).
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
  await shard?.teardown();
}, 60_000);

describe('the API on a real shard', () => {
  it('health checks answer 200 only on the peer that serves the role (GET and HEAD)', async () => {
    const code = async (p: ShardPeer, path: string, method = 'GET') => (await rawGet(`${p.apiUrl}${path}`, method)).status;
    const probes: [ShardPeer, string, string, number][] = [
      [primary, '/primary', 'GET', 200], [primary, '/primary', 'HEAD', 200], [sync, '/primary', 'GET', 503],
      [sync, '/sync', 'GET', 200], [async0, '/sync', 'GET', 503], [async0, '/async', 'GET', 200],
      [async0, '/replica', 'HEAD', 200], [primary, '/replica', 'GET', 503],
      [primary, '/health', 'GET', 200], [sync, '/health', 'GET', 200], [async0, '/health', 'GET', 200],
    ];
    const want = probes.map(([p, path, method, status]) => `${p.id} ${method} ${path} ${status}`);
    // The async may still be restarting to follow the sync when the topology is first seen.
    let got: string[] = [];
    await shard.waitFor('every health check as expected', async () => {
      got = await Promise.all(probes.map(async ([p, path, method]) => `${p.id} ${method} ${path} ${await code(p, path, method)}`));
      return got.join() === want.join() || null;
    }, 60_000).catch(() => undefined);
    expect(got).toEqual(want);
    const body = await httpJson(`${sync.apiUrl}/primary`);
    expect(body).toMatchObject({ status: 503, body: { peerId: sync.id, role: 'sync', ok: false } });
  });

  it('the standbys read the heartbeat row: lag in seconds per link in /shard, and /replica?lag= within it', async () => {
    const report = await shard.waitFor('both links with a lag in seconds', async () => {
      const r = await httpJson(`${async0.apiUrl}/shard`);
      const rep = r.body as ShardReport;
      return rep.links.length === 2 && rep.links.every((l) => l.streaming && l.lagSeconds !== null && l.lagBytes !== null) ? rep : null;
    }, 60_000);
    expect(report.links.map((l) => `${l.upstream}->${l.downstream}:${l.expected}`)).toEqual([`${primary.id}->${sync.id}:sync`, `${sync.id}->${async0.id}:async`]);
    for (const l of report.links) expect(l.lagSeconds!).toBeLessThan(30);
    expect(report.peers.map((p) => [p.id, p.role, p.reachable])).toEqual([[primary.id, 'primary', true], [sync.id, 'sync', true], [async0.id, 'async', true]]);
    const st = (await httpJson(`${sync.apiUrl}/status`)).body as SitterStatus;
    expect(st.heartbeat?.primaryId).toBe(primary.id);
    expect((await rawGet(`${sync.apiUrl}/replica?lag=30s`)).status).toBe(200);
    // Nothing is ever 0 ms behind a heartbeat written a moment ago.
    expect((await rawGet(`${sync.apiUrl}/replica?lag=0ms`)).status).toBe(503);
    // The heartbeat lives in Manatee's own schema.
    const rows = await shard.query<{ primary_id: string }>(sync, 'SELECT primary_id FROM manatee.heartbeat');
    expect(rows.map((r) => r.primary_id)).toEqual([primary.id]);
  });

  it('/metrics serves Prometheus text with role, generation, Raft and lag figures', async () => {
    const r = await rawGet(`${primary.apiUrl}/metrics`);
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/text\/plain/);
    expect(r.text).toMatch(/manatee_role\{role="primary"\} 1/);
    expect(r.text).toMatch(/manatee_generation [1-9]/);
    expect(r.text).toMatch(/manatee_raft_term [1-9]/);
    expect(r.text).toMatch(new RegExp(`manatee_replication_lag_bytes\\{upstream="${primary.id}",downstream="${sync.id}",state="streaming"\\} \\d+`));
    expect(r.text).toMatch(/manatee_decisions_total\{kind="[a-z-]+"\} [1-9]/);
    expect(r.text).toMatch(/manatee_sessions 3/);
  });
});

describe('manatee-adm on a real shard', () => {
  it('show, peers and pg-status print every peer', async () => {
    const show = await adm(['show', '-v'], async0.apiUrl);
    expect(show.stderr).toBe('');
    expect(show.code).toBe(0);
    for (const p of [primary, sync, async0]) expect(show.stdout).toContain(p.id);
    expect(show.stdout).toMatch(/primary/);
    const pgs = await adm(['pg-status', '--json'], primary.apiUrl);
    expect(pgs.code).toBe(0);
    const links = JSON.parse(pgs.stdout) as { upstream: string; downstream: string }[];
    expect(links.map((l) => l.downstream)).toEqual([sync.id, async0.id]);
  });

  it('freeze through one peer is streamed by /watch on another, and unfreeze after it', async () => {
    const events: { state: { freeze?: { reason: string } } | null; version: number }[] = [];
    let buf = '';
    const req = request(`${async0.apiUrl}/watch`, { method: 'GET' }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = /^event: state\ndata: (.*)$/m.exec(block)?.[1];
          if (data !== undefined) events.push(JSON.parse(data) as (typeof events)[number]);
        }
      });
    });
    req.on('error', () => undefined);
    req.end();
    try {
      await shard.waitFor('the first event', () => Promise.resolve(events.length >= 1 || null), 10_000);
      const f = await adm(['freeze', '-r', 'watch me'], primary.apiUrl);
      expect({ code: f.code, stderr: f.stderr }).toEqual({ code: 0, stderr: '' });
      await shard.waitFor('the freeze event', () => Promise.resolve(events.some((e) => e.state?.freeze?.reason === 'watch me') || null), 20_000);
      const u = await adm(['unfreeze'], sync.apiUrl);
      expect(u.code).toBe(0);
      await shard.waitFor('the unfreeze event', () => Promise.resolve(events.at(-1)?.state?.freeze === undefined || null), 20_000);
      const versions = events.map((e) => e.version);
      expect([...versions].sort((x, y) => x - y)).toEqual(versions);
    } finally {
      req.destroy();
    }
  });

  it('verify passes on the healthy shard, and fails (exit 1) once the async is stopped', async () => {
    const ok = await adm(['verify'], primary.apiUrl);
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: '' });
    expect(ok.stdout).toMatch(/no problems/);
    // Stop the async peer (its sitter stops its PostgreSQL): the link to it stops streaming, its
    // session ends, and the primary drops it from the chain; whichever verify sees first, it fails.
    await shard.stopPeer(async0);
    const bad = await shard.waitFor('verify to report the stopped async', async () => {
      const r = await adm(['verify', '--json'], primary.apiUrl);
      return r.code !== 0 ? r : null;
    }, 60_000);
    expect(bad.code).toBe(1);
    const issues = JSON.parse(bad.stdout) as { ok: boolean; issues: { code: string; peer: string | null }[] };
    expect(issues.ok).toBe(false);
    expect(issues.issues.some((i) => i.peer === async0.id || i.code === 'NO_ASYNC')).toBe(true);
    expect(bad.stderr).toMatch(/^manatee-adm: MANATEE_ERR_VERIFY_FAILED: \d+ problems? found/);
  });
});

describe('operators across a failover', () => {
  it('after the primary is killed: the sync takes over, /primary moves, failovers are counted, show names the new primary', async () => {
    // The async stopped by the previous test comes back first: a takeover needs an active async.
    if (shard.sitterPid(async0) === null) shard.startSitter(async0);
    await shard.waitForTopology({ primary: primary.id, sync: sync.id, async: [async0.id] }, 180_000);
    await shard.killPeer(primary);
    const { status } = await shard.waitForPrimaryWritable({ not: primary.id, timeoutMs: 120_000 });
    expect(status.peer.id).toBe(sync.id);
    expect((await rawGet(`${sync.apiUrl}/primary`)).status).toBe(200);
    const m = await rawGet(`${sync.apiUrl}/metrics`);
    expect(m.text).toMatch(/^manatee_failovers_total [1-9]\d*$/m);
    expect(m.text).toMatch(/^manatee_role\{role="primary"\} 1$/m);
    const show = await adm(['show', '--json'], async0.apiUrl);
    const report = JSON.parse(show.stdout) as ShardReport;
    expect(report.peers.find((p) => p.role === 'primary')?.id).toBe(sync.id);
    // The old primary is deposed (or already rebuilt into the chain): either way it is no longer primary.
    expect(report.peers.find((p) => p.id === primary.id)?.role).not.toBe('primary');
    const hist = await adm(['history', '--json', '-n', '5'], async0.apiUrl);
    const entries = JSON.parse(hist.stdout) as { summary: string; state: { primary: { id: string } } }[];
    expect(entries.at(-1)?.state.primary.id).toBe(sync.id);
  }, 300_000);

  it('a planned switchover with manatee-adm promote: the sync becomes the primary', async () => {
    // The old primary's peer comes back: it is deposed, rebuilt, and rejoins the chain as an async.
    if (shard.sitterPid(primary) === null) shard.restartPeer(primary);
    const st = await shard.waitFor('a full chain again', async () => {
      const r = await shard.statusOf(sync);
      return r?.state?.sync !== null && r?.state?.sync !== undefined && r.state.async.length === 1 && r.state.deposed.length === 0 ? r.state : null;
    }, 240_000);
    const newSync = shard.peer(st.sync!.id);
    await shard.waitForTopology({ primary: sync.id, sync: newSync.id, async: [st.async[0]!.id] }, 180_000);
    const p = await adm(['promote', '-p', newSync.id, '-e', '120'], async0.apiUrl);
    expect({ code: p.code, stderr: p.stderr }).toEqual({ code: 0, stderr: '' });
    const { peer: now } = await shard.waitForPrimaryWritable({ not: sync.id, timeoutMs: 120_000 });
    expect(now.id).toBe(newSync.id);
    const v = await shard.waitFor('verify to pass after the switchover', async () => {
      const r = await adm(['verify'], now.apiUrl);
      return r.code === 0 ? r : null;
    }, 240_000);
    expect(v.stdout).toMatch(/no problems found/);
  }, 600_000);

  it('manatee-adm rebuild on an async: it copies its data again and the shard verifies clean after', async () => {
    const st = await shard.waitFor('an async in the chain', async () => {
      for (const p of shard.peers) {
        const r = await shard.statusOf(p);
        if (r?.role === 'primary' && r.state !== null && r.state.async.length === 1) return r.state;
      }
      return null;
    }, 120_000);
    const target = shard.peer(st.async[0]!.id);
    const before = (await httpJson(`${target.apiUrl}/status`)).body as SitterStatus;
    const r = await adm(['rebuild', '--json'], target.apiUrl);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ peerId: target.id, started: true });
    // It finished: the reconciler reports a result newer than before, and the shard is whole again.
    await shard.waitFor('the rebuild to finish', async () => {
      const s = (await httpJson(`${target.apiUrl}/status`)).body as SitterStatus;
      return !s.rebuild.running && s.rebuild.lastResult !== null && s.rebuild.lastResult !== before.rebuild.lastResult ? s : null;
    }, 240_000);
    await shard.waitFor('verify to pass after the rebuild', async () => {
      const v = await adm(['verify'], target.apiUrl);
      return v.code === 0 ? v : null;
    }, 240_000);
  }, 600_000);
});

