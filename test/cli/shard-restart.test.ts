// Rolling restart on a real three-peer shard (issue 15, item 2): a postmaster setting pending on
// every peer, then manatee-adm restart --pending with a writer running: the asyncs, the sync,
// one planned switchover, the old primary; afterwards nothing is pending and every peer runs the
// new value. The write outage is measured (printed); the sync is replaced by the async before its
// restart (one generation), then the planned switchover (one generation, the only primary change).
// Also: manatee-adm reload, the primary refusing a plain restart, and a restart refused on an
// unhealthy shard.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { Shard, httpJson, type ShardPeer } from '../../tools/lib/shard.js';
import type { HistoryEntry } from '../../src/model/index.js';

let shard: Shard;
let primary: ShardPeer;
let async0: ShardPeer;

const urls = (): string => shard.peers.map((p) => p.apiUrl).join(',');
const adm = (args: string[]) => shard.adm(args, urls());
const show = async (p: ShardPeer, name: string): Promise<string> => (await shard.query<{ v: string }>(p, `SELECT current_setting('${name}') AS v`))[0]!.v;

beforeAll(async () => {
  shard = await Shard.create({ prefix: 'rst' });
  ({ primary, async0 } = await shard.waitForChain());
}, 240_000);

afterAll(async () => {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
  await shard?.teardown();
}, 60_000);

describe('manatee-adm reload and restart on a real shard', () => {
  it('reload reloads every peer; the primary refuses a plain restart of its PostgreSQL', async () => {
    const r = await adm(['reload']);
    expect(r.stderr).toBe('');
    for (const p of shard.peers) expect(r.stdout).toContain(`${p.id}: PostgreSQL reloaded its configuration`);
    const refused = await httpJson(`${primary.apiUrl}/admin/restart-postgres`, { method: 'POST', body: {}, token: shard.adminToken });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ error: { code: 'MANATEE_ERR_RESTART_PRIMARY' } });
  }, 60_000);

  it('restart --pending with a writer running: every peer restarted, one planned switchover', async () => {
    const set = await adm(['config', 'set', 'shared_buffers=48MB']);
    expect(set.code).toBe(0);
    for (const p of shard.peers) {
      await shard.waitFor(`shared_buffers pending on ${p.id}`, async () => (await shard.statusOf(p))?.settings?.pendingRestart.includes('shared_buffers'), 60_000);
    }
    const g0 = (await shard.stateOf(primary)).generation;
    const writer = shard.writer({ intervalMs: 20 });
    await writer.start();
    await writer.waitForAckAfter(Date.now());
    const r = await execa('node', ['--import', 'tsx', 'src/cli/manatee-adm.ts', 'restart', '--pending'], {
      reject: false, timeout: 600_000, env: { MANATEE_URL: urls(), MANATEE_ADMIN_TOKEN: shard.adminToken },
    });
    const afterMs = Date.now();
    await writer.waitForAckAfter(afterMs);
    await writer.stop();
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/plan: \S+ \(async\), then \S+ \(sync\), then \S+ \(primary\)/);
    // The sync is replaced by the async (caught up) before its restart, so no commit waits for it.
    const replaced = /replacing the sync (\S+) with (\S+) before its restart/.exec(r.stdout);
    expect(replaced, r.stdout).not.toBeNull();
    const [, oldSync, newSync] = replaced!;
    expect(r.stdout).toContain(`${newSync} is the sync (streaming, sync_state sync, generation ${g0 + 1}); ${oldSync} is now an async that no commit waits for`);
    expect(r.stdout).toMatch(new RegExp(`planned switchover: ${newSync} takes over from ${primary.id}`));
    expect(r.stdout).toMatch(/done: 3 peers restarted/);
    // Two generations: the sync's replacement (same primary), then the one planned switchover.
    const history = ((await httpJson(`${async0.apiUrl}/history?limit=100`)).body as { history: HistoryEntry[] }).history;
    const after = history.filter((h) => h.generation > g0);
    expect([...new Set(after.map((h) => h.generation))]).toEqual([g0 + 1, g0 + 2]);
    expect(after.find((h) => h.generation === g0 + 1)?.summary).toBe(`primary (${primary.id}) promoted async "${newSync}" to sync (was ${oldSync})`);
    expect(after.find((h) => h.generation === g0 + 1)?.state.primary.id).toBe(primary.id);
    expect(after.find((h) => h.generation === g0 + 2)?.state.primary.id).toBe(newSync);
    for (const p of shard.peers) {
      expect(await show(p, 'shared_buffers')).toBe('48MB');
      expect((await shard.statusOf(p))?.settings?.pendingRestart).toEqual([]);
    }
    // The longest time without an acknowledged write while the restart ran (printed for the record).
    const acks = writer.acked.map((a) => a.atMs);
    let maxGapMs = 0;
    for (let i = 1; i < acks.length; i++) maxGapMs = Math.max(maxGapMs, acks[i]! - acks[i - 1]!);
    console.log(`rolling restart: ${acks.length} writes acknowledged, longest gap without one ${maxGapMs} ms`);
    expect(await writer.missingOn(shard.peer((await shard.stateOf(async0)).primary.id))).toEqual([]);
  }, 600_000);

  it('refuses to start on an unhealthy shard, and changes nothing', async () => {
    const st = await shard.stateOf(async0);
    const theAsync = shard.peer(st.async[0]!.id);
    await shard.stopPeer(theAsync);
    await shard.waitFor('the async out of the chain', async () => (await shard.stateOf(shard.peer(st.primary.id))).async.length === 0 || null, 60_000);
    const r = await adm(['restart']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^manatee-adm: MANATEE_ERR_RESTART_UNHEALTHY: the shard is not healthy; not restarting anything: /);
    expect((await shard.stateOf(shard.peer(st.primary.id))).generation).toBe(st.generation);
  }, 120_000);
});
