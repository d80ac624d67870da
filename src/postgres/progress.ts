// Parsing the `--progress` output of pg_basebackup ("12345/67890 kB (18%), 0/1 tablespace") and
// pg_rewind ("12345/67890 kB (18%) copied") into bytes, percent, rate and ETA.

export interface CopyProgress {
  readonly percent: number | null;
  readonly bytesDone: number;
  readonly bytesTotal: number | null;
  readonly rateBytesPerSec: number | null;
  readonly etaSec: number | null;
}

const PROGRESS_RE = /(\d+)\/(\d+) kB \((\d+)%\)/;

/** One progress line, or null if the line is something else. */
export function parseProgressLine(line: string): { doneKb: number; totalKb: number; percent: number } | null {
  const m = PROGRESS_RE.exec(line);
  if (m === null) return null;
  return { doneKb: Number(m[1]), totalKb: Number(m[2]), percent: Number(m[3]) };
}

/** Turns successive progress lines into CopyProgress with a rate since the start. */
export class ProgressTracker {
  private readonly startedMs: number;
  private last: CopyProgress | null = null;

  constructor(private readonly nowMs: () => number = Date.now) {
    this.startedMs = nowMs();
  }

  /** Returns the new progress, or null if the line is not a progress line. */
  feed(line: string): CopyProgress | null {
    const p = parseProgressLine(line);
    if (p === null) return null;
    const bytesDone = p.doneKb * 1024;
    const bytesTotal = p.totalKb * 1024;
    const elapsedSec = (this.nowMs() - this.startedMs) / 1000;
    const rate = elapsedSec > 0 ? bytesDone / elapsedSec : null;
    const eta = rate !== null && rate > 0 ? Math.max(0, (bytesTotal - bytesDone) / rate) : null;
    // pg_basebackup's total is an estimate: done can pass it, and its percent stops at 100.
    this.last = {
      percent: Math.min(100, p.percent),
      bytesDone,
      bytesTotal,
      rateBytesPerSec: rate === null ? null : Math.round(rate),
      etaSec: eta === null ? null : Math.round(eta),
    };
    return this.last;
  }

  get latest(): CopyProgress | null {
    return this.last;
  }
}

/**
 * Split a stream of chunks into lines on \n or \r (progress lines end in \r on a terminal).
 * Bounded: a line longer than maxLineBytes is cut.
 */
export function lineSplitter(onLine: (line: string) => void, maxLineBytes = 4096): (chunk: Buffer | string) => void {
  let buf = '';
  return (chunk) => {
    buf += chunk.toString();
    const parts = buf.split(/\r\n|\r|\n/);
    buf = parts.pop() ?? '';
    if (buf.length > maxLineBytes) buf = buf.slice(0, maxLineBytes);
    for (const part of parts) if (part.length > 0) onLine(part.slice(0, maxLineBytes));
  };
}

/** The last `max` lines seen, for error messages. */
export class LineRing {
  private readonly lines: string[] = [];
  constructor(private readonly max = 40) {}
  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.shift();
  }
  text(): string {
    return this.lines.join('\n');
  }
}
