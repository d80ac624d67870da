// The sitter's side of the hooks (hooks.ts): remembers the last observation, turns each new one
// into events for the runner (hook-runner.ts), and fires sitter_up, heartbeat and rebuild_done.
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { HookEvent, HooksStatus, PeerInfo } from '../model/index.js';
import type { HookRunner } from './hook-runner.js';
import { detectHookEvents, type Observation } from './hooks.js';

export interface SitterHooksOptions {
  readonly runner: HookRunner;
  readonly self: PeerInfo;
  /** What the sitter sees now. */
  readonly observe: () => Observation & { readonly role: string };
  readonly heartbeatIntervalMs: number;
  readonly log: Logger;
  /** Milliseconds since the epoch; default Date.now. */
  readonly now?: () => number;
}

/**
 * The sitter's side: remembers the last observation, turns each new one into events, and fires
 * sitter_up, heartbeat and rebuild_done. Every method returns at once.
 */
export class SitterHooks {
  private last: Observation | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly o: SitterHooksOptions) {}

  start(): void {
    const now = this.o.observe();
    this.last = now;
    this.fire('sitter_up', {}, now);
    this.timer = setInterval(() => { this.fire('heartbeat', {}, this.o.observe()); }, this.o.heartbeatIntervalMs);
    this.timer.unref();
  }

  /** Call on each committed state change and each change of the active peers. */
  changed(): void {
    if (this.last === null) return;
    const now = this.o.observe();
    const events = detectHookEvents(this.last, now, this.o.self.id);
    this.last = now;
    for (const e of events) this.fire(e.event, e.details, now);
  }

  /** The runner's counts and last failure (GET /status). */
  status(): HooksStatus {
    return this.o.runner.status();
  }

  rebuildDone(details: Readonly<Record<string, unknown>>): void {
    this.fire('rebuild_done', details, this.o.observe());
  }

  async stop(graceMs?: number): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.o.runner.stop(graceMs);
  }

  private fire(event: HookEvent, details: Readonly<Record<string, unknown>>, now: Observation & { readonly role: string }): void {
    if (!this.o.runner.has(event)) return;
    try {
      this.o.runner.submit({
        event,
        time: new Date((this.o.now ?? Date.now)()).toISOString(),
        peer: this.o.self,
        role: now.role,
        state: now.state,
        version: now.version,
        activePeers: now.activePeers,
        details,
      });
    } catch (err) {
      // Hooks never break the sitter.
      this.o.log.error({ err: errorMessage(err), event }, 'queuing a hook run failed; ignored');
    }
  }
}
