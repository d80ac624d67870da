// The snapshotter on a real pool: retention, never deleting the newest, skipping while
// PostgreSQL is unhealthy; and the manatee-snapshotter program with its configuration checks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { silentLogger, type Logger } from '../../src/log.js';
import { Snapshotter, Zfs } from '../../src/zfs/index.js';
import { parseSnapshotterConfig } from '../../src/zfs/snapshotter-config.js';
import { createTestPool, ZFS_HOOK_TIMEOUT_MS, type TestPool } from '../../tools/lib/zfs-pool.js';
import { waitFor } from '../../tools/lib/wait.js';

let pool: TestPool;
let zfs: Zfs;

beforeAll(async () => {
  pool = await createTestPool({ sizeMb: 128 });
  zfs = new Zfs({ log: silentLogger() });
}, ZFS_HOOK_TIMEOUT_MS);
afterAll(async () => {
  await pool.destroy();
});

function captureLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l));
      cb();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

describe('Snapshotter', () => {
  it('keeps the newest N snapshots and deletes the oldest beyond them', async () => {
    const ds = `${pool.name}/ret`;
    await zfs.createDataset(ds);
    let t = 1_700_000_000_000;
    const { log, lines } = captureLogger();
    const s = new Snapshotter({ zfs, dataset: ds, intervalMs: 1000, retentionCount: 3, log, now: () => (t += 1000) });
    for (let i = 0; i < 5; i++) expect((await s.runOnce()).decision).toBe('snapshot');
    const names = (await zfs.listSnapshots(ds)).map((x) => x.short);
    expect(names).toEqual(['1700000003000', '1700000004000', '1700000005000']);
    const last = s.lastDecision!;
    expect(last.created).toBe(`${ds}@1700000005000`);
    expect(last.destroyed).toEqual([`${ds}@1700000002000`]);
    expect(lines.filter((l) => l['msg'] === 'snapshotter: snapshot').length).toBe(5);
    expect(lines.at(-1)).toMatchObject({ decision: 'snapshot', dataset: ds });
  });

  it('with retention 1 always keeps the newest snapshot', async () => {
    const ds = `${pool.name}/ret1`;
    await zfs.createDataset(ds);
    const s = new Snapshotter({ zfs, dataset: ds, intervalMs: 1000, retentionCount: 1, log: silentLogger() });
    await s.runOnce();
    await s.runOnce();
    const snaps = await zfs.listSnapshots(ds);
    expect(snaps.length).toBe(1);
    expect(s.lastDecision?.created).toBe(snaps[0]!.name);
  });

  it('skips while PostgreSQL is unhealthy (or the health check throws) and logs why', async () => {
    const ds = `${pool.name}/skip`;
    await zfs.createDataset(ds);
    let healthy: boolean | 'throw' = false;
    const { log, lines } = captureLogger();
    const s = new Snapshotter({
      zfs, dataset: ds, intervalMs: 1000, retentionCount: 2, log,
      isHealthy: () => {
        if (healthy === 'throw') throw new Error('connection refused');
        return healthy;
      },
    });
    expect(await s.runOnce()).toMatchObject({ decision: 'skip', reason: 'PostgreSQL is unhealthy' });
    healthy = 'throw';
    expect(await s.runOnce()).toMatchObject({ decision: 'skip', reason: 'health check failed: connection refused' });
    expect(await zfs.listSnapshots(ds)).toEqual([]);
    expect(lines.filter((l) => l['decision'] === 'skip').length).toBe(2);
    healthy = true;
    expect((await s.runOnce()).decision).toBe('snapshot');
    expect((await zfs.listSnapshots(ds)).length).toBe(1);
  });

  it('reports an error decision (and does not throw) when the dataset is gone', async () => {
    const s = new Snapshotter({ zfs, dataset: `${pool.name}/gone`, intervalMs: 1000, retentionCount: 2, log: silentLogger() });
    const d = await s.runOnce();
    expect(d.decision).toBe('error');
    expect(d.reason).toMatch(/does not exist/);
  });

  it('runs periodically between start() and stop()', async () => {
    const ds = `${pool.name}/periodic`;
    await zfs.createDataset(ds);
    const s = new Snapshotter({ zfs, dataset: ds, intervalMs: 200, retentionCount: 2, log: silentLogger() });
    s.start();
    try {
      await waitFor('three passes', async () => (s.lastDecision !== null && (await zfs.listSnapshots(ds)).length === 2 ? s.lastDecision.destroyed.length > 0 || null : null), { timeoutMs: 30_000 });
    } finally {
      await s.stop();
    }
    const after = (await zfs.listSnapshots(ds)).length;
    expect(after).toBe(2);
  });

  it('refuses a retention count below 1 and a bad dataset name', () => {
    expect(() => new Snapshotter({ zfs, dataset: `${pool.name}/x`, intervalMs: 1000, retentionCount: 0, log: silentLogger() })).toThrow(/retentionCount/);
    expect(() => new Snapshotter({ zfs, dataset: 'p/a;rm -rf /', intervalMs: 1000, retentionCount: 1, log: silentLogger() })).toThrow(/invalid ZFS name/);
  });
});

describe('manatee-snapshotter', () => {
  const cli = join(import.meta.dirname, '../../src/cli/manatee-snapshotter.ts');
  const tsx = join(import.meta.dirname, '../../node_modules/.bin/tsx');

  it('validates the configuration with errors that name the field', () => {
    expect(() => parseSnapshotterConfig({ dataset: 'p/a', intervalMs: 10, retentionCount: 2 })).toThrow(/intervalMs: must be >= 1000/);
    expect(() => parseSnapshotterConfig({ dataset: 'p/a', intervalMs: 1000 })).toThrow(/retentionCount: is missing/);
    expect(() => parseSnapshotterConfig({ dataset: 'p/a;x', intervalMs: 1000, retentionCount: 1 })).toThrow(/dataset: .*letters, digits/);
    expect(() => parseSnapshotterConfig({ dataset: 'p/a', intervalMs: 1000, retentionCount: 1, colour: 1 })).toThrow(/colour: is not a known setting/);
    expect(() => parseSnapshotterConfig({ dataset: 'p/a', intervalMs: 1000, retentionCount: 1, health: { pgUrl: 'http://x' } })).toThrow(/health.pgUrl/);
    expect(parseSnapshotterConfig({ dataset: 'p/a', intervalMs: 1000, retentionCount: 1 }).logLevel).toBe('info');
  });

  it('exits 2 naming the bad field, and takes a snapshot with --once', async () => {
    const bad = join(pool.dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ dataset: `${pool.name}/cli`, intervalMs: 1000, retentionCount: -1 }));
    const r = await execa(tsx, [cli, '-f', bad], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/MANATEE_ERR_SNAPSHOTTER_CONFIG.*\n.*retentionCount: must be >= 1/);
    const ds = `${pool.name}/cli`;
    await zfs.createDataset(ds);
    const good = join(pool.dir, 'good.json');
    await writeFile(good, JSON.stringify({ dataset: ds, intervalMs: 1000, retentionCount: 2 }));
    const ok = await execa(tsx, [cli, '-f', good, '--once'], { reject: false });
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout).toMatch(/"decision":"snapshot"/);
    expect((await zfs.listSnapshots(ds)).length).toBe(1);
  });
});
