// A sync that needs WAL the primary no longer keeps rebuilds itself (real three-peer shard, real
// sitters and PostgreSQL 15 on 127.0.0.1; tools/lib/shard.ts). In one-node-write mode the
// former async's PostgreSQL is stopped while the primary writes on; with wal_keep_size 0 the
// segments it would need are removed. After `set-onwm off` it is the new sync: it cannot stream,
// its replayed WAL is below the new generation's initWal (so it could not take over anyway), and
// after the stall limit (10 session timeouts) it copies the primary's data afresh
// (stream-stalled-rebuild-sync, then rebuilt). The primary then becomes writable with it as sync.
import { appendFile, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Shard, type ShardPeer } from '../../tools/lib/shard.js';
import { lsnAtLeast } from '../../src/model/index.js';

let shard: Shard;
let primary: ShardPeer;
let sync: ShardPeer;
let async0: ShardPeer;

const adm = (args: string[], url: string) => shard.adm(args, url);

/** Statements on the primary; they fail (query_timeout) rather than hang when commits wait for a missing sync. */
async function onPrimary(statements: readonly string[]): Promise<void> {
  const c = await shard.client(primary, 5000, 20_000);
  try {
    for (const sql of statements) await c.query(sql);
  } finally {
    await c.end().catch(() => undefined);
  }
}

beforeAll(async () => {
  // A stall limit of 10 × 2.5 s = 25 s keeps the test short.
  shard = await Shard.create({ prefix: 'onwal', timeouts: { sessionTimeoutMs: 2500, keepaliveIntervalMs: 500 } });
  ({ primary, sync, async0 } = await shard.waitForChain());
}, 240_000);

afterAll(async () => {
  // Unset when Shard.create() itself failed (it cleans up after itself then).
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
  await shard?.teardown();
}, 60_000);

describe('a new sync whose WAL the primary removed', () => {
  it('rebuilds itself (it is below initWal), and the primary becomes writable with it as sync', async () => {
    await onPrimary(['CREATE TABLE wal_fill (n int, pad text)', "INSERT INTO wal_fill VALUES (0, 'before')"]);

    const on = await adm(['set-onwm', '-m', 'on', '-y'], async0.apiUrl);
    expect({ code: on.code, stderr: on.stderr }).toEqual({ code: 0, stderr: '' });
    await shard.waitFor('the primary in one-node-write mode', async () => {
      const s = await shard.statusOf(primary);
      return s?.state?.oneNodeWriteMode === true && s.postgres.writable;
    }, 90_000);
    // Both standbys are unassigned in ONWM: their sitters stop their PostgreSQL. The former sync's
    // sitter is stopped too, so that the former async alone becomes the next sync.
    await shard.waitFor('both standbys stopped', () => Promise.resolve(shard.postgresPid(sync) === null && shard.postgresPid(async0) === null), 60_000);
    await shard.stopPeer(sync);

    // The primary keeps no WAL for standbys (no slots; wal_keep_size 0), and recycles little.
    const [dir] = await shard.query<{ d: string }>(primary, 'SELECT current_setting(\'data_directory\') AS d');
    await appendFile(join(dir!.d, 'manatee-overrides.conf'), 'wal_keep_size = 0\nmin_wal_size = 32MB\nmax_wal_size = 64MB\n');
    const [mark] = await shard.query<{ seg: string }>(primary, 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS seg, pg_reload_conf()');
    const stoppedAt = mark!.seg; // async0 stopped before this point: it needs this segment or an older one
    const oldest = await shard.waitFor(`the primary to remove WAL segment ${stoppedAt} and older`, async () => {
      await onPrimary([
        "INSERT INTO wal_fill SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g",
        'SELECT pg_switch_wal()',
        'CHECKPOINT',
      ]);
      const [w] = await shard.query<{ oldest: string | null }>(primary, "SELECT min(name) AS oldest FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'");
      return w?.oldest !== null && w?.oldest !== undefined && w.oldest > stoppedAt ? w.oldest : null;
    }, 120_000);
    expect(oldest > stoppedAt).toBe(true);
    const [count] = await shard.query<{ n: string }>(primary, 'SELECT count(*) AS n FROM wal_fill');
    const rowsOnPrimary = count!.n;

    const off = await adm(['set-onwm', 'off'], primary.apiUrl);
    expect({ code: off.code, stderr: off.stderr }).toEqual({ code: 0, stderr: '' });
    // The former async is the new sync at generation+1, with the primary's position as initWal.
    const normal = await shard.waitFor('the new sync in the state', async () => {
      const st = (await shard.statusOf(primary))?.state;
      return st !== undefined && st !== null && st.sync?.id === async0.id && st.oneNodeWriteMode !== true ? st : null;
    }, 60_000);
    expect(normal).toMatchObject({ primary: { id: primary.id }, async: [] });
    const { initWal, generation } = normal;

    // The new sync cannot stream: its sitter rebuilds it after the stall limit, then logs `rebuilt`.
    const lines = await shard.waitFor('the sync to rebuild itself', async () => {
      const all = await shard.logLines(async0);
      const stalled = all.findIndex((l) => l.decision === 'stream-stalled-rebuild-sync');
      const rebuilt = all.findIndex((l, i) => i > stalled && l.decision === 'rebuilt');
      return stalled >= 0 && rebuilt > stalled ? { stalled: all[stalled]!, rebuilt: all[rebuilt]! } : null;
    }, 150_000);
    expect(lines.stalled).toMatchObject({ upstream: primary.id, initWal });
    expect(lines.stalled.stalledForMs).toBeGreaterThanOrEqual(25_000);
    expect(lines.stalled.reason).toMatch(/below initWal/);
    const replayLsn = lines.stalled.replayLsn as string;
    expect(lsnAtLeast(replayLsn, initWal)).toBe(false);
    expect(lines.rebuilt).toMatchObject({ from: primary.id, generation, method: 'full' });
    // Its PostgreSQL could not get the removed WAL (its own log says so).
    const pgLogs = await shard.waitFor('the removed-segment error in the sync\'s PostgreSQL log', async () => {
      const text: string[] = [];
      const walk = async (d: string, depth: number): Promise<void> => {
        for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
          const p = join(d, e.name);
          if (e.isDirectory() && depth < 4) await walk(p, depth + 1);
          else if (e.isFile() && /^postgresql-.*\.log$/.test(e.name)) text.push(await readFile(p, 'utf8'));
        }
      };
      await walk(async0.dataDir, 0);
      return text.some((t) => /requested WAL segment \S+ has already been removed/.test(t)) || null;
    }, 10_000).catch(() => false);
    expect(pgLogs).toBe(true);

    // The primary becomes writable with it as sync, and a commit waits for it.
    await shard.waitForTopology({ primary: primary.id, sync: async0.id, async: [] }, 120_000);
    await onPrimary(["INSERT INTO wal_fill VALUES (-1, 'after')"]);
    const repl = await shard.query<{ application_name: string; sync_state: string }>(primary, 'SELECT application_name, sync_state FROM pg_stat_replication');
    expect(repl).toContainEqual({ application_name: async0.id, sync_state: 'sync' });
    await shard.waitFor('the sync to hold every row', async () => {
      const r = await shard.query<{ n: string }>(async0, 'SELECT count(*) AS n FROM wal_fill');
      return r[0]?.n === String(Number(rowsOnPrimary) + 1) || null;
    }, 60_000);
    expect((await shard.stateOf(primary)).generation).toBe(generation);

    // Now that it has replayed past initWal, it can take over: an operator's rebuild of it is refused
    // (its own sitter reads its position).
    const refused = await adm(['rebuild', '--json'], async0.apiUrl);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(new RegExp(`will not rebuild ${async0.id}: it is the sync \\(I have replayed \\S+, at or past initWal ${initWal}`));
  }, 420_000);
});
