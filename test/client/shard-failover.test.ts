// The client and its Pool on a real three-peer shard (real manatee-sitter processes and
// PostgreSQL, tools/lib/shard.ts): after the primary is killed, the client emits the new
// topology, the Pool's writes succeed on the new primary, and no acknowledged write is lost.
// The sitters run with hooks configured, so the same failover checks the hooks end to end:
// sitter_up on start, primary_changed and peer_down on the survivors, each with its JSON; a
// heartbeat hook that hangs and a peer_up hook that fails are logged and hold nothing back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createClient, type ManateeClient, type PrimaryPool, type Topology } from '../../src/client/index.js';
import type { HookDocument } from '../../src/peer/hooks.js';
import type { SitterStatus } from '../../src/model/index.js';
import { httpJson, Shard, SHARD_SUPERUSER_PASSWORD, type ShardPeer } from '../../tools/lib/shard.js';
import { waitFor } from '../../tools/lib/wait.js';

let shard: Shard;
let client: ManateeClient | null = null;
let pool: PrimaryPool | null = null;

function pgUrlOf(p: ShardPeer): string {
  return `postgres://127.0.0.1:${p.pgPort}/postgres`;
}

function hookLog(p: ShardPeer): string {
  return join(shard.dir, `hooks-${p.id}.log`);
}

async function hookDocs(p: ShardPeer): Promise<HookDocument[]> {
  const text = await readFile(hookLog(p), 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as HookDocument);
}

beforeAll(async () => {
  shard = await Shard.create({ prefix: 'cl', start: false, timeouts: { sessionTimeoutMs: 2000, keepaliveIntervalMs: 400 } });
  // One hook for the events this test checks: it appends its JSON document to a per-peer file.
  const hang = join(shard.dir, 'hook-hang.sh');
  await writeFile(hang, '#!/bin/sh\nsleep 20\n');
  const fail = join(shard.dir, 'hook-fail.sh');
  await writeFile(fail, '#!/bin/sh\necho "no pager" >&2\nexit 1\n');
  for (const f of [hang, fail]) await chmod(f, 0o755);
  for (const p of shard.peers) {
    const script = join(shard.dir, `hook-${p.id}.sh`);
    await writeFile(script, `#!/bin/sh\ncat >> '${hookLog(p)}'\n`);
    await chmod(script, 0o755);
    const config = JSON.parse(await readFile(p.configPath, 'utf8')) as Record<string, unknown>;
    config['hooks'] = {
      events: { sitter_up: [script], primary_changed: [script], peer_down: [script], heartbeat: [hang], peer_up: [fail] },
      timeoutMs: 1500,
      killGraceMs: 200,
      heartbeatIntervalMs: 1500,
    };
    await writeFile(p.configPath, JSON.stringify(config, null, 2));
  }
  for (const p of shard.peers) shard.startSitter(p);
}, 180_000);

/**
 * Hooks lead their own process groups, so a SIGKILLed sitter leaves its running hooks behind
 * (they end at their own pace): stop this test's hanging ones, by the process groups they lead.
 */
async function killLeftoverHooks(dir: string): Promise<void> {
  for (const name of await readdir('/proc').catch(() => [])) {
    if (!/^\d+$/.test(name)) continue;
    const cmd = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (!cmd.includes(`${dir}/hook-`)) continue;
    try {
      process.kill(-Number(name), 'SIGKILL');
    } catch {
      // gone, or not a group leader
    }
  }
}

afterAll(async () => {
  await pool?.end().catch(() => undefined);
  await client?.close();
  const dir = shard.dir;
  await shard.teardown();
  await killLeftoverHooks(dir);
}, 60_000);

describe('client on a real shard', () => {
  it('follows a failover: a new topology, and the Pool writes on the new primary without losing acknowledged writes', async () => {
    // The whole chain, async included: the sync takes over only with an async to become its sync
    // (a sitter slow to start on a loaded machine loses its first session, and the primary drops it
    // from the chain until it is back).
    const { primary, sync } = await shard.waitForChain();

    // The shard CA: the client checks the https peers with it, and its pool's connections to PostgreSQL use TLS checked the same way.
    const c = createClient({ peers: shard.peers.map((p) => p.apiUrl), backoff: { initialMs: 50, maxMs: 500 }, ...(shard.caPem !== null ? { ca: shard.caPem } : {}) });
    client = c;
    const topologies: Topology[] = [];
    c.on('topology', (t) => topologies.push(t));
    const first = await c.whenReady(30_000);
    expect(first[0]).toBe(pgUrlOf(primary));
    expect(first[1]).toBe(pgUrlOf(sync));

    const p = c.pool({ user: 'postgres', password: SHARD_SUPERUSER_PASSWORD, max: 2, connectionTimeoutMillis: 2000, retry: { attempts: 40, initialDelayMs: 100, maxDelayMs: 1000 } });
    pool = p;
    await p.query('CREATE TABLE IF NOT EXISTS client_acked (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())');

    // A writer through the Pool: the ids whose INSERT was acknowledged.
    const acked: number[] = [];
    const errors: string[] = [];
    let running = true;
    const writer = (async () => {
      for (let id = 1; running; id++) {
        try {
          await p.query('INSERT INTO client_acked (id) VALUES ($1)', [id]);
          acked.push(id);
        } catch (err) {
          if (errors.length < 100) errors.push((err as Error).message);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await waitFor('some writes before the failover', () => acked.length >= 10, { timeoutMs: 30_000 });

    await shard.killPeer(primary);
    const ackedBefore = acked.length;
    const next = await shard.waitFor('a topology without the killed primary', () => Promise.resolve(topologies.find((t) => t[0] !== pgUrlOf(primary)) ?? null), 120_000);
    expect(next[0]).toBe(pgUrlOf(sync));
    expect(next).not.toContain(pgUrlOf(primary));
    await shard.waitFor('writes acknowledged by the new primary', () => Promise.resolve(acked.length >= ackedBefore + 10), 120_000);
    expect(p.primaryUrl).toBe(pgUrlOf(sync));
    running = false;
    await writer;

    // Every acknowledged write is on the new primary.
    const rows = await shard.query<{ id: number }>(sync, 'SELECT id FROM client_acked');
    const found = new Set(rows.map((r) => r.id));
    expect(acked.filter((id) => !found.has(id))).toEqual([]);

    // Hooks: every peer reported sitter_up; the survivors saw the new primary and the killed peer go.
    const survivors = shard.peers.filter((x) => x.id !== primary.id);
    for (const x of shard.peers) {
      const docs = await hookDocs(x);
      expect(docs.some((d) => d.event === 'sitter_up' && d.peer.id === x.id)).toBe(true);
    }
    for (const x of survivors) {
      await shard.waitFor(`hooks on ${x.id}`, async () => {
        const docs = await hookDocs(x);
        const changed = docs.find((d) => d.event === 'primary_changed' && (d.details['current'] as { id: string } | null)?.id === sync.id);
        const down = docs.find((d) => d.event === 'peer_down' && (d.details['peer'] as { id: string } | null)?.id === primary.id);
        if (changed === undefined || down === undefined) return null;
        expect(changed.state?.primary.id).toBe(sync.id);
        expect((changed.details['previous'] as { id: string }).id).toBe(primary.id);
        expect(changed.peer.id).toBe(x.id);
        return true;
      }, 30_000);
      // The hanging heartbeat was killed after its timeout and the failing peer_up was logged.
      await shard.waitFor(`hook failures logged on ${x.id}`, async () => {
        const lines = await shard.logLines(x);
        const hung = lines.some((l) => l['hooks'] === 'failed' && l['event'] === 'heartbeat' && l['timedOut'] === true);
        const failed = lines.some((l) => l['hooks'] === 'failed' && l['event'] === 'peer_up' && l['exitCode'] === 1 && l['stderr'] === 'no pager\n');
        return hung && failed;
      }, 30_000);
      // And an operator sees them without the logs: counts and the last failure in /status, counters in /metrics.
      const hooks = ((await httpJson(`${x.apiUrl}/status`)).body as SitterStatus).hooks;
      expect(hooks?.events.heartbeat?.timedOut).toBeGreaterThanOrEqual(1);
      expect(hooks?.events.peer_up?.failed).toBeGreaterThanOrEqual(1);
      expect(hooks?.events.sitter_up?.ok).toBe(1);
      expect(hooks?.lastFailure?.outcome).toMatch(/^(failed|timedOut)$/);
      const metrics = String((await httpJson(`${x.apiUrl}/metrics`)).body);
      expect(metrics).toMatch(/^manatee_hook_runs_total\{event="heartbeat",outcome="timedOut"\} [1-9]\d*$/m);
      expect(metrics).toMatch(/^manatee_hook_runs_total\{event="peer_up",outcome="failed"\} [1-9]\d*$/m);
      expect(metrics).toMatch(/^manatee_hook_duration_seconds_count\{event="heartbeat"\} [1-9]\d*$/m);
    }
  });
});
