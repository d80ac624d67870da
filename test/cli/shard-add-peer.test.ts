// Growing a real shard with manatee-adm: three peers run; `add-peer` makes a fourth one a Raft
// voter; its sitter then starts (its configuration lists all four members) and the primary
// appends it to the async chain. `remove-peer` then takes it out of the Raft group again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { Shard, httpJson } from '../../tools/lib/shard.js';
import type { RaftMembers } from '../../src/api/types.js';


let shard: Shard | null = null;

const adm = (args: string[], url: string) => shard!.adm(args, url);

beforeAll(async () => {
  shard = await Shard.create({ prefix: 'grow', peers: 4, start: false });
  // The first three were there before the fourth: their configurations do not name it.
  for (const p of shard.peers.slice(0, 3)) {
    const config = JSON.parse(await readFile(p.configPath, 'utf8')) as { raft: { members: { id: string }[] } };
    config.raft.members = config.raft.members.filter((m) => m.id !== 'grow4');
    await writeFile(p.configPath, JSON.stringify(config, null, 2));
  }
  for (const p of shard.peers.slice(0, 3)) shard.startSitter(p);
}, 60_000);

afterAll(async () => {
  await shard?.teardown();
}, 60_000);

describe('add-peer and remove-peer on a real shard', () => {
  it('a fourth peer added with add-peer joins Raft, then the async chain; remove-peer takes it out of Raft', async () => {
    const s = shard!;
    const { peer: primary } = await s.waitForPrimaryWritable({ timeoutMs: 180_000 });
    const p4 = s.peer('grow4');
    const add = await adm(['add-peer', 'grow4', `127.0.0.1:${p4.raftPort}`], primary.apiUrl);
    expect({ code: add.code, stderr: add.stderr }).toEqual({ code: 0, stderr: '' });
    expect(add.stdout).toMatch(/^added grow4 \(127\.0\.0\.1:\d+\) to the Raft group as a voter \(voters: .*grow4/);
    s.startSitter(p4);
    const st = await s.waitFor('grow4 in the async chain', async () => {
      const r = await s.statusOf(primary);
      return r?.state?.async.some((a) => a.id === 'grow4') === true ? r.state : null;
    }, 180_000);
    expect(st.async.map((a) => a.id)).toContain('grow4');
    const members = (await httpJson(`${p4.apiUrl}/members`)).body as RaftMembers;
    expect([...members.voters].sort()).toEqual(['grow1', 'grow2', 'grow3', 'grow4']);

    await s.stopPeer(p4);
    const rm = await adm(['remove-peer', 'grow4'], primary.apiUrl);
    expect({ code: rm.code, stderr: rm.stderr }).toEqual({ code: 0, stderr: '' });
    const after = (await httpJson(`${primary.apiUrl}/members`)).body as RaftMembers;
    expect([...after.voters].sort()).toEqual(['grow1', 'grow2', 'grow3']);
  }, 400_000);
});
