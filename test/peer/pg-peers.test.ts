// The peers whose hosts PostgreSQL admits the replication role from: configured members, the peers
// the state names and the peers with a session; and the updater that serializes the changes.
import { describe, expect, it } from 'vitest';
import { peerHostsOf, PgPeerHosts } from '../../src/peer/pg-peers.js';
import { silentLogger } from '../../src/log.js';
import type { PeerInfo } from '../../src/model/index.js';

function p(id: string, host: string): PeerInfo {
  return { id, host, pgUrl: `postgres://${host}:5432/postgres`, apiUrl: `http://${host}:5433` };
}

describe('peerHostsOf', () => {
  it('unites self, the configured members, every place in the state and the active peers, once each', () => {
    const hosts = peerHostsOf({
      self: p('a', '10.0.0.1'),
      memberAddresses: ['10.0.0.1:5434', '10.0.0.2:5434', '[fd00::3]:5434'],
      state: { generation: 2, primary: p('b', '10.0.0.2'), sync: p('c', '10.0.0.3'), async: [p('d', 'db4.example.net')], deposed: [p('e', '10.0.0.5')], initWal: '0/0' },
      active: [p('f', '10.0.0.6'), p('b', '10.0.0.2')],
    });
    expect(hosts).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.5', '10.0.0.6', 'db4.example.net', 'fd00::3']);
  });

  it('before any state: the configured members and self', () => {
    expect(peerHostsOf({ self: p('a', '10.0.0.1'), memberAddresses: ['10.0.0.2:1'], state: null, active: [] })).toEqual(['10.0.0.1', '10.0.0.2']);
  });
});

describe('PgPeerHosts', () => {
  it('runs one update at a time, and a change during an update is applied after it with the newest hosts', async () => {
    const applied: string[][] = [];
    let hosts = ['10.0.0.1'];
    let release: (() => void) | null = null;
    const u = new PgPeerHosts({
      postgres: {
        setPeerHosts: async (h) => {
          applied.push([...h]);
          if (applied.length === 1) await new Promise<void>((r) => { release = r; });
          return true;
        },
      },
      hosts: () => hosts,
      log: silentLogger(),
    });
    u.update();
    hosts = ['10.0.0.1', '10.0.0.2'];
    u.update();
    hosts = ['10.0.0.1', '10.0.0.2', '10.0.0.3'];
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
      postgres: { setPeerHosts: (h) => { seen.push([...h]); return fail ? Promise.reject(new Error('reload failed')) : Promise.resolve(true); } },
      hosts: () => ['10.0.0.9'],
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
