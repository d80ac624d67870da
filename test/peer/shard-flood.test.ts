// Issue #14: a flood of half-open sockets (TCP connected, nothing sent: no TLS ClientHello, no
// Raft hello, no HTTP request) on a TLS shard's Raft and API ports, held while a peer restarts.
// The flood comes from 30 addresses other than the peers' (127.0.0.2 to 127.0.0.31), as an
// attacker on the network would; the peers are all on 127.0.0.1. The flooded peer is the one
// restarted (its ports close with its sitter, and the flood is back on them as soon as they open).
// The session timeout is 4 s: on the loaded 2-core test machine, a sitter's event loop stalls for
// seconds at times, flood or not, and 2 s sessions then churn the chain all through the test.
// The restarted peer must rejoin (its session opens again, it is placed in the chain and replays
// new rows), the shard must go on committing, and every flooded API must still answer a real
// client. The Raft transport evicts unauthenticated sockets past its small caps (an
// authenticated peer always gets a slot); the API holds at most connectionsMax (512) and must not
// let half-open sockets keep real callers out.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HalfOpenFlood } from '../helpers/flood.js';
import { Shard, type Writer } from '../../tools/lib/shard.js';

/** More than the API's connection cap (512), and far more than Raft's unauthenticated slots (32). */
const API_SOCKETS = 600;
const RAFT_SOCKETS = 300;
const FLOOD_ADDRESSES = Array.from({ length: 30 }, (_, i) => `127.0.0.${i + 2}`);

// In npm test since 2026-12-07: it passed 2 of 4 runs under load, failing on its own checks
// (the rejoin judged on the old session, a count of open sockets at one moment) and on the Raft
// transport's deadlines judged across the flooded peer's stalls (fixed there); with both fixed,
// 5 of 5 in a row passed at a load of 22 to 38 (88 to 113 s each).
describe('a TLS shard under a flood of half-open sockets', () => {
  let shard: Shard;
  let writer: Writer | null = null;
  const floods: HalfOpenFlood[] = [];

  beforeAll(async () => {
    shard = await Shard.create({ tls: true, prefix: 'fl', timeouts: { sessionTimeoutMs: 4000, keepaliveIntervalMs: 800 } });
  });

  afterAll(async () => {
    await Promise.all(floods.map((f) => f.stop()));
    await writer?.stop();
    await shard.teardown();
  });

  it('a peer restarted while its Raft and API ports are flooded rejoins, and the shard commits', async () => {
    const { primary, async0 } = await shard.waitForChain();
    writer = shard.writer({ intervalMs: 20 });
    await writer.start();
    await writer.waitForAckAfter(Date.now(), 60_000);

    floods.push(new HalfOpenFlood(async0.raftPort, RAFT_SOCKETS, FLOOD_ADDRESSES), new HalfOpenFlood(async0.apiPort, API_SOCKETS, FLOOD_ADDRESSES));
    for (const f of floods) f.start();
    // The API floods hold their sockets: hundreds are open at once before the restart.
    for (const f of floods.filter((x) => x.count === API_SOCKETS)) await f.waitOpen(400, 60_000);
    const floodedAt = Date.now();
    await writer.waitForAckAfter(floodedAt, 60_000);

    // The async's sitter is killed (its PostgreSQL runs on) and started again, flood and all.
    await shard.killSitter(async0);
    const restartedAt = Date.now();
    shard.restartPeer(async0);

    // It rejoins: its new sitter answers a real client through its flooded API, with its PostgreSQL
    // online and its place in the chain. (Judged on the new sitter's own status: until its old
    // session expires the primary still shows it active and placed, which says nothing of the
    // restart; waiting on that and then giving the new sitter 60 s failed when its start, slowed by
    // the load, took 63 s.)
    const back = await shard.waitFor(`${async0.id} to rejoin under the flood`, async () => {
      const s = await shard.statusOf(async0);
      if (s === null || s.sitterPid !== shard.sitterPid(async0) || !s.postgres.online) return null;
      return s.role === 'sync' || s.role === 'async' ? s : null;
    }, 240_000);
    // The primary (whose ports are not flooded) sees its new session.
    await shard.waitFor(`${primary.id} to see ${async0.id} active and placed`, async () => {
      const s = await shard.statusOf(primary);
      if (s === null || s.state === null || !s.activePeers.some((p) => p.id === async0.id)) return null;
      return s.state.sync?.id === async0.id || s.state.async.some((a) => a.id === async0.id) ? s : null;
    }, 60_000);
    expect(back.raft.leader).not.toBeNull();
    const acked = await writer.waitForAckAfter(Date.now(), 60_000);
    expect(acked.atMs).toBeGreaterThan(restartedAt);
    await writer.waitReplicatedTo(async0, 120_000);

    // The flood was held all along: each of its sockets was cut (evicted, or closed for sending
    // nothing in time) and opened again, so both made more connections than they hold. (How many
    // the API flood holds open at one moment depends on how fast the loaded test process reopens
    // them: 289 of 600 in one run, so that is not asserted; 400 were open before the restart.)
    // Waited for, not asserted at once: on a quiet machine the rejoin can come within the 3 s the
    // flood pauses before it reopens a cut socket (a run at load 10 saw 300 of 300 and failed).
    for (const f of floods) {
      await shard.waitFor(`the flood on port ${f.port} to have reopened cut sockets`, () => Promise.resolve(f.stats.connected > f.count ? true : null), 60_000);
    }

    await Promise.all(floods.map((f) => f.stop()));
    for (const f of floods) expect(f.stats.open).toBe(0);
    await writer.stop();
    expect(await writer.missingOn(shard.peer((await shard.stateOf(async0)).primary.id))).toEqual([]);
  }, 600_000);
});
