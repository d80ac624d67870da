// One kind of log line that a flood would repeat once per socket (an unauthenticated socket that
// never says hello, a TLS handshake that fails): the first line of a quiet spell is written at
// once, the ones that follow within intervalMs are counted, and one line at the end of the
// interval says how many there were (with the last one's fields). So a flood of thousands of
// sockets writes a line every intervalMs, a single failure is still logged at once, and no count
// is lost.
import type { Logger } from '../../log.js';
import { RaftConfigError } from '../errors.js';

export interface ThrottledLogOptions {
  readonly log: Logger;
  /** The message of every line of this kind. */
  readonly msg: string;
  /** At most one line per this many ms after the first. */
  readonly intervalMs: number;
  /** Monotonic milliseconds (performance.now in production; a test's clock). */
  readonly nowMs: () => number;
}

export class ThrottledLog {
  /** Occurrences since the last line written. */
  private held = 0;
  private heldFields: Record<string, unknown> = {};
  private total = 0;
  private lastLineAtMs = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: ThrottledLogOptions) {
    if (!(opts.intervalMs > 0)) throw new RaftConfigError(`intervalMs must be above 0, got ${opts.intervalMs}`);
  }

  /** Every occurrence so far, written or held. */
  get count(): number {
    return this.total;
  }

  note(fields: Record<string, unknown>): void {
    this.total++;
    const now = this.opts.nowMs();
    if (this.timer === null && now - this.lastLineAtMs >= this.opts.intervalMs) {
      this.write(fields, 1, now);
      return;
    }
    this.held++;
    this.heldFields = fields;
    if (this.timer !== null) return;
    this.timer = setTimeout(() => { this.flush(); }, Math.max(0, this.lastLineAtMs + this.opts.intervalMs - now));
    this.timer.unref();
  }

  /** Writes the line for what is held now (a closing transport calls it, so that no count is lost). */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.held === 0) return;
    const held = this.held;
    this.held = 0;
    this.write(this.heldFields, held, this.opts.nowMs());
  }

  private write(fields: Record<string, unknown>, count: number, now: number): void {
    this.lastLineAtMs = now;
    this.opts.log.warn({ ...fields, count, countTotal: this.total }, count === 1 ? this.opts.msg : `${this.opts.msg}: ${count} since the last line`);
  }
}
