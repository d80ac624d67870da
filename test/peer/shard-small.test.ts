// A two-peer shard of real sitters never fails over: with the primary gone there is no async to
// become the new sync (and no Raft majority either), so the survivor must stay a read-only sync.
// And manatee-sitter refuses a bad configuration file with a message that names the field.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpJson, Shard, type ShardPeer } from '../../tools/lib/shard.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

describe('a two-peer shard', () => {
  let shard: Shard;

  beforeAll(async () => {
    shard = await Shard.create({ peers: 2, prefix: 'two', timeouts: { sessionTimeoutMs: 2000, keepaliveIntervalMs: 400 } });
  });

  afterAll(async () => {
    await shard.teardown();
  });

  it('never fails over: the survivor of a killed primary stays a read-only sync', async () => {
    const { peer: primary, status } = await shard.waitForPrimaryWritable({ timeoutMs: 150_000 });
    const syncId = status.state?.sync?.id;
    expect(syncId).toBeDefined();
    const sync: ShardPeer = shard.peer(syncId ?? '');
    const generation = status.state?.generation;
    await shard.waitForTopology({ primary: primary.id, sync: sync.id, async: [] });
    const writer = shard.writer({ intervalMs: 5 });
    await writer.start();
    await writer.waitForAckAfter(Date.now(), 30_000);

    const killed = await shard.killPeer(primary);
    // Watch the survivor for many session timeouts: it never becomes primary nor writable.
    const watchUntil = killed.atMs + 5 * shard.timeouts.sessionTimeoutMs + 3000;
    let polls = 0;
    while (Date.now() < watchUntil) {
      const s = await shard.statusOf(sync);
      if (s !== null) {
        polls++;
        expect(s.role).toBe('sync');
        expect(s.postgres.writable).toBe(false);
        expect(s.state?.generation).toBe(generation);
        expect(s.state?.primary.id).toBe(primary.id);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(polls).toBeGreaterThan(5);
    // Without a Raft majority the survivor's evaluations fail (it cannot keep its session), but its
    // loop still turns: /liveness stays 200, so a livenessProbe would not restart it for nothing.
    const loopAt = async (): Promise<string | null> => (await shard.statusOf(sync))?.loop.lastEvaluatedAt ?? null;
    const first = await loopAt();
    await shard.waitFor('another evaluation to end on the survivor', async () => ((await loopAt()) ?? '') > (first ?? ''), 30_000);
    const live = await httpJson(`${sync.apiUrl}/liveness`);
    expect(live.status).toBe(200);
    expect((live.body as { reason: string }).reason).toMatch(/^the sitter's loop is alive: /);
    expect((await shard.query<{ r: boolean }>(sync, 'SELECT pg_is_in_recovery() AS r'))[0]?.r).toBe(true);
    expect(writer.acked.filter((a) => a.atMs >= killed.atMs && a.peer !== primary.id)).toEqual([]);

    // The primary comes back as the primary of the same generation, with every acknowledged row.
    shard.restartPeer(primary);
    const back = await shard.waitForPrimaryWritable({ timeoutMs: 120_000 });
    expect(back.peer.id).toBe(primary.id);
    expect(back.status.state?.generation).toBe(generation);
    await writer.waitForAckAfter(Date.now(), 60_000, primary.id);
    await writer.stop();
    expect(await writer.missingOn(primary)).toEqual([]);
  });
});

describe('manatee-sitter with a bad configuration file', () => {
  async function runSitter(config: unknown, mode = 0o600): Promise<{ code: number | null; stderr: string; path: string }> {
    const tmp = await makeTmpDir('badcfg');
    try {
      const path = join(tmp.path, 'config.json');
      await writeFile(path, typeof config === 'string' ? config : JSON.stringify(config), { mode });
      await chmod(path, mode);
      return await new Promise((res, rej) => {
        const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli/manatee-sitter.ts'), '-f', path], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
        const timer = setTimeout(() => { child.kill('SIGKILL'); }, 60_000);
        child.on('error', rej);
        child.on('exit', (code) => {
          clearTimeout(timer);
          res({ code, stderr, path });
        });
      });
    } finally {
      await tmp.cleanup();
    }
  }

  const good = {
    peerId: 'a',
    host: '127.0.0.1',
    dataDir: '/nonexistent/manatee/a',
    postgres: { port: 15432 },
    api: { port: 15433 },
    raft: { port: 15434, members: [{ id: 'a', address: '127.0.0.1:15434' }] },
    secret: 'a-shard-secret-of-16+',
    adminToken: 'an-admin-token-16+',
  };

  it('exits non-zero naming a field of the wrong type', async () => {
    const r = await runSitter({ ...good, postgres: { port: 'not-a-port' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/MANATEE_ERR_CONFIG/);
    expect(r.stderr).toMatch(/postgres\.port/);
  });

  it('exits non-zero naming a missing field and a misspelt one', async () => {
    const { secret: _secret, ...noSecret } = good;
    const r = await runSitter({ ...noSecret, timeouts: { sessionTimeoutMillis: 2000 } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/secret: is missing/);
    expect(r.stderr).toMatch(/timeouts\.sessionTimeoutMillis: is not a known setting/);
  });

  it('refuses to start with a configuration file that others can read, naming the file and its mode', async () => {
    const r = await runSitter(good, 0o644);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`manatee-sitter: MANATEE_ERR_CONFIG_MODE: configuration file ${r.path} has mode 0644`);
  });

  it('exits non-zero on a file that is not JSON', async () => {
    const r = await runSitter('{ "peerId": ');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not valid JSON/);
  });
});
