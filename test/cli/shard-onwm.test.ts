// manatee-adm set-onwm against a real three-peer shard (real sitters, real PostgreSQL 15 on
// 127.0.0.1, ephemeral ports; tools/lib/shard.ts): `set-onwm on` makes the primary declare
// generation+1 with no sync (onwmDowngrade), and its writes commit with no standby at all (the
// former sync is stopped); `set-onwm off` makes it pick a sync again at the next generation
// (onwmUpgrade), and writes commit through it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Shard, type ShardPeer } from '../../tools/lib/shard.js';
import type { ClusterState } from '../../src/model/index.js';


let shard: Shard;
let primary: ShardPeer;
let sync: ShardPeer;
let async0: ShardPeer;

const adm = (args: string[], url: string) => shard.adm(args, url);

/** One INSERT on the primary; it fails (query_timeout) rather than hang when commits wait for a missing sync. */
async function insert(value: string): Promise<void> {
  const c = await shard.client(primary, 5000, 20_000);
  try {
    await c.query('CREATE TABLE IF NOT EXISTS onwm_test (v text PRIMARY KEY)');
    await c.query('INSERT INTO onwm_test (v) VALUES ($1)', [value]);
  } finally {
    await c.end().catch(() => undefined);
  }
}

beforeAll(async () => {
  // Sessions a little longer than the fixture's default: a slow keepalive on a loaded machine
  // would otherwise end the sync's session, a legitimate generation change this test does not want.
  shard = await Shard.create({ prefix: 'onwm', timeouts: { sessionTimeoutMs: 5000, keepaliveIntervalMs: 1000 } });
  ({ primary, sync, async0 } = await shard.waitForChain());
}, 240_000);

afterAll(async () => {
  // Unset when Shard.create() itself failed (it cleans up after itself then).
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
  await shard?.teardown();
}, 60_000);

describe('manatee-adm set-onwm on a real shard', () => {
  it('on: the primary drops its sync at generation+1 and commits alone; off: it picks a sync at the next generation', async () => {
    const g = (await shard.stateOf(primary)).generation;
    await insert('before');

    const on = await adm(['set-onwm', '-m', 'on', '-y'], async0.apiUrl);
    expect({ code: on.code, stderr: on.stderr }).toEqual({ code: 0, stderr: '' });
    expect(on.stdout).toMatch(/the primary drops its sync and asyncs at the next generation/);

    const onwm = await shard.waitFor('the primary in one-node-write mode at generation+1', async () => {
      const s = await shard.statusOf(primary);
      const st = s?.state;
      return st?.oneNodeWriteMode === true && s?.postgres.writable === true ? st : null;
    }, 90_000);
    expect(onwm).toMatchObject({ generation: g + 1, sync: null, async: [], onwmOverride: true });
    expect(onwm.primary.id).toBe(primary.id);
    expect(onwm.deposed).toEqual([]);
    const hist = await adm(['history', '--json', '-n', '3'], primary.apiUrl);
    const entries = JSON.parse(hist.stdout) as { generation: number; summary: string }[];
    expect(entries.find((e) => e.generation === g + 1)?.summary).toBe(`primary (${primary.id}) entered one-node-write mode, dropping ${sync.id}, ${async0.id}`);

    // The former sync is unassigned in ONWM: its sitter stops its PostgreSQL and never takes over.
    // Stop the sitter too: the INSERT below has no standby at all that could acknowledge it.
    await shard.waitFor("the former sync's PostgreSQL stopped", () => Promise.resolve(shard.postgresPid(sync) === null || null), 60_000);
    await shard.stopPeer(sync);
    const settings = await shard.query<{ s: string }>(primary, "SELECT current_setting('synchronous_standby_names') AS s");
    expect(settings[0]?.s).toBe('');
    await insert('alone');
    const rows = await shard.query<{ v: string }>(primary, 'SELECT v FROM onwm_test ORDER BY v');
    expect(rows.map((r) => r.v)).toEqual(['alone', 'before']);
    // Still the same generation: nobody took over while the sync's session ended.
    expect((await shard.stateOf(primary)).generation).toBe(g + 1);

    const off = await adm(['set-onwm', 'off'], primary.apiUrl);
    expect({ code: off.code, stderr: off.stderr }).toEqual({ code: 0, stderr: '' });
    expect(off.stdout).toMatch(/the primary picks a sync at the next generation once another peer is active/);

    // The only other active peer (the former async) becomes the sync; writes wait until it caught up.
    const normal = await shard.waitForTopology({ primary: primary.id, sync: async0.id, async: [] }, 120_000);
    const st: ClusterState = normal.state!;
    expect(st).toMatchObject({ generation: g + 2, onwmOverride: false });
    expect(st.oneNodeWriteMode).toBeUndefined();
    await insert('with a sync');
    const sync2 = await shard.query<{ application_name: string; sync_state: string }>(
      primary,
      'SELECT application_name, sync_state FROM pg_stat_replication',
    );
    expect(sync2).toContainEqual({ application_name: async0.id, sync_state: 'sync' });
    // What the primary committed alone in ONWM is on the new sync too.
    await shard.waitFor('the new sync to replay every row', async () => {
      const r = await shard.query<{ n: string }>(async0, 'SELECT count(*) AS n FROM onwm_test');
      return r[0]?.n === '3' || null;
    }, 60_000);
  }, 300_000);
});
