// The primary-failure case on the zfs backend: three real sitters whose PostgreSQL data lives in
// datasets of a zfs-fuse pool (`<pool>/manatee/<peer>`), bootstrapped and rebuilt by zfs send/recv.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { Shard } from '../../tools/lib/shard.js';
import { createTestPool, ZFS_HOOK_TIMEOUT_MS, type TestPool } from '../../tools/lib/zfs-pool.js';

describe('a three-peer shard on zfs (zfs-fuse)', () => {
  let pool: TestPool;
  let shard: Shard;

  beforeAll(async () => {
    pool = await createTestPool({ sizeMb: 2048, prefix: 'shardzfs' });
    shard = await Shard.create({ prefix: 'zf', backend: 'zfs', zfsPool: pool.name, timeouts: { sessionTimeoutMs: 2000, keepaliveIntervalMs: 400 } });
  }, ZFS_HOOK_TIMEOUT_MS);

  afterAll(async () => {
    // The datasets are mounted in the shard's directory: the pool goes before the directory.
    await shard.teardown({ beforeRemove: () => pool.destroy() });
  });

  it('SIGKILL of the whole primary peer: the sync takes over, no acknowledged row is lost, the old primary is rebuilt and rejoins as an async', async () => {
    const { peer: primary, status } = await shard.waitForPrimaryWritable({ timeoutMs: 170_000 });
    const st = status.state;
    expect(st).not.toBeNull();
    const sync = shard.peer(st?.sync?.id ?? '');
    const async1 = shard.peer(st?.async[0]?.id ?? '');
    const generation = st?.generation ?? 0;
    await shard.waitForTopology({ primary: primary.id, sync: sync.id, async: [async1.id] }, 150_000);
    // Each peer's data is its own dataset, mounted where its PostgreSQL runs.
    const list = await execa('zfs', ['list', '-H', '-o', 'name,mountpoint', '-r', `${pool.name}/manatee`]);
    for (const p of shard.peers) expect(list.stdout).toContain(`${pool.name}/manatee/${p.id}\t${p.dataDir}/pgdata`);
    expect(status.backend).toBe('zfs');

    const writer = shard.writer({ intervalMs: 5 });
    await writer.start();
    await writer.waitForAckAfter(Date.now(), 30_000);
    const killed = await shard.killPeer(primary);
    await shard.waitForTopology({ primary: sync.id, sync: async1.id, async: [], deposed: [primary.id] }, 90_000);
    await writer.waitForAckAfter(killed.atMs, 60_000, sync.id);
    const after = await shard.statusOf(sync);
    expect(after?.state?.generation).toBe(generation + 1);
    expect(await writer.missingOn(sync)).toEqual([]);

    const rebuildsBefore = (await shard.logLines(primary)).filter((l) => l['decision'] === 'rebuild-done').length;
    shard.restartPeer(primary);
    await shard.waitForTopology({ primary: sync.id, sync: async1.id, async: [primary.id], deposed: [] }, 170_000);
    const lines = await shard.logLines(primary);
    expect(lines.filter((l) => l['decision'] === 'rebuild-done').length).toBe(rebuildsBefore + 1);
    await writer.waitForAckAfter(Date.now(), 30_000, sync.id);
    await writer.stop();
    expect(await writer.missingOn(sync)).toEqual([]);
    // The rebuilt peer replays the rows as an async.
    await shard.waitFor('the rebuilt async to have every acknowledged row', async () => (await writer.missingOn(primary)).length === 0, 60_000);
  });
});
