// PostgreSQL timelines and their histories. A promotion starts a new timeline; its history file
// (pg_wal/0000000N.history) lists every ancestor timeline and the WAL position where each ended.
// Two servers that share a timeline NUMBER need not share its history: a server that promotes
// without knowing that another already promoted to timeline N+1 picks N+1 too (PostgreSQL chooses
// the newest timeline whose history file it can find, plus one). Only the histories tell the two
// apart: pg_rewind compares them entry by entry (the timeline and where it began), and so does
// historyFork() here.
import { ManateeError } from '../errors.js';
import { formatLsn, isLsn, parseLsn, type Lsn } from './lsn.js';

/** One line of a history file: `timeline` ended at `switchLsn`, where the next timeline began. */
export interface TimelineSwitch {
  readonly timeline: number;
  readonly switchLsn: Lsn;
}

/** A server's timeline and the switches that led to it, oldest first (none on timeline 1). */
export interface TimelineHistory {
  readonly timeline: number;
  readonly switches: readonly TimelineSwitch[];
}

export const ERR_TIMELINE_HISTORY_MALFORMED = 'MANATEE_ERR_PG_TIMELINE_HISTORY_MALFORMED';

function malformed(message: string): ManateeError {
  return new ManateeError(ERR_TIMELINE_HISTORY_MALFORMED, message);
}

/** The history file's name for `timeline` (relative to the data directory), as PostgreSQL names it. */
export function timelineHistoryFile(timeline: number): string {
  return `pg_wal/${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
}

/**
 * Parses the text of `timeline`'s history file ("parentTLI<TAB>switchpoint<TAB>reason" lines;
 * blank lines and # comments skipped). Timeline 1 has no file: pass '' for it. Throws
 * MANATEE_ERR_PG_TIMELINE_HISTORY_MALFORMED naming the line that is wrong.
 */
export function parseTimelineHistory(timeline: number, text: string): TimelineHistory {
  if (!Number.isSafeInteger(timeline) || timeline < 1) throw malformed(`timeline ${String(timeline)} is not a positive integer`);
  const switches: TimelineSwitch[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [tliText, lsnText] = line.split(/\s+/);
    const tli = Number(tliText);
    const where = `timeline ${timeline}'s history, line ${i + 1} (${JSON.stringify(line)})`;
    if (!/^[0-9]+$/.test(tliText ?? '') || !Number.isSafeInteger(tli) || tli < 1) throw malformed(`${where}: expected a timeline number first`);
    if (lsnText === undefined || !isLsn(lsnText)) throw malformed(`${where}: expected a switch point "X/Y" after the timeline`);
    const prev = switches[switches.length - 1];
    if (prev !== undefined && tli <= prev.timeline) throw malformed(`${where}: timeline ${tli} does not follow ${prev.timeline}`);
    if (prev !== undefined && parseLsn(lsnText) < parseLsn(prev.switchLsn)) throw malformed(`${where}: switch point ${lsnText} is before ${prev.switchLsn}`);
    if (tli >= timeline) throw malformed(`${where}: ancestor timeline ${tli} is not older than ${timeline}`);
    switches.push({ timeline: tli, switchLsn: formatLsn(parseLsn(lsnText)) });
  }
  if (timeline > 1 && switches.length === 0) throw malformed(`timeline ${timeline}'s history lists no ancestor`);
  return { timeline, switches };
}

/** Where two histories part. */
export interface TimelineFork {
  /** The last timeline the two share (the same number, begun at the same position). */
  readonly timeline: number;
  /** Where the two part: WAL up to here is common to both; past it, each has its own. */
  readonly lsn: Lsn;
}

interface Span {
  readonly timeline: number;
  readonly begin: bigint;
  /** null: the current timeline, which has not ended. */
  readonly end: bigint | null;
}

function spans(h: TimelineHistory): Span[] {
  const out: Span[] = [];
  let begin = 0n;
  for (const s of h.switches) {
    const end = parseLsn(s.switchLsn);
    out.push({ timeline: s.timeline, begin, end });
    begin = end;
  }
  out.push({ timeline: h.timeline, begin, end: null });
  return out;
}

/**
 * Where histories `a` and `b` part, as pg_rewind's findCommonAncestorTimeline finds it: walk both
 * from the oldest timeline while the timeline and its start agree; the two part at the earlier
 * end of the last one they share. null when neither ends there (one history: the same timeline,
 * begun at the same positions). Position 0/0 on timeline 0 when they share not even the first.
 */
export function historyFork(a: TimelineHistory, b: TimelineHistory): TimelineFork | null {
  const x = spans(a);
  const y = spans(b);
  let i = 0;
  while (i < x.length && i < y.length && x[i]!.timeline === y[i]!.timeline && x[i]!.begin === y[i]!.begin) i++;
  if (i === 0) return { timeline: 0, lsn: '0/0' };
  const p = x[i - 1]!;
  const q = y[i - 1]!;
  if (p.end === null && q.end === null) return null;
  const end = p.end === null ? q.end! : q.end === null ? p.end : p.end < q.end ? p.end : q.end;
  return { timeline: p.timeline, lsn: formatLsn(end) };
}

/** "timeline 3 (from 2 at 0/4C0, from 1 at 0/200)": a history in one phrase for logs. */
export function describeHistory(h: TimelineHistory): string {
  if (h.switches.length === 0) return `timeline ${h.timeline}`;
  const from = [...h.switches].reverse().map((s) => `from ${s.timeline} at ${s.switchLsn}`).join(', ');
  return `timeline ${h.timeline} (${from})`;
}
