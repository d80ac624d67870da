// A scheduled rolling restart (manatee-adm restart --at, issue 15): the request waits in the
// cluster state (`restart`); when it is due, the primary's sitter runs it. It first takes the
// request out of the state with a compare-and-set whose history line says what happens: started,
// or skipped with the reason (the shard fails verify then, or the time is long past, e.g. the
// shard had no primary for a while). One sitter wins that write, so the restart runs at most once;
// cancelling (clear-restart) before it is due removes it. It then runs the same RollingRestart as
// manatee-adm restart, through this peer's own API with its admin token, and logs each step.
// It lives in cli (beside the sitter's wiring) because it drives the API as manatee-adm does.
import type { Logger } from '../log.js';
import { errorMessage } from '../errors.js';
import type { ClusterState, PeerId, ScheduledRestart } from '../model/index.js';
import { restartScope } from '../peer/admin.js';
import { unrefTimerEvery, type Every } from '../peer/clock.js';
import type { AdmClient } from './adm/client.js';
import { RollingRestart, shardProblems } from './adm/restart.js';

/** What the runner needs of the store: the local committed state, and a compare-and-set. */
export interface ScheduledRestartStore {
  getState(): { readonly state: ClusterState | null; readonly version: number };
  readState(): Promise<{ readonly state: ClusterState | null; readonly version: number }>;
  putState(state: ClusterState, expectVersion: number, summary: string): Promise<{ readonly version: number }>;
}

export interface ScheduledRestartOptions {
  readonly selfId: PeerId;
  readonly store: ScheduledRestartStore;
  /** A client of this peer's own API, with the admin token. */
  readonly client: () => AdmClient;
  readonly log: Logger;
  readonly now?: () => Date;
  /** How often the state is looked at. Default 1 s. */
  readonly tickMs?: number;
  /** The look's clock (the sitter's: from the Raft tick, see src/peer/clock.ts); default an unref'd timer of its own. */
  readonly every?: Every;
  /** A restart found due later than this after its time is skipped, not run. Default 10 min. */
  readonly lateMsMax?: number;
  /** How long each step of the rolling restart may take to end healthy (RollingRestart's default: 3 min). */
  readonly stepTimeoutMs?: number;
}

/** What GET /status could show; kept for the log and tests. */
export interface ScheduledRestartProgress {
  readonly at: string;
  readonly startedAt: string;
  readonly lastLine: string | null;
  readonly done: boolean;
  readonly error: string | null;
}

export const SCHEDULED_RESTART_LATE_MS_MAX = 600_000;

export class ScheduledRestartRunner {
  private stopTimer: (() => void) | null = null;
  private running: Promise<void> | null = null;
  private progressNow: ScheduledRestartProgress | null = null;
  private readonly now: () => Date;

  constructor(private readonly opts: ScheduledRestartOptions) {
    this.now = opts.now ?? (() => new Date());
  }

  start(): void {
    if (this.stopTimer !== null) return;
    this.stopTimer = (this.opts.every ?? unrefTimerEvery)(this.opts.tickMs ?? 1000, () => { this.tick(); });
  }

  /** Stops looking; a rolling restart under way goes on to its end (or its step deadline). */
  stop(): void {
    this.stopTimer?.();
    this.stopTimer = null;
  }

  get progress(): ScheduledRestartProgress | null {
    return this.progressNow;
  }

  /** Resolves when the run in flight, if any, has ended. */
  async settled(): Promise<void> {
    if (this.running !== null) await this.running;
  }

  tick(): void {
    if (this.running !== null) return;
    const { state } = this.opts.store.getState();
    const req = state?.restart;
    if (state === null || req === undefined || state.primary.id !== this.opts.selfId) return;
    if (this.now().getTime() < Date.parse(req.at)) return;
    this.running = this.run(req).catch((err: unknown) => {
      this.opts.log.error({ decision: 'scheduled-restart-failed', at: req.at, err: errorMessage(err) }, `scheduled restart for ${req.at}: ${errorMessage(err)}`);
    }).finally(() => { this.running = null; });
  }

  /**
   * Takes `req` out of the state with `summary`. False when it is no longer there (cancelled, or
   * another sitter took it) or this peer is no longer the primary: then nothing is run.
   */
  private async take(req: ScheduledRestart, summary: string): Promise<boolean> {
    for (let attempt = 1; attempt <= 5; attempt++) {
      const { state, version } = await this.opts.store.readState();
      if (state?.restart?.at !== req.at || state.primary.id !== this.opts.selfId) return false;
      const { restart: _taken, ...rest } = state;
      try {
        await this.opts.store.putState(rest, version, summary);
        return true;
      } catch (err) {
        if (attempt === 5) throw err;
      }
    }
    return false;
  }

  private async run(req: ScheduledRestart): Promise<void> {
    const log = this.opts.log;
    const now = this.now();
    const scope = restartScope(req);
    const lateMs = now.getTime() - Date.parse(req.at);
    if (lateMs > (this.opts.lateMsMax ?? SCHEDULED_RESTART_LATE_MS_MAX)) {
      const summary = `scheduled restart of ${scope} for ${req.at} skipped: it was found due only at ${now.toISOString()}, more than ${Math.round((this.opts.lateMsMax ?? SCHEDULED_RESTART_LATE_MS_MAX) / 60_000)} min late`;
      if (await this.take(req, summary)) log.warn({ decision: 'scheduled-restart-skipped', at: req.at, lateMs }, summary);
      return;
    }
    const client = this.opts.client();
    const problems = await client.shard().then(shardProblems, (err: unknown) => [`the shard report could not be read: ${errorMessage(err)}`]);
    if (problems.length > 0) {
      const summary = `scheduled restart of ${scope} for ${req.at} skipped: the shard was not healthy at ${now.toISOString()} (${problems.join('; ')})`;
      if (await this.take(req, summary)) log.warn({ decision: 'scheduled-restart-skipped', at: req.at, problems }, summary);
      return;
    }
    const summary = `scheduled restart of ${scope} for ${req.at} started by the primary ${this.opts.selfId}`;
    if (!(await this.take(req, summary))) return;
    log.info({ decision: 'scheduled-restart-started', at: req.at, pending: req.pending, peer: req.peer ?? null }, summary);
    this.progressNow = { at: req.at, startedAt: now.toISOString(), lastLine: null, done: false, error: null };
    const out = (text: string): void => {
      for (const line of text.split('\n').filter((l) => l !== '')) {
        // RollingRestart prefixes each line with the time; the log line has its own.
        const bare = line.replace(/^\S+Z /, '');
        log.info({ decision: 'scheduled-restart-step', at: req.at }, `scheduled restart: ${bare}`);
        if (this.progressNow !== null) this.progressNow = { ...this.progressNow, lastLine: bare };
      }
    };
    try {
      const done = await new RollingRestart(client, { out, now: this.now }, this.opts.stepTimeoutMs).run({ pending: req.pending, peer: req.peer });
      log.info({ decision: 'scheduled-restart-done', at: req.at, restarted: done }, `scheduled restart for ${req.at} done: ${done} peer${done === 1 ? '' : 's'} restarted`);
      this.progressNow = { ...this.progressNow, done: true };
    } catch (err) {
      const message = errorMessage(err);
      log.error({ decision: 'scheduled-restart-stopped', at: req.at, err: message }, `scheduled restart for ${req.at} stopped: ${message}`);
      this.progressNow = { ...this.progressNow, done: true, error: message };
    }
  }
}
