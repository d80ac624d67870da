// A sitter's job that must not run twice at once, asked for by events (a state change, a new
// secret, PostgreSQL started) and, optionally, every interval: a request while a run is in flight
// is remembered and runs once after it, however many came meanwhile (the last one wins, since
// each run reads what is current). The shard settings, the role passwords and pg_hba.conf's peer
// hosts are kept this way.
import { errorMessage } from '../errors.js';
import { unrefTimerEvery, type Every } from './clock.js';

export interface CoalescedJobOptions {
  /** One run. A rejection is handed to `failed`; the job keeps going. */
  readonly run: () => Promise<void>;
  readonly failed: (err: unknown) => void;
  /** With start(): how often the timer asks for a run. None: runs only when asked. */
  readonly intervalMs?: number;
  /** Whether a timer tick asks for a run (default: always). */
  readonly due?: () => boolean;
  /** The interval's clock (default an unref'd timer of its own): see clock.ts everyFrom. */
  readonly every?: Every;
}

export class CoalescedJob {
  private running: Promise<void> | null = null;
  private again = false;
  private stopTimer: (() => void) | null = null;

  constructor(private readonly o: CoalescedJobOptions) {}

  /** Runs now, then every intervalMs (when due). */
  start(): void {
    if (this.stopTimer === null && this.o.intervalMs !== undefined) {
      this.stopTimer = (this.o.every ?? unrefTimerEvery)(this.o.intervalMs, () => { if (this.o.due?.() ?? true) this.request(); });
    }
    this.request();
  }

  stop(): void {
    this.stopTimer?.();
    this.stopTimer = null;
  }

  /** A run now, or right after the one in flight. */
  request(): void {
    if (this.running !== null) {
      this.again = true;
      return;
    }
    this.running = this.o.run().catch((err: unknown) => {
      try {
        this.o.failed(err);
      } catch (e) {
        // A failing report of a failure must not stop the job; say it where it can be seen.
        process.emitWarning(`coalesced job: the failure handler threw: ${errorMessage(e)}`);
      }
    }).finally(() => {
      this.running = null;
      if (this.again) {
        this.again = false;
        this.request();
      }
    });
  }

  /** Resolves once no run is in flight nor asked for (stop, tests). */
  async settled(): Promise<void> {
    while (this.running !== null) await this.running;
  }
}
