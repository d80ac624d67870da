// A scheduled switchover on a real three-peer shard (issue 15, item 3): manatee-adm promote
// --at stores the request in the state; the sync takes over once it is due, not before; a due
// one is skipped (with the reason in the history) when the shard is not healthy then; and
// clear-promote cancels one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Shard, httpJson, type ShardPeer } from '../../tools/lib/shard.js';
import type { ClusterState, HistoryEntry } from '../../src/model/index.js';

let shard: Shard;
let primary: ShardPeer;
let sync: ShardPeer;
let async0: ShardPeer;

const adm = (args: string[]) => shard.adm(args, shard.peers.map((p) => p.apiUrl).join(','));
const stateOf = async (p: ShardPeer): Promise<ClusterState> => ((await httpJson(`${p.apiUrl}/state`)).body as { state: ClusterState }).state;
const history = async (p: ShardPeer): Promise<HistoryEntry[]> => ((await httpJson(`${p.apiUrl}/history?limit=50`)).body as { history: HistoryEntry[] }).history;

beforeAll(async () => {
  shard = await Shard.create({ prefix: 'sch' });
  ({ primary, sync, async0 } = await shard.waitForChain());
}, 240_000);

afterAll(async () => {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
  await shard?.teardown();
}, 60_000);

describe('manatee-adm promote --at on a real shard', () => {
  it('a scheduled switchover can be cancelled with clear-promote', async () => {
    const r = await adm(['promote', '-p', sync.id, '--at', '+1h']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(new RegExp(`operator asked to promote ${sync.id} \\(sync → primary\\) in generation 1, scheduled for \\S+, expires`));
    expect((await stateOf(primary)).promote?.at).toBeDefined();
    expect((await adm(['show'])).stdout).toMatch(new RegExp(`promote: ${sync.id} \\(sync\\) for generation 1, scheduled for .*: scheduled`));
    const c = await adm(['clear-promote']);
    expect(c.stdout).toMatch(/operator cleared the promotion request/);
    expect((await stateOf(primary)).promote).toBeUndefined();
    const bad = await adm(['promote', '-p', sync.id, '--at', '2020-01-01T00:00:00Z']);
    expect(bad.stderr).toMatch(/^manatee-adm: MANATEE_ERR_INVALID_ARGUMENT: promote time 2020-01-01T00:00:00.000Z is not in the future/);
    const junk = await adm(['promote', '-p', sync.id, '--at', 'tomorrow']);
    expect(junk.stderr).toMatch(/^manatee-adm: MANATEE_ERR_USAGE: --at "tomorrow": expected an ISO 8601 time/);
  }, 60_000);

  it('fires once it is due, not before', async () => {
    // The chain as it is now (a takeover under load is legitimate), and a time far enough ahead that
    // manatee-adm (tsx compiling on start) gets there before it on a loaded machine.
    ({ primary, sync, async0 } = await shard.waitForChain());
    const g = (await stateOf(async0)).generation;
    const atMs = Date.now() + 15_000;
    const r = await adm(['promote', '-p', sync.id, '--at', new Date(atMs).toISOString()]);
    expect(r.code, r.stderr).toBe(0);
    const st = await shard.waitFor('the scheduled switchover', async () => {
      const s = await stateOf(async0);
      return s.generation > g ? s : null;
    }, 90_000);
    expect(st.generation).toBe(g + 1);
    expect(st.primary.id).toBe(sync.id);
    const entry = (await history(async0)).find((h) => h.generation === g + 1);
    expect(entry?.summary).toMatch(/took over as primary .* on an operator's promote request/);
    expect(Date.parse(entry!.time)).toBeGreaterThanOrEqual(atMs);
    await shard.waitForPrimaryWritable();
  }, 120_000);

  it('is skipped, with the reason in the history, when the shard is not healthy at its time', async () => {
    // The chain after the switchover: a new primary, and the old one rebuilt as an async.
    const s = await shard.waitFor('a full chain again', async () => {
      const x = await stateOf(async0);
      return x.sync !== null && x.async.length === 1 && x.deposed.length === 0 ? x : null;
    }, 180_000);
    const g = s.generation;
    const newSync = shard.peer(s.sync!.id);
    const theAsync = shard.peer(s.async[0]!.id);
    const r = await adm(['promote', '-p', newSync.id, '--at', '+8s']);
    expect(r.code).toBe(0);
    await shard.stopPeer(theAsync);
    const entry = await shard.waitFor('the skip in the history', async () => (await history(newSync)).find((h) => /skipped/.test(h.summary)), 90_000);
    expect(entry.summary).toMatch(new RegExp(`^scheduled switchover to ${newSync.id} skipped: the shard was not healthy at \\S+ \\(no async is active to become the sync after it\\)$`));
    const after = await stateOf(newSync);
    expect(after.generation).toBe(g);
    expect(after.primary.id).toBe(s.primary.id);
    expect(after.promote).toBeUndefined();
    const logged = (await shard.logLines(shard.peer(s.primary.id))).find((l) => l['decision'] === 'skipPromote');
    expect(String(logged?.['msg'])).toMatch(/skipping the promote request .* it is due, but the shard is not healthy/);
  }, 240_000);
});
