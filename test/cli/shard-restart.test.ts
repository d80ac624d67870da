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
/**
 * A shard that passes verify, and its chain as it is now: on a loaded machine the set-up may end
 * in a later generation than waitForChain saw (a sitter slower to start than the session timeout),
 * and a peer may still be catching up when the chain is first complete.
 */
const healthyChain = async (): Promise<{ primary: ShardPeer; async0: ShardPeer }> => {
  await shard.waitFor('a healthy shard (verify passes)', async () => (await adm(['verify'])).code === 0 || null, 180_000);
  return shard.waitForChain();
};
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
    ({ primary, async0 } = await healthyChain());
    const r = await adm(['reload']);
    expect(r.stderr, r.stdout).toBe('');
    for (const p of shard.peers) expect(r.stdout).toContain(`${p.id}: PostgreSQL reloaded its configuration`);
    const refused = await httpJson(`${primary.apiUrl}/admin/restart-postgres`, { method: 'POST', body: {}, token: shard.adminToken });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ error: { code: 'MANATEE_ERR_RESTART_PRIMARY' } });
  }, 240_000);

  it('restart --pending with a writer running: every peer restarted, one planned switchover', async () => {
    ({ primary, async0 } = await healthyChain());
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
      reject: false, timeout: 600_000, env: { MANATEE_URL: urls(), MANATEE_ADMIN_TOKEN: shard.adminToken, ...shard.tlsEnv() },
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
    // The writes moved once, from the old primary to the new one: one planned switchover of outage.
    const writers = writer.acked.map((a) => a.peer).filter((p, i, all) => i === 0 || all[i - 1] !== p);
    expect(writers).toEqual([primary.id, newSync]);
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

// A scheduled rolling restart (restart --at): stored in the state, run by the primary's sitter when
// due, skipped (with the reason in the history) when the shard is not healthy then. These follow
// the tests above: the last one left the async stopped, an unhealthy shard.
describe('manatee-adm restart --at on a real shard', () => {
  const history = async (p: ShardPeer): Promise<HistoryEntry[]> => ((await httpJson(`${p.apiUrl}/history?limit=100`)).body as { history: HistoryEntry[] }).history;
  const primaryNow = async (): Promise<ShardPeer> => shard.peer((await shard.stateOf(async0)).primary.id);

  it('refuses a bad TIME; a scheduled restart shows in show and the state, and clear-restart cancels it', async () => {
    const junk = await adm(['restart', '--at', 'tomorrow']);
    expect(junk.code).toBe(1);
    expect(junk.stderr).toMatch(/^manatee-adm: MANATEE_ERR_USAGE: --at "tomorrow": expected an ISO 8601 time/);
    const past = await adm(['restart', '--at', '2020-01-01T00:00:00Z']);
    expect(past.stderr).toMatch(/^manatee-adm: MANATEE_ERR_INVALID_ARGUMENT: restart time 2020-01-01T00:00:00.000Z is not in the future/);
    const r = await adm(['restart', '--pending', '--at', '+1h']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^operator scheduled a rolling restart of every peer with settings pending a restart for \S+ \(state version \d+\)/);
    const p = await primaryNow();
    expect((await shard.stateOf(p)).restart).toMatchObject({ pending: true });
    expect((await adm(['show'])).stdout).toMatch(/restart: scheduled for \S+ \(every peer with settings pending a restart\)/);
    const again = await adm(['restart', '--at', '+2h']);
    expect(again.stderr).toMatch(/^manatee-adm: MANATEE_ERR_RESTART_SCHEDULED: a rolling restart .* is already scheduled for/);
    const c = await adm(['clear-restart']);
    expect(c.stdout).toMatch(/^operator cancelled the rolling restart of every peer with settings pending a restart scheduled for/);
    expect((await shard.stateOf(p)).restart).toBeUndefined();
    expect((await adm(['clear-restart'])).stderr).toMatch(/^manatee-adm: MANATEE_ERR_NO_RESTART: /);
  }, 120_000);

  it('is skipped, with the reason in the history, when the shard is not healthy at its time', async () => {
    const p = await primaryNow();
    const g = (await shard.stateOf(p)).generation;
    const r = await adm(['restart', '--at', '+4s']);
    expect(r.code).toBe(0);
    const entry = await shard.waitFor('the skip in the history', async () => (await history(p)).find((h) => /^scheduled restart .* skipped/.test(h.summary)), 90_000);
    expect(entry.summary).toMatch(/^scheduled restart of every peer for \S+ skipped: the shard was not healthy at \S+ \(.+\)$/);
    const after = await shard.stateOf(p);
    expect(after.restart).toBeUndefined();
    expect(after.generation).toBe(g);
    const logged = (await shard.logLines(p)).find((l) => l['decision'] === 'scheduled-restart-skipped');
    expect(String(logged?.['msg'])).toMatch(/skipped: the shard was not healthy/);
  }, 120_000);

  it('fires once it is due: the primary\'s sitter runs the rolling restart', async () => {
    // The async stopped by the tests above comes back first: a healthy shard.
    const st = await shard.stateOf(await primaryNow());
    const stopped = shard.peers.find((x) => x.id !== st.primary.id && x.id !== st.sync?.id)!;
    shard.startSitter(stopped);
    const chain = await shard.waitForChain();
    await shard.waitFor('a healthy shard (verify passes)', async () => (await adm(['verify'])).code === 0 || null, 180_000);
    const pgPid = shard.postgresPid(chain.async0);
    // Relative to manatee-adm's own clock: under load its start alone can take longer than 10 s.
    const r = await adm(['restart', '--peer', chain.async0.id, '--at', '+10s']);
    expect(r.stderr).toBe('');
    const atMs = Date.parse(/ for (\S+) \(state version/.exec(r.stdout)?.[1] ?? '');
    expect(atMs).toBeGreaterThan(0);
    const started = await shard.waitFor('the start in the history', async () => (await history(chain.primary)).find((h) => /^scheduled restart .* started/.test(h.summary)), 90_000);
    expect(started.summary).toMatch(new RegExp(`^scheduled restart of peer ${chain.async0.id} for \\S+ started by the primary ${chain.primary.id}$`));
    expect(Date.parse(started.time)).toBeGreaterThanOrEqual(atMs);
    const done = await shard.waitFor('the restart done in the log', async () => (await shard.logLines(chain.primary)).find((l) => l['decision'] === 'scheduled-restart-done'), 240_000);
    expect(done['msg']).toMatch(/done: 1 peer restarted/);
    expect(shard.postgresPid(chain.async0)).not.toBe(pgPid);
    const steps = (await shard.logLines(chain.primary)).filter((l) => l['decision'] === 'scheduled-restart-step').map((l) => String(l['msg']));
    expect(steps).toContain(`scheduled restart: restarting ${chain.async0.id} (async)`);
    expect((await shard.stateOf(chain.primary)).restart).toBeUndefined();
  }, 420_000);
});
