// A hung primary PostgreSQL with no async to fail over to, on three real sitters with PostgreSQL 15
// (the liveness bug seen on loaded shards): the primary's PostgreSQL is stopped (SIGSTOP of the
// postmaster and its backends) for longer than pgUnhealthyTimeoutMs while the third peer is down, so
// the sync cannot take over (no async to become its sync). The primary closes its session, its
// lease fence stops PostgreSQL (the signal waits for SIGCONT), and the fence's time no longer counts
// as unhealthy; once the sync had pgUnhealthyTimeoutMs to take over, the primary reopens its session,
// renews its lease and restarts PostgreSQL: the shard is writable again, same primary, same generation.
// Before, the primary's session stayed closed for good (no session, no keepalive, the fence never
// lifted), and nothing wrote until an operator stepped in.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Shard } from '../../tools/lib/shard.js';
import { postgresProcesses, signalPids } from '../../tools/lib/processes.js';


describe('a hung primary PostgreSQL with no async to fail over to', () => {
  let shard: Shard;
  /** Processes this test stopped: continued in afterAll whatever happens. */
  let stopped: number[] = [];

  beforeAll(async () => {
    shard = await Shard.create({ peers: 3, prefix: 'hung', timeouts: { sessionTimeoutMs: 2000, keepaliveIntervalMs: 400, pgUnhealthyTimeoutMs: 5000 } });
  });

  afterAll(async () => {
    signalPids(stopped, 'SIGCONT');
    await shard.teardown();
  });

  it('closes the primary\'s session, then reopens it once the sync could not take over, and restarts PostgreSQL', async () => {
    const { primary, sync, async0 } = await shard.waitForChain();
    const generation = (await shard.stateOf(primary)).generation;
    // The third peer goes: the primary drops it from the chain, and the sync has no async to take over with.
    await shard.stopPeer(async0);
    await shard.waitForTopology({ primary: primary.id, sync: sync.id, async: [] });
    const writer = shard.writer({ intervalMs: 20 });
    await writer.start();
    await writer.waitForAckAfter(Date.now(), 60_000);

    const postmaster = shard.postgresPid(primary);
    expect(postmaster).not.toBeNull();
    stopped = postgresProcesses(postmaster!);
    signalPids(stopped, 'SIGSTOP');
    const stoppedAtMs = Date.now();
    const lines = async (): Promise<Record<string, unknown>[]> => (await shard.logLines(primary)).filter((l) => typeof l['time'] === 'number' && l['time'] >= stoppedAtMs);
    await shard.waitFor('the primary closing its session for PostgreSQL\'s health', async () => (await lines()).find((l) => l['decision'] === 'closeSession'), 60_000);
    await shard.waitFor('the primary\'s lease fence', async () => (await lines()).find((l) => l['decision'] === 'lease-fence'), 30_000);
    // Its sync's window: the primary waits, while the sync cannot take over (no async).
    const wait = await shard.waitFor('the primary waiting for a takeover', async () => (await lines()).find((l) => l['decision'] === 'waitForTakeover'), 30_000);
    expect(wait['reason']).toMatch(/the sync may take over for \d+ ms more before I reopen it/);
    signalPids(stopped, 'SIGCONT');
    stopped = [];

    const reopened = await shard.waitFor('the primary reopening its session', async () => (await lines()).find((l) => l['decision'] === 'openSession'), 60_000);
    expect(reopened['msg']).toMatch(/no peer took over within 5000 ms; reopening it to renew my lease and restart PostgreSQL/);
    const resumedAtMs = Date.now();
    await shard.waitForTopology({ primary: primary.id, sync: sync.id, async: [] }, 120_000);
    await writer.waitForAckAfter(resumedAtMs, 60_000);
    const state = await shard.stateOf(primary);
    expect(state.generation).toBe(generation);
    expect(state.primary.id).toBe(primary.id);
    expect(state.deposed).toEqual([]);
    await writer.stop();
  }, 420_000);
});
