// The peers whose hosts PostgreSQL admits the replication role from: configured members, the peers
// the state names and the peers with a session; and the updater that serializes the changes.
import { describe, expect, it } from 'vitest';
import { pgPeersOf, PgPeerHosts } from '../../src/peer/pg-peers.js';
import { silentLogger } from '../../src/log.js';
import type { PeerInfo } from '../../src/model/index.js';

function p(id: string, host: string): PeerInfo {
  return { id, host, pgUrl: `postgres://${host}:5432/postgres`, apiUrl: `http://${host}:5433` };
}

describe('pgPeersOf', () => {
  it('unites self, the configured members, every place in the state and the active peers: each (id, host) once, by id', () => {
    const peers = pgPeersOf({
      self: p('a', '10.0.0.1'),
      members: [{ id: 'a', address: '10.0.0.1:5434' }, { id: 'b', address: '10.0.0.2:5434' }, { id: 'g', address: '[fd00::3]:5434' }],
      state: { generation: 2, primary: p('b', '10.0.0.2'), sync: p('c', '10.0.0.3'), async: [p('d', 'db4.example.net')], deposed: [p('e', '10.0.0.5')], initWal: '0/0' },
      active: [p('f', '10.0.0.6'), p('b', '10.0.0.2')],
    });
    expect(peers.map((x) => `${x.id}@${x.host}`)).toEqual(['a@10.0.0.1', 'b@10.0.0.2', 'c@10.0.0.3', 'd@db4.example.net', 'e@10.0.0.5', 'f@10.0.0.6', 'g@fd00::3']);
  });

  it('keeps both hosts of a peer that moved (the state has the old one, its session the new one)', () => {
    const peers = pgPeersOf({ self: p('a', '10.0.0.1'), members: [], state: null, active: [p('b', '10.0.0.2'), p('b', '10.0.0.7')] });
    expect(peers.map((x) => `${x.id}@${x.host}`)).toEqual(['a@10.0.0.1', 'b@10.0.0.2', 'b@10.0.0.7']);
  });

  it('before any state: the configured members and self', () => {
    expect(pgPeersOf({ self: p('a', '10.0.0.1'), members: [{ id: 'b', address: '10.0.0.2:1' }], state: null, active: [] }))
      .toEqual([{ id: 'a', host: '10.0.0.1' }, { id: 'b', host: '10.0.0.2' }]);
  });
});

describe('PgPeerHosts', () => {
  it('runs one update at a time, and a change during an update is applied after it with the newest peers', async () => {
    const applied: string[][] = [];
    const at = (...hosts: string[]) => hosts.map((host, i) => ({ id: `p${i}`, host }));
    let hosts = at('10.0.0.1');
    let release: (() => void) | null = null;
    const u = new PgPeerHosts({
      postgres: {
        setPeers: async (peers) => {
          applied.push(peers.map((x) => x.host));
          if (applied.length === 1) await new Promise<void>((r) => { release = r; });
          return true;
        },
      },
      peers: () => hosts,
      log: silentLogger(),
    });
    u.update();
    hosts = at('10.0.0.1', '10.0.0.2');
    u.update();
    hosts = at('10.0.0.1', '10.0.0.2', '10.0.0.3');
    u.update();
    expect(applied).toEqual([['10.0.0.1']]);
    release!();
    await u.settled();
    expect(applied).toEqual([['10.0.0.1'], ['10.0.0.1', '10.0.0.2', '10.0.0.3']]);
  });

  it('a failed update does not stop the next one', async () => {
    let fail = true;
    const seen: string[][] = [];
    const u = new PgPeerHosts({
      postgres: { setPeers: (peers) => { seen.push(peers.map((x) => x.host)); return fail ? Promise.reject(new Error('reload failed')) : Promise.resolve(true); } },
      peers: () => [{ id: 'z', host: '10.0.0.9' }],
      log: silentLogger(),
    });
    u.update();
    await u.settled();
    fail = false;
    u.update();
    await u.settled();
    expect(seen).toHaveLength(2);
  });
});
