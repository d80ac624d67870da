// Progress of a byte stream: percent (capped below 100 until the end, because the total is an
// estimate), rate since the start, and ETA.
import type { RestoreProgress } from '../model/index.js';

export class ByteProgress {
  private bytes = 0;
  private readonly startedMs: number;

  constructor(
    private readonly totalBytes: number | null,
    private readonly nowMs: () => number = Date.now,
  ) {
    this.startedMs = nowMs();
  }

  add(n: number): void {
    this.bytes += n;
  }

  /** A count read from elsewhere (the kernel's, for a stream that no Node code sees); never goes back. */
  set(n: number): void {
    if (n > this.bytes) this.bytes = n;
  }

  get bytesDone(): number {
    return this.bytes;
  }

  snapshot(phase: string, finished = false): RestoreProgress {
    const elapsedSec = (this.nowMs() - this.startedMs) / 1000;
    const rate = elapsedSec > 0 ? this.bytes / elapsedSec : null;
    const total = this.totalBytes !== null && this.totalBytes > 0 ? this.totalBytes : null;
    let percent: number | null = null;
    if (finished) percent = 100;
    else if (total !== null) percent = Math.min(99.9, Math.round((this.bytes / total) * 1000) / 10);
    const eta = finished ? 0 : rate !== null && rate > 0 && total !== null ? Math.max(0, (total - this.bytes) / rate) : null;
    return {
      phase,
      percent,
      bytesDone: this.bytes,
      bytesTotal: total,
      rateBytesPerSec: rate === null ? null : Math.round(rate),
      etaSec: eta === null ? null : Math.round(eta),
    };
  }
}
