// The health check: `SELECT 1` on a fresh connection every intervalMs, bounded by timeoutMs.
// Every check emits `healthy` or `unhealthy` with the latency (and the reason when unhealthy);
// the log gets one line per change of state, not one per check.
import { EventEmitter } from 'node:events';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { errorMessage } from '../errors.js';
import { PgError } from './errors.js';

export interface HealthResult {
  readonly healthy: boolean;
  readonly latencyMs: number;
  /** Why the check failed; null when healthy. */
  readonly reason: string | null;
  readonly at: number; // epoch ms
}

interface HealthEvents {
  healthy: [HealthResult];
  unhealthy: [HealthResult];
}

export interface HealthCheckerOptions {
  /** Runs one check; must reject on failure. Called with the timeout the check has. */
  readonly probe: (timeoutMs: number) => Promise<unknown>;
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  readonly logger?: Logger;
  readonly nowMs?: () => number;
  /** Runs `fn` about every `ms`, returns the stop (the sitter's: from the Raft tick); default a timer of its own. */
  readonly every?: (ms: number, fn: () => void) => () => void;
}

export class PgHealthChecker extends EventEmitter<HealthEvents> {
  private stopTimer: (() => void) | null = null;
  private lastResult: HealthResult | null = null;
  private inFlight = false;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly log: Logger;
  private readonly now: () => number;

  constructor(private readonly opts: HealthCheckerOptions) {
    super();
    this.intervalMs = opts.intervalMs ?? 1000;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.log = (opts.logger ?? silentLogger()).child({ room: 'postgres', part: 'health' });
    this.now = opts.nowMs ?? Date.now;
  }

  get last(): HealthResult | null {
    return this.lastResult;
  }

  start(): void {
    if (this.stopTimer !== null) return;
    const tick = (): void => { void this.tick(); };
    if (this.opts.every !== undefined) {
      this.stopTimer = this.opts.every(this.intervalMs, tick);
    } else {
      const t = setInterval(tick, this.intervalMs);
      this.stopTimer = () => { clearInterval(t); };
    }
    void this.tick();
  }

  stop(): void {
    this.stopTimer?.();
    this.stopTimer = null;
  }

  private async tick(): Promise<void> {
    // A slow check is not stacked with the next one: the timeout reports it.
    if (this.inFlight) return;
    this.inFlight = true;
    try {
      await this.checkOnce();
    } finally {
      this.inFlight = false;
    }
  }

  async checkOnce(): Promise<HealthResult> {
    const started = this.now();
    let reason: string | null = null;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.opts.probe(this.timeoutMs),
        new Promise((_, reject) => {
          timer = setTimeout(() => { reject(new PgError('MANATEE_ERR_PG_QUERY', `health check timed out after ${this.timeoutMs} ms`)); }, this.timeoutMs);
        }),
      ]);
    } catch (err) {
      reason = errorMessage(err);
    } finally {
      clearTimeout(timer);
    }
    const result: HealthResult = { healthy: reason === null, latencyMs: this.now() - started, reason, at: this.now() };
    const prev = this.lastResult;
    this.lastResult = result;
    if (prev?.healthy !== result.healthy) {
      this.log[result.healthy ? 'info' : 'warn']({ decision: result.healthy ? 'healthy' : 'unhealthy', latencyMs: result.latencyMs, reason },
        result.healthy ? 'PostgreSQL is healthy' : 'PostgreSQL is unhealthy');
    }
    this.emit(result.healthy ? 'healthy' : 'unhealthy', result);
    return result;
  }
}
