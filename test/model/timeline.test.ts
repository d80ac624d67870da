// Timeline histories as PostgreSQL writes them (pg_wal/0000000N.history), and where two part
// (as pg_rewind's findCommonAncestorTimeline finds it): the same timeline number with another
// history is another timeline.
import { describe, expect, it } from 'vitest';
import { hasCode } from '../../src/errors.js';
import { describeHistory, ERR_TIMELINE_HISTORY_MALFORMED, historyFork, parseTimelineHistory, timelineHistoryFile, type TimelineHistory } from '../../src/model/index.js';

const tl = (timeline: number, ...switches: [number, string][]): TimelineHistory => ({ timeline, switches: switches.map(([t, l]) => ({ timeline: t, switchLsn: l })) });

function parseError(timeline: number, text: string): string {
  try {
    parseTimelineHistory(timeline, text);
  } catch (err) {
    expect(hasCode(err, ERR_TIMELINE_HISTORY_MALFORMED)).toBe(true);
    return (err as Error).message;
  }
  throw new Error('parsed');
}

describe('parseTimelineHistory', () => {
  it('reads the lines PostgreSQL writes (parent, switch point, reason), skipping blanks and comments', () => {
    const text = '1\t0/3000158\tno recovery target specified\n\n# a comment\n2\t0/5000060\tno recovery target specified\n';
    expect(parseTimelineHistory(3, text)).toEqual(tl(3, [1, '0/3000158'], [2, '0/5000060']));
    expect(parseTimelineHistory(1, '')).toEqual(tl(1));
    // Ancestors may skip numbers (a timeline that was abandoned), and LSNs are normalised.
    expect(parseTimelineHistory(7, '1\t0/a\n4\t1/00000B0\n')).toEqual(tl(7, [1, '0/A'], [4, '1/B0']));
  });

  it('names the file as PostgreSQL does', () => {
    expect(timelineHistoryFile(3)).toBe('pg_wal/00000003.history');
    expect(timelineHistoryFile(0x1f)).toBe('pg_wal/0000001F.history');
  });

  it('refuses what is not a history, naming the line and what was expected', () => {
    expect(parseError(0, '')).toBe('timeline 0 is not a positive integer');
    expect(parseError(3, 'x\t0/1\n')).toBe('timeline 3\'s history, line 1 ("x\\t0/1"): expected a timeline number first');
    expect(parseError(3, '1\n')).toMatch(/line 1 .*: expected a switch point "X\/Y" after the timeline/);
    expect(parseError(3, '1\t0/5\n1\t0/6\n')).toMatch(/line 2 .*: timeline 1 does not follow 1/);
    expect(parseError(3, '1\t0/5\n2\t0/4\n')).toMatch(/line 2 .*: switch point 0\/4 is before 0\/5/);
    expect(parseError(2, '2\t0/5\n')).toMatch(/ancestor timeline 2 is not older than 2/);
    expect(parseError(2, '# nothing\n')).toBe("timeline 2's history lists no ancestor");
  });
});

describe('historyFork', () => {
  it('is null for one history (the same timeline, begun at the same positions)', () => {
    expect(historyFork(tl(1), tl(1))).toBeNull();
    expect(historyFork(tl(3, [1, '0/1'], [2, '0/5']), tl(3, [1, '0/1'], [2, '0/5']))).toBeNull();
  });

  it('is the switch point where an older timeline was left (an ancestor and a descendant part there)', () => {
    expect(historyFork(tl(2, [1, '0/1']), tl(3, [1, '0/1'], [2, '0/5']))).toEqual({ timeline: 2, lsn: '0/5' });
    expect(historyFork(tl(3, [1, '0/1'], [2, '0/5']), tl(1))).toEqual({ timeline: 1, lsn: '0/1' });
  });

  it('tells the same timeline number with another history apart: the earlier switch of the last shared timeline', () => {
    expect(historyFork(tl(3, [1, '0/280'], [2, '0/4C0']), tl(3, [1, '0/280'], [2, '0/500']))).toEqual({ timeline: 2, lsn: '0/4C0' });
    // Timeline 2 begun elsewhere is another timeline 2: they part where timeline 1 ended first.
    expect(historyFork(tl(3, [1, '0/100'], [2, '0/500']), tl(3, [1, '0/200'], [2, '0/500']))).toEqual({ timeline: 1, lsn: '0/100' });
  });

  it('is 0/0 when not even the first timeline is shared', () => {
    expect(historyFork(tl(2, [1, '0/1']), { timeline: 3, switches: [{ timeline: 2, switchLsn: '0/1' }] })).toEqual({ timeline: 0, lsn: '0/0' });
  });

  it('describes a history in one phrase, newest switch first', () => {
    expect(describeHistory(tl(1))).toBe('timeline 1');
    expect(describeHistory(tl(3, [1, '0/280'], [2, '0/4C0']))).toBe('timeline 3 (from 2 at 0/4C0, from 1 at 0/280)');
  });
});
