// The timeline picture names each fault by its kind; an overlapping fault by the two kinds it combined.
import { describe, expect, it } from 'vitest';
import { Nemesis, parseFaultKinds } from './nemesis.js';
import { renderTimeline } from './timeline.js';

describe('timeline picture', () => {
  it('labels a single fault by its kind and an overlapping one by both of its kinds', () => {
    const svg = renderTimeline({
      title: 't',
      startMs: 0,
      endMs: 60_000,
      ops: [],
      faults: [
        { seq: 1, kind: 'kill-peer', targets: ['peer1'], startedAtMs: 1000, healedAtMs: 9000, detail: 'SIGKILL' },
        { seq: 2, kind: 'overlap', parts: ['partition-primary', 'pause-long'], targets: ['peer2', 'peer3'], startedAtMs: 20_000, healedAtMs: 40_000, detail: 'both' },
      ],
      samples: [],
      windows: [],
      peers: ['peer1', 'peer2', 'peer3'],
      extraLanes: [{ label: 'register 7', ops: [{ atMs: 30_000, outcome: 'ok' }, { atMs: 31_000, outcome: 'unknown' }] }],
    });
    expect(svg).toContain('#1 kill-peer');
    expect(svg).toContain('>register 7</text>');
    expect(svg).toContain('fill="#ff9f1c"');
    expect(svg).toContain('#2 partition-primary + pause-long');
    expect(svg).toContain('#2 overlap (partition-primary + pause-long) peer2,peer3: both');
  });

  it('overlap is a fault kind of its own, made of two kinds that are not restart-all', () => {
    expect(parseFaultKinds('overlap,kill-peer')).toEqual(['overlap', 'kill-peer']);
    expect(Nemesis.OVERLAPPABLE).not.toContain('restart-all');
    expect(Nemesis.OVERLAPPABLE).not.toContain('overlap');
    expect(Nemesis.OVERLAPPABLE).toContain('partition-primary');
    expect(() => parseFaultKinds('overlap,flood')).toThrow('unknown fault kind "flood"');
    expect(parseFaultKinds('partition-clients')).toEqual(['partition-clients']);
    expect(Nemesis.OVERLAPPABLE).toContain('partition-clients');
  });
});
