// A real three-peer shard (basebackup) on loopback, for what must NOT change the generation
// (a sitter or PostgreSQL killed alone) and for the operator's actions: a planned promotion of
// the sync, and a freeze that blocks a takeover until unfrozen. The session timeout is long
// enough (8 s) for a killed sitter to be restarted within it on a loaded machine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Shard, type ShardPeer, type Writer } from '../../tools/lib/shard.js';

describe('a three-peer shard: single-process failures and operator actions (basebackup)', () => {
  let shard: Shard;
  let writer: Writer;
  let primary: ShardPeer;
  let sync: ShardPeer;
  let async1: ShardPeer;
  let generation: number;

  beforeAll(async () => {
    shard = await Shard.create({ prefix: 'op', timeouts: { sessionTimeoutMs: 8000, keepaliveIntervalMs: 1000 } });
  });

  afterAll(async () => {
    await shard.teardown();
  });

  const stateOf = (p: ShardPeer) => shard.stateOf(p);

  it('comes up with a writable primary, a sync and an async', async () => {
    // The whole chain, not only a writable primary: a primary can take writes alone (one-node-write
    // mode) before its sync is chosen, and at load 40 this test read a state without a sync.
    ({ primary, sync, async0: async1 } = await shard.waitForChain(150_000));
    generation = (await stateOf(primary)).generation;
    writer = shard.writer({ intervalMs: 5 });
    await writer.start();
    await writer.waitForAckAfter(Date.now(), 30_000);
  });

  it('SIGKILL of the primary\'s sitter alone, restarted within the session timeout: no generation change', async () => {
    const pgPid = shard.postgresPid(primary);
    expect(pgPid).not.toBeNull();
    await shard.killSitter(primary);
    const restartedAt = Date.now();
    shard.restartPeer(primary);
    const s = await shard.waitFor(`${primary.id}'s new sitter serving as primary`, async () => {
      const st = await shard.statusOf(primary);
      return st !== null && st.role === 'primary' && st.postgres.writable ? st : null;
    }, 60_000);
    expect(s.state?.generation).toBe(generation);
    expect(s.state?.primary.id).toBe(primary.id);
    expect(s.state?.sync?.id).toBe(sync.id);
    // The new sitter adopted the running postmaster instead of restarting it.
    expect(s.postgresPid).toBe(pgPid);
    // Writes go on through the same primary, and the history saw no new generation.
    await writer.waitForAckAfter(restartedAt, 60_000, primary.id);
    expect((await stateOf(sync)).generation).toBe(generation);
  });

  it('SIGKILL of the primary\'s PostgreSQL alone: the sitter restarts it, with no generation change', async () => {
    const killedPid = await shard.killPostgres(primary);
    expect(killedPid).not.toBeNull();
    const killedAt = Date.now();
    const s = await shard.waitFor(`${primary.id}'s PostgreSQL restarted and writable`, async () => {
      const st = await shard.statusOf(primary);
      return st !== null && st.postgresPid !== null && st.postgresPid !== killedPid && st.postgres.writable ? st : null;
    }, 90_000);
    expect(s.role).toBe('primary');
    expect(s.state?.generation).toBe(generation);
    await writer.waitForAckAfter(killedAt, 60_000, primary.id);
    await shard.waitForTopology({ primary: primary.id, sync: sync.id, async: [async1.id] });
    expect((await stateOf(primary)).generation).toBe(generation);
    const missing = await writer.missingOn(primary);
    if (missing.length > 0) {
      const onSync = await writer.missingOn(sync);
      console.log(JSON.stringify({ killedAt, missing, onSyncMissing: onSync, acks: writer.acked.filter((a) => missing.includes(a.id) || Math.abs(a.atMs - killedAt) < 300), errors: writer.errors.slice(-10) }));
    }
    expect(missing).toEqual([]);
  });

  it('planned promotion of the sync: it becomes primary, the async its sync, and the old primary rejoins as an async', async () => {
    const requestedAt = Date.now();
    const r = await shard.admin(async1, 'promote', { peerId: sync.id });
    expect(r.status).toBe(200);
    const first = await writer.waitForAckAfter(requestedAt, 60_000, sync.id);
    expect(first.peer).toBe(sync.id);
    const st = await stateOf(sync);
    expect(st.primary.id).toBe(sync.id);
    expect(st.generation).toBe(generation + 1);
    generation = st.generation;
    const oldPrimary = primary;
    primary = sync;
    sync = async1;
    async1 = oldPrimary;
    expect(await writer.missingOn(primary)).toEqual([]);
    await shard.waitForTopology({ primary: primary.id, sync: sync.id, async: [async1.id], deposed: [] }, 150_000);
    expect((await stateOf(primary)).generation).toBe(generation);
    // The deposed primary was rewound onto the new timeline: it replays new rows as an async.
    await writer.waitReplicatedTo(async1);
  });

  it('planned promotions in a row: every deposed primary is rewound onto the new timeline and replicates', async () => {
    // Each promotion deposes the primary while its sync is still promoting: a rebuild that ran
    // before the promotion finished once left the deposed peer on the old timeline, stuck.
    for (let round = 0; round < 2; round++) {
      const requestedAt = Date.now();
      const r = await shard.admin(primary, 'promote', { peerId: sync.id });
      expect(r.status).toBe(200);
      await writer.waitForAckAfter(requestedAt, 60_000, sync.id);
      generation++;
      const oldPrimary = primary;
      primary = sync;
      sync = async1;
      async1 = oldPrimary;
      await shard.waitForTopology({ primary: primary.id, sync: sync.id, async: [async1.id], deposed: [] }, 150_000);
      expect((await stateOf(primary)).generation).toBe(generation);
      await writer.waitReplicatedTo(sync);
      await writer.waitReplicatedTo(async1);
    }
    expect(await writer.missingOn(primary)).toEqual([]);
  });

  it('freeze blocks a takeover, and unfreeze lets it happen', async () => {
    const fr = await shard.admin(sync, 'freeze', { reason: 'integration test' });
    expect(fr.status).toBe(200);
    await shard.waitFor('the freeze committed', async () => (await stateOf(sync)).freeze !== undefined, 30_000);
    const oldPrimary = primary;
    const killed = await shard.killPeer(oldPrimary);
    // The sync sees the primary gone and decides not to take over, because of the freeze.
    await shard.waitFor(`${sync.id} declining to take over (frozen)`, async () => {
      const s = await shard.statusOf(sync);
      return s?.lastDecision?.kind === 'frozen' && !s.activePeers.some((p) => p.id === oldPrimary.id);
    }, 60_000);
    // It stays that way: several more evaluations (one a second) change nothing.
    const until = Date.now() + 4000;
    while (Date.now() < until) {
      const st = await stateOf(sync);
      expect(st.generation).toBe(generation);
      expect(st.primary.id).toBe(oldPrimary.id);
      await new Promise((r) => setTimeout(r, 250));
    }
    // No commit anywhere but on the killed primary (whose last in-flight commits may be answered
    // just after the signal left).
    expect(writer.acked.filter((a) => a.atMs >= killed.atMs && a.peer !== oldPrimary.id)).toEqual([]);

    const un = await shard.admin(sync, 'unfreeze', {});
    expect(un.status).toBe(200);
    const first = await writer.waitForAckAfter(killed.atMs, 90_000, sync.id);
    expect(first.atMs).toBeGreaterThan(killed.atMs);
    const st = await stateOf(sync);
    expect(st.primary.id).toBe(sync.id);
    expect(st.freeze).toBeUndefined();
    expect(st.generation).toBe(generation + 1);
    primary = sync;
    sync = async1;
    expect(await writer.missingOn(primary)).toEqual([]);
    shard.restartPeer(oldPrimary);
    await shard.waitForTopology({ primary: primary.id, sync: sync.id, async: [oldPrimary.id], deposed: [] }, 150_000);
    await writer.stop();
    expect(await writer.missingOn(primary)).toEqual([]);
  });
});
