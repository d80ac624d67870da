// A real three-peer shard (basebackup backend) of manatee-sitter processes on loopback, driven
// through one chain of failures in order: setup, SIGKILL of the async, of the sync, of the whole
// primary peer, and all peers killed and restarted together. A writer commits rows throughout
// from the failover on; every acknowledged row must be found on the final primary.
// A hook on each peer appends its JSON document to a file, so the chain also checks end to end
// the hooks that only these failures fire: sync_changed, deposed and rebuild_done.
import type { HookEvent } from '../../src/model/index.js';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HookDocument } from '../../src/peer/hooks.js';
import { Shard, httpJson, type ShardPeer, type Writer } from '../../tools/lib/shard.js';

describe('a three-peer shard through a chain of failures (basebackup)', () => {
  let shard: Shard;
  let writer: Writer;
  // Roles as they stand after each step (set by the setup test, updated by each failure).
  let primary: ShardPeer;
  let sync: ShardPeer;
  let async1: ShardPeer;
  let generation: number;

  beforeAll(async () => {
    shard = await Shard.create({ prefix: 'ch', start: false, timeouts: { sessionTimeoutMs: 2000, keepaliveIntervalMs: 400 } });
    for (const p of shard.peers) {
      const script = join(shard.dir, `hook-${p.id}.sh`);
      await writeFile(script, `#!/bin/sh\ncat >> '${hookLog(p)}'\necho >> '${hookLog(p)}'\n`);
      await chmod(script, 0o755);
      const config = JSON.parse(await readFile(p.configPath, 'utf8')) as Record<string, unknown>;
      config['hooks'] = { events: { sync_changed: [script], deposed: [script], rebuild_done: [script] }, timeoutMs: 10_000 };
      await writeFile(p.configPath, JSON.stringify(config, null, 2));
    }
    for (const p of shard.peers) shard.startSitter(p);
  }, 180_000);

  const hookLog = (p: ShardPeer) => join(shard.dir, `hooks-${p.id}.log`);
  /** The hook documents `p` has received for `event`, oldest first. */
  const hookDocs = async (p: ShardPeer, event: HookEvent): Promise<HookDocument[]> => {
    const text = await readFile(hookLog(p), 'utf8').catch(() => '');
    return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as HookDocument).filter((d) => d.event === event);
  };
  const idOf = (v: unknown): string | undefined => (v as { id?: string } | null)?.id;

  afterAll(async () => {
    await shard.teardown();
  });

  const stateOf = (p: ShardPeer) => shard.stateOf(p);

  /** Count of log lines of `peer` whose decision is one of `kinds`. */
  const decisions = async (p: ShardPeer, kinds: readonly string[]) => (await shard.logLines(p)).filter((l) => kinds.includes(String(l['decision']))).length;

  it('sets up a writable primary with a streaming sync and an async streaming from the sync', async () => {
    const { peer } = await shard.waitForPrimaryWritable({ timeoutMs: 150_000 });
    const st = await stateOf(peer);
    expect(st.generation).toBe(1);
    expect(st.sync).not.toBeNull();
    expect(st.async).toHaveLength(1);
    primary = peer;
    sync = shard.peer(st.sync?.id ?? '');
    async1 = shard.peer(st.async[0]?.id ?? '');
    generation = st.generation;
    await shard.waitForTopology({ primary: primary.id, sync: sync.id, async: [async1.id] });

    // pg_stat_replication, read directly on PostgreSQL: the sync streams with sync_state 'sync'
    // to the primary, and the async streams from the sync (not from the primary).
    const onPrimary = await shard.query<{ application_name: string; state: string; sync_state: string }>(primary, 'SELECT application_name, state, sync_state FROM pg_stat_replication');
    expect(onPrimary).toEqual([{ application_name: sync.id, state: 'streaming', sync_state: 'sync' }]);
    // The async's sitter reports streaming from its own WAL receiver; the sync's walsender row can
    // trail it by a moment (or the receiver reconnects once), so wait for the sender's side too.
    const onSync = await shard.waitFor(`${async1.id} streaming in ${sync.id}'s pg_stat_replication`, async () => {
      const rows = await shard.query<{ application_name: string; state: string }>(sync, 'SELECT application_name, state FROM pg_stat_replication');
      return rows.some((r) => r.state === 'streaming') ? rows : null;
    }, 60_000);
    expect(onSync).toEqual([expect.objectContaining({ application_name: async1.id, state: 'streaming' })]);
    expect((await shard.query<{ r: boolean }>(sync, 'SELECT pg_is_in_recovery() AS r'))[0]?.r).toBe(true);
    expect((await shard.query<{ r: boolean }>(async1, 'SELECT pg_is_in_recovery() AS r'))[0]?.r).toBe(true);

    writer = shard.writer({ intervalMs: 5 });
    await writer.start();
    await writer.waitForAckAfter(Date.now(), 30_000);
  });

  it('SIGKILL of the async: it is removed from the chain and rejoins', async () => {
    await shard.killPeer(async1);
    await shard.waitFor(`${async1.id} removed from the async chain`, async () => (await stateOf(primary)).async.length === 0, 60_000);
    expect((await stateOf(primary)).generation).toBe(generation);
    shard.restartPeer(async1);
    await shard.waitForTopology({ primary: primary.id, sync: sync.id, async: [async1.id] });
    expect((await stateOf(primary)).generation).toBe(generation);
    await writer.waitForAckAfter(Date.now(), 30_000);
  });

  it('SIGKILL of the sync: the primary takes the async as its sync; the old sync rejoins as an async without a rebuild', async () => {
    const oldSync = sync;
    const rebuildsBefore = await decisions(oldSync, ['rebuild', 'bootstrap']);
    await shard.killPeer(oldSync);
    await shard.waitForTopology({ primary: primary.id, sync: async1.id, async: [] }, 90_000);
    const st = await stateOf(primary);
    expect(st.generation).toBe(generation + 1);
    generation = st.generation;
    const since = Date.now();
    await writer.waitForAckAfter(since, 60_000, primary.id);

    shard.restartPeer(oldSync);
    await shard.waitForTopology({ primary: primary.id, sync: async1.id, async: [oldSync.id] }, 120_000);
    expect((await stateOf(primary)).generation).toBe(generation);
    expect(await decisions(oldSync, ['rebuild', 'bootstrap'])).toBe(rebuildsBefore);
    // The primary's sync_changed hook received the change, with the state it was made in.
    const changed = await shard.waitFor('the sync_changed hook on the primary', async () =>
      (await hookDocs(primary, 'sync_changed')).find((d) => idOf(d.details['previous']) === oldSync.id) ?? null, 30_000);
    expect(idOf(changed.details['current'])).toBe(async1.id);
    expect(changed.peer.id).toBe(primary.id);
    expect(changed.role).toBe('primary');
    expect(changed.state?.sync?.id).toBe(async1.id);
    sync = async1;
    async1 = oldSync;
    await writer.waitReplicatedTo(async1);
  });

  it('SIGKILL of the whole primary peer: the sync takes over, the async becomes sync, no acknowledged row is lost, the old primary is rebuilt and rejoins as an async', async () => {
    const oldPrimary = primary;
    const rebuildsBefore = await decisions(oldPrimary, ['rebuild-done']);
    const killed = await shard.killPeer(oldPrimary);
    await shard.waitForTopology({ primary: sync.id, sync: async1.id, async: [], deposed: [oldPrimary.id] }, 90_000);
    const st = await stateOf(sync);
    expect(st.generation).toBe(generation + 1);
    generation = st.generation;
    const first = await writer.waitForAckAfter(killed.atMs, 60_000, sync.id);
    expect(first.peer).toBe(sync.id);
    primary = sync;
    sync = async1;

    // Nothing acknowledged by the old primary is missing on the new one.
    expect(writer.acked.some((a) => a.peer === oldPrimary.id)).toBe(true);
    expect(await writer.missingOn(primary)).toEqual([]);

    shard.restartPeer(oldPrimary);
    await shard.waitForTopology({ primary: primary.id, sync: sync.id, async: [oldPrimary.id], deposed: [] }, 150_000);
    expect(await decisions(oldPrimary, ['rebuild-done'])).toBe(rebuildsBefore + 1);
    // The old primary's hooks: deposed when it came back, then rebuild_done from the new primary.
    const deposed = await shard.waitFor('the deposed hook on the old primary', async () => (await hookDocs(oldPrimary, 'deposed'))[0] ?? null, 30_000);
    expect(idOf(deposed.details['primary'])).toBe(primary.id);
    expect(deposed.peer.id).toBe(oldPrimary.id);
    const rebuilt = await shard.waitFor('the rebuild_done hook on the old primary', async () => (await hookDocs(oldPrimary, 'rebuild_done'))[0] ?? null, 30_000);
    expect([primary.id, sync.id]).toContain(idOf(rebuilt.details['source']));
    expect(['rewind', 'full', 'incremental']).toContain(rebuilt.details['method']);
    expect(Date.parse(rebuilt.time)).toBeGreaterThanOrEqual(Date.parse(deposed.time));
    expect((await stateOf(primary)).generation).toBe(generation);
    async1 = oldPrimary;
    await writer.waitForAckAfter(Date.now(), 30_000, primary.id);
    // The rebuilt old primary replays new rows as an async (it is on the new timeline).
    await writer.waitReplicatedTo(async1);
  });

  it('all peers killed and restarted together come back with the same primary and no acknowledged row lost', async () => {
    await writer.stop();
    const acked = writer.acked.length;
    expect(acked).toBeGreaterThan(0);
    expect(await writer.missingOn(primary)).toEqual([]);
    await Promise.all(shard.peers.map((p) => shard.killPeer(p)));
    // "Together" means within the session timeout: the peers come back with a session timeout
    // longer than a sitter's start-up on a loaded 2-core machine (tsx compiles each sitter), so
    // that a peer slower than the others is not expired (which would be a legitimate new
    // generation) before it has reopened its session.
    for (const p of shard.peers) {
      const config = JSON.parse(await readFile(p.configPath, 'utf8')) as { timeouts: Record<string, number> };
      config.timeouts = { ...config.timeouts, sessionTimeoutMs: 20_000, keepaliveIntervalMs: 1000 };
      await writeFile(p.configPath, JSON.stringify(config, null, 2));
    }
    for (const p of shard.peers) shard.restartPeer(p);
    const { peer } = await shard.waitForPrimaryWritable({ timeoutMs: 150_000 });
    if (peer.id !== primary.id) {
      // For the post-mortem: why the primary changed (e.g. a session that expired behind a sitter).
      console.log(`restart-all: primary ${primary.id} -> ${peer.id}; history: ${JSON.stringify((await httpJson(`${peer.apiUrl}/history`)).body).slice(-3000)}`);
    }
    expect(peer.id).toBe(primary.id);
    expect(await writer.missingOn(peer)).toEqual([]);
    const st = await stateOf(peer);
    if (st.generation === generation) {
      // The usual case: the same sync and async stream again.
      await shard.waitForTopology({ primary: primary.id, sync: sync.id, async: [async1.id] }, 120_000);
      return;
    }
    // A sitter that took longer than the session timeout to start on a loaded machine lets its session
    // expire, and the primary then legitimately takes the other standby as its sync (a new generation).
    // Seen in full-suite runs, not in runs of this file alone; the history says why, for the log.
    console.log(`restart-all: generation ${generation} -> ${st.generation}; history: ${JSON.stringify((await httpJson(`${peer.apiUrl}/history`)).body).slice(-2000)}`);
    expect(st.generation).toBeGreaterThan(generation);
    // The shard is whole again all the same: the same primary, the two others streaming in some order.
    await shard.waitFor('the same primary with both other peers back in its chain', async () => {
      const s = await stateOf(primary);
      return s.primary.id === primary.id && s.sync !== null && s.async.length === 1
        && [s.sync.id, s.async[0]!.id].sort().join() === [sync.id, async1.id].sort().join() ? s : null;
    }, 120_000);
  });
});
