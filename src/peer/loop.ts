// The evaluation loop: one evaluation at a time, woken by state and session changes, by
// PostgreSQL's health flips and exits, and by a timer. A wake-up during an evaluation runs one
// more afterwards. It reports when it last ran, for GET /liveness.
import type { Logger } from '../log.js';
import type { LoopStatus } from '../model/index.js';
import { timerEvery, type Clock, type Every } from './clock.js';

export const EVALUATE_INTERVAL_MS = 1000;
export const RETRY_SOON_MS = 200;

export class EvaluationLoop {
  private evaluating = false;
  private dirty = false;
  private stopping = false;
  private stopTimer: (() => void) | null = null;
  private soonTimer: NodeJS.Timeout | null = null;
  private lastError: string | null = null;
  /** When an evaluation last ended, and when the running one began. */
  private lastEvaluatedAtMs: number | null = null;
  private evaluatingSinceMs: number | null = null;

  constructor(private readonly o: {
    readonly evaluate: () => Promise<void>;
    readonly clock: Clock;
    readonly log: Logger;
    /** The periodic evaluation's clock (default a timer of its own): see clock.ts everyFrom. */
    readonly every?: Every;
  }) {}

  start(): void {
    this.stopTimer ??= (this.o.every ?? timerEvery)(EVALUATE_INTERVAL_MS, () => { this.kick(); });
    this.kick();
  }

  /** Stops waking up, and waits (at most `timeoutMs`) for a running evaluation to end. */
  async stop(timeoutMs = 60_000): Promise<void> {
    this.stopping = true;
    this.stopTimer?.();
    this.stopTimer = null;
    if (this.soonTimer !== null) clearTimeout(this.soonTimer);
    const deadline = Date.now() + timeoutMs;
    while (this.evaluating && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  }

  kick(): void {
    if (this.stopping) return;
    this.dirty = true;
    if (!this.evaluating) void this.run();
  }

  /** Evaluates again shortly (a write lost a race, no leader yet, a step to retry). */
  kickSoon(): void {
    if (this.soonTimer !== null || this.stopping) return;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = null;
      this.kick();
    }, RETRY_SOON_MS);
  }

  /**
   * For GET /status: when an evaluation last ended and since when one runs, its last progress
   * (`lastActivityMs`: a restore's, which may run within one evaluation for long), and after how
   * long without progress it counts as stuck.
   */
  status(lastActivityMs: number, stuckAfterMs: number): LoopStatus {
    const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
    const since = this.evaluatingSinceMs;
    return {
      lastEvaluatedAt: iso(this.lastEvaluatedAtMs),
      evaluatingSince: iso(since),
      lastProgressAt: since === null ? null : iso(Math.max(since, lastActivityMs)),
      stuckAfterMs,
    };
  }

  private async run(): Promise<void> {
    this.evaluating = true;
    try {
      while (this.dirty && !this.stopping) {
        this.dirty = false;
        this.evaluatingSinceMs = this.o.clock.nowMs();
        try {
          await this.o.evaluate();
          this.lastError = null;
        } catch (err) {
          const message = err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err);
          if (message !== this.lastError) this.o.log.error({ decision: 'error', err: message }, `evaluation failed: ${message}`);
          this.lastError = message;
        }
        // An evaluation that failed still ran: the loop is alive (GET /liveness).
        this.evaluatingSinceMs = null;
        this.lastEvaluatedAtMs = this.o.clock.nowMs();
      }
    } finally {
      this.evaluating = false;
    }
  }
}
