// The pure parts of the client: the event-stream parser (chunk boundaries, comments, limits)
// and the topology taken from a cluster state.
import { describe, expect, it } from 'vitest';
import { SseParseError, SseParser } from '../../src/client/sse.js';
import { sameTopology, topologyOf } from '../../src/client/topology.js';
import { connectionOf } from '../../src/client/pool.js';
import type { ClusterState, PeerInfo } from '../../src/model/index.js';

function peer(id: string, port: number): PeerInfo {
  return { id, pgUrl: `postgres://10.0.0.${port % 250}:${port}/db`, apiUrl: `http://10.0.0.1:${port + 1}`, host: '10.0.0.1' };
}

describe('SseParser', () => {
  it('parses events split at any byte, with comments, CRLF line ends and retry advice', () => {
    const text = 'retry: 1000\r\nid: 1\r\nevent: state\r\ndata: {"a":1}\r\n\r\n: keepalive\n\nevent: peers\ndata: line1\ndata: line2\n\ndata: plain\n\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const p = new SseParser(1024);
      const events = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))];
      expect(events).toEqual([
        { event: 'state', data: '{"a":1}', id: '1' },
        { event: 'peers', data: 'line1\nline2', id: '1' },
        { event: 'message', data: 'plain', id: '1' },
      ]);
      expect(p.retryMs).toBe(1000);
    }
  });

  it('refuses a line or an event past its limit instead of buffering it', () => {
    expect(() => new SseParser(16).push('data: ' + 'x'.repeat(100))).toThrow(SseParseError);
    const p = new SseParser(16);
    p.push('data: 0123456789\n');
    expect(() => p.push('data: 0123456789\n')).toThrow(/longer than 16 bytes/);
  });

  it('ignores unknown fields and a blank line with no data', () => {
    expect(new SseParser(100).push('foo: bar\n\n\nevent: x\n\n')).toEqual([]);
  });
});

describe('topologyOf', () => {
  const a = peer('a', 5001);
  const b = peer('b', 5002);
  const c = peer('c', 5003);
  const d = peer('d', 5004);
  it('lists the primary, the sync, then the asyncs in chain order, never a deposed peer', () => {
    const s: ClusterState = { generation: 4, primary: b, sync: c, async: [d, a], deposed: [a], initWal: '0/0' };
    expect(topologyOf(s)).toEqual([b.pgUrl, c.pgUrl, d.pgUrl]);
  });
  it('has the primary alone in one-node-write mode', () => {
    expect(topologyOf({ generation: 1, primary: a, sync: null, async: [], deposed: [], initWal: '0/0', oneNodeWriteMode: true })).toEqual([a.pgUrl]);
  });
  it('compares topologies by content and order', () => {
    expect(sameTopology(['x', 'y'], ['x', 'y'])).toBe(true);
    expect(sameTopology(['x', 'y'], ['y', 'x'])).toBe(false);
    expect(sameTopology(['x'], ['x', 'y'])).toBe(false);
    expect(sameTopology(null, null)).toBe(true);
    expect(sameTopology(null, ['x'])).toBe(false);
  });
});

describe('connectionOf', () => {
  it('takes host, port and database from a pgUrl', () => {
    expect(connectionOf('postgres://10.0.0.2:5433/moray')).toEqual({ host: '10.0.0.2', port: 5433, database: 'moray' });
    expect(connectionOf('postgres://[::1]:6000/postgres')).toEqual({ host: '::1', port: 6000, database: 'postgres' });
    expect(connectionOf('postgres://db.example')).toEqual({ host: 'db.example', port: 5432, database: undefined });
  });
});
