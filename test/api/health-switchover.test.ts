// /primary during planned switchovers on a real three-peer shard (real sitters and PostgreSQL 15,
// tools/lib/shard.ts): every peer's /primary is polled back to back, a few ms apart, as a load
// balancer does. A load balancer must never see two peers answer 200: the old primary's 200s end
// before the new primary's begin. A request is known to have been answered between its send and
// its receipt, so an overlap is certain when the old primary answered 200 to a request sent after
// the new primary's first 200 had already been received; that must never happen. A new 200 must
// appear. The figures (old primary's last 200 to the new one's first) are printed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { performance } from 'node:perf_hooks';
import { Shard, httpJson, type ShardPeer } from '../../tools/lib/shard.js';

let shard: Shard;

beforeAll(async () => {
  shard = await Shard.create({ prefix: 'hs' });
  await shard.waitForChain(180_000);
}, 240_000);

afterAll(async () => {
  // Unset when Shard.create() itself failed (it cleans up after itself then).
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
  await shard?.teardown();
}, 120_000);

interface Sample { peer: string; sentMs: number; gotMs: number; status: number }

/** Polls GET /primary on every peer, each one request after the other with `gapMs` between. */
function pollPrimary(peers: readonly ShardPeer[], gapMs: number): { samples: Sample[]; stop: () => Promise<void> } {
  const samples: Sample[] = [];
  let stopped = false;
  const loops = peers.map(async (p) => {
    while (!stopped) {
      const sentMs = performance.now();
      const status = await httpJson(`${p.apiUrl}/primary`, { timeoutMs: 2000 }).then((r) => r.status, () => 0);
      samples.push({ peer: p.id, sentMs, gotMs: performance.now(), status });
      await new Promise((r) => setTimeout(r, gapMs));
    }
  });
  return { samples, stop: async () => { stopped = true; await Promise.all(loops); } };
}

describe('/primary during a planned switchover', () => {
  it('never answers 200 on two peers at once, and the new primary answers 200', async () => {
    for (let round = 1; round <= 2; round++) {
      const { primary, sync } = await shard.waitForChain(180_000);
      const poll = pollPrimary(shard.peers, 3);
      await shard.waitFor('the primary answering 200 to the poller', () => Promise.resolve(poll.samples.some((s) => s.peer === primary.id && s.status === 200)), 30_000);
      const res = await shard.admin(sync, 'promote', { peerId: sync.id });
      expect(res.status).toBe(200);
      await shard.waitFor('the new primary answering 200', () => Promise.resolve(poll.samples.some((s) => s.peer === sync.id && s.status === 200)), 60_000);
      // Keep polling a little after the change, to catch an old primary that answers 200 again.
      const until = performance.now() + 1000;
      await shard.waitFor('a second of polls after the change', () => Promise.resolve(performance.now() > until), 10_000);
      await poll.stop();

      const firstNew = poll.samples.filter((s) => s.peer === sync.id && s.status === 200).sort((a, b) => a.gotMs - b.gotMs)[0]!;
      const lateOld = poll.samples.filter((s) => s.peer !== sync.id && s.status === 200 && s.sentMs > firstNew.gotMs);
      expect(lateOld, `a 200 from ${lateOld[0]?.peer ?? ''} after ${sync.id} answered 200`).toEqual([]);
      const lastOld = poll.samples.filter((s) => s.peer === primary.id && s.status === 200).sort((a, b) => b.gotMs - a.gotMs)[0]!;
      const polls = poll.samples.length;
      console.log(`switchover ${round}: ${primary.id} -> ${sync.id}; old primary's last 200 received ${Math.round(lastOld.gotMs)} ms, new primary's first 200 sent ${Math.round(firstNew.sentMs)} ms: gap ${Math.round(firstNew.sentMs - lastOld.gotMs)} ms (${polls} polls)`);
      expect(polls).toBeGreaterThan(100);
    }
  }, 600_000);
});
