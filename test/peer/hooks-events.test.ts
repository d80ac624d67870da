// detectHookEvents(): previous observation + new observation → hook events, for a sequence of
// states as a shard lives them (setup, a new async, sync replacement, takeover, rebuild).
import { describe, expect, it } from 'vitest';
import { detectHookEvents, type Observation } from '../../src/peer/hooks.js';
import type { ClusterState, PeerInfo } from '../../src/model/index.js';

function peer(id: string): PeerInfo {
  return { id, pgUrl: `postgres://127.0.0.1:1/${id}`, apiUrl: `http://127.0.0.1:1/${id}`, host: '127.0.0.1' };
}
const A = peer('a');
const B = peer('b');
const C = peer('c');
const D = peer('d');

function st(generation: number, primary: PeerInfo, sync: PeerInfo | null, async: PeerInfo[], deposed: PeerInfo[] = [], extra: Partial<ClusterState> = {}): ClusterState {
  return { generation, primary, sync, async, deposed, initWal: '0/0', ...extra };
}

/** Events for each step of `steps`, as `event:detail` strings. */
function run(selfId: string, steps: Observation[]): string[][] {
  let prev: Observation | null = null;
  const out: string[][] = [];
  for (const s of steps) {
    out.push(
      detectHookEvents(prev, s, selfId).map((e) => {
        const d = e.details;
        const who = (d['current'] ?? d['peer'] ?? null) as PeerInfo | null;
        return `${e.event}${who !== null ? `:${who.id}` : ''}`;
      }),
    );
    prev = s;
  }
  return out;
}

describe('detectHookEvents', () => {
  it('follows a shard from setup through a takeover, as seen by the peer that gets deposed', () => {
    const steps: Observation[] = [
      { state: null, version: 0, activePeers: [A] },                              // sitter start: baseline
      { state: null, version: 0, activePeers: [A, B] },                           // b's session opens
      { state: st(1, A, B, []), version: 1, activePeers: [A, B] },                // setup
      { state: st(1, A, B, []), version: 1, activePeers: [A, B, C] },             // c's session opens
      { state: st(1, A, B, [C]), version: 2, activePeers: [A, B, C] },            // c appended as async
      { state: st(1, A, B, [C], [], { freeze: { date: 'x', reason: 'y' } }), version: 3, activePeers: [A, B, C] }, // freeze: nothing
      { state: st(1, A, B, [C]), version: 4, activePeers: [A, B, C] },            // unfreeze: nothing
      { state: st(1, A, B, [C]), version: 4, activePeers: [B, C] },               // a's session expires
      { state: st(2, B, C, [], [A]), version: 5, activePeers: [B, C] },           // b takes over, a deposed
      { state: st(2, B, C, [], [A]), version: 5, activePeers: [A, B, C] },        // a is back
      { state: st(2, B, C, [A]), version: 6, activePeers: [A, B, C] },            // a rebuilt, out of deposed, now async
    ];
    expect(run('a', steps)).toEqual([
      [],
      ['peer_up:b'],
      ['primary_changed:a', 'sync_changed:b'],
      ['peer_up:c'],
      [],
      [],
      [],
      ['peer_down:a'],
      ['primary_changed:b', 'sync_changed:c', 'deposed'],
      ['peer_up:a'],
      [],
    ]);
  });

  it('reports a sync replacement without a primary change, and deposed only to the deposed peer', () => {
    const s1 = st(4, A, B, [C, D]);
    const s2 = st(5, A, C, [D]);
    expect(run('c', [
      { state: s1, version: 10, activePeers: [A, B, C, D] },
      { state: s2, version: 11, activePeers: [A, C, D] },
    ])).toEqual([[], ['sync_changed:c', 'peer_down:b']]);
    const s3 = st(6, C, D, [], [A]);
    expect(run('c', [{ state: s2, version: 11, activePeers: [C, D] }, { state: s3, version: 12, activePeers: [C, D] }])).toEqual([[], ['primary_changed:c', 'sync_changed:d']]);
    expect(run('a', [{ state: s2, version: 11, activePeers: [C, D] }, { state: s3, version: 12, activePeers: [C, D] }])[1]).toContain('deposed');
  });

  it('reports ONWM transitions as sync changes to and from null', () => {
    const onwm = st(1, A, null, [], [], { oneNodeWriteMode: true });
    const events = detectHookEvents({ state: onwm, version: 1, activePeers: [A, B] }, { state: st(2, A, B, []), version: 2, activePeers: [A, B] }, 'a');
    expect(events).toEqual([{ event: 'sync_changed', details: { previous: null, current: B, generation: 2 } }]);
    const back = detectHookEvents({ state: st(2, A, B, []), version: 2, activePeers: [A] }, { state: st(3, A, null, [], [], { oneNodeWriteMode: true }), version: 3, activePeers: [A] }, 'a');
    expect(back).toEqual([{ event: 'sync_changed', details: { previous: B, current: null, generation: 3 } }]);
  });

  it('gives the previous and the current peer and the generation in the details', () => {
    const [p] = detectHookEvents({ state: st(1, A, B, [C]), version: 1, activePeers: [A, B, C] }, { state: st(2, B, C, [], [A]), version: 2, activePeers: [A, B, C] }, 'b');
    expect(p).toEqual({ event: 'primary_changed', details: { previous: A, current: B, generation: 2 } });
  });

  it('yields nothing on the first observation and nothing when nothing changed', () => {
    const o = { state: st(1, A, B, [C], [A]), version: 1, activePeers: [A, B, C] };
    expect(detectHookEvents(null, o, 'a')).toEqual([]);
    expect(detectHookEvents(o, { ...o }, 'a')).toEqual([]);
  });
});
