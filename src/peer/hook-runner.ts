// Runs the operators' hook executables (the contract is hooks.ts): one bounded queue per event,
// runs of one event in order, a timeout after which the run's whole process group is killed,
// output logged and truncated to a bound, every outcome counted and the last failure kept.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { HOOK_EVENTS, type HookEvent, type HookFailure, type HookOutcome, type HookOutcomeCounts, type HooksStatus } from '../model/index.js';
import { outcomeOf, type HookCounters, type HookDocument, type HookObserver, type HookResult, type HooksConfig } from './hooks.js';

interface Job {
  readonly doc: HookDocument;
}

interface EventQueue {
  running: boolean;
  readonly waiting: Job[];
}

/** A bounded buffer: the first `max` bytes, and a count of the rest. */
class Capture {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  dropped = 0;
  constructor(private readonly max: number) {}
  add(chunk: Buffer): void {
    const room = this.max - this.kept;
    if (room > 0) {
      const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
      this.chunks.push(part);
      this.kept += part.length;
    }
    this.dropped += Math.max(0, chunk.length - Math.max(0, room));
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

export interface HookRunnerOptions {
  readonly config: HooksConfig;
  readonly log: Logger;
  /** Told of each outcome (metrics); its errors are logged and ignored. */
  readonly observer?: HookObserver;
  /** Milliseconds since the epoch, for lastFailure.at; default Date.now. */
  readonly now?: () => number;
}

/**
 * Runs the configured executables for an event. submit() never throws and never waits; 'result'
 * is emitted after each run, 'dropped' when a queue was full, 'idle' when nothing runs or waits.
 */
/** What a hook inherits from the sitter's environment: the basics a program needs, nothing else. */
const HOOK_ENV_KEPT = ['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'LANG', 'TZ', 'TMPDIR'] as const;

/**
 * A hook's environment: the sitter's PATH, HOME, locale and the like, and MANATEE_HOOK_EVENT.
 * Everything else is left out (a MANATEE_ADMIN_TOKEN, PGPASSWORD, cloud credentials the sitter was
 * started with...): hooks are the operator's scripts, often calling out to other systems, and the
 * document on stdin says all they need to know.
 */
export function hookEnv(from: NodeJS.ProcessEnv, event: HookEvent): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(from)) {
    if (v !== undefined && ((HOOK_ENV_KEPT as readonly string[]).includes(k) || k.startsWith('LC_'))) env[k] = v;
  }
  env['PATH'] ??= '/usr/local/bin:/usr/bin:/bin';
  env['MANATEE_HOOK_EVENT'] = event;
  return env;
}

export class HookRunner extends EventEmitter<{ result: [HookResult]; dropped: [HookEvent]; idle: [] }> {
  readonly counters: HookCounters = { runs: 0, failures: 0, timeouts: 0, dropped: 0 };
  private readonly queues = new Map<HookEvent, EventQueue>();
  private readonly running = new Set<ChildProcess>();
  private stopped = false;
  private readonly config: HooksConfig;
  private readonly log: Logger;
  private readonly observer: HookObserver | null;
  private readonly now: () => number;
  /** Keyed by configured events only: HOOK_EVENTS bounds it. */
  private readonly outcomes = new Map<HookEvent, HookOutcomeCounts>();
  private lastFailure: HookFailure | null = null;

  constructor(opts: HookRunnerOptions) {
    super();
    this.config = opts.config;
    this.log = opts.log.child({ room: 'hooks' });
    this.observer = opts.observer ?? null;
    this.now = opts.now ?? Date.now;
    for (const e of HOOK_EVENTS) if (this.has(e)) this.outcomes.set(e, { ok: 0, failed: 0, timedOut: 0, dropped: 0 });
  }

  /** Counts per configured event and outcome, what runs and waits now, and the last failure. */
  status(): HooksStatus {
    const events: Partial<Record<HookEvent, HookOutcomeCounts>> = {};
    for (const [e, c] of this.outcomes) events[e] = { ...c };
    let queued = 0;
    for (const q of this.queues.values()) queued += q.waiting.length;
    return { events, running: this.running.size, queued, lastFailure: this.lastFailure };
  }

  /** The configured events (each has a counts entry from the start, so that metrics show zeros before the first run). */
  configuredEvents(): HookEvent[] {
    return [...this.outcomes.keys()];
  }

  private count(event: HookEvent, outcome: HookOutcome, durationMs: number | null): void {
    const c = this.outcomes.get(event);
    if (c !== undefined) c[outcome] += 1;
    if (this.observer === null) return;
    try {
      this.observer.hookOutcome(event, outcome, durationMs);
    } catch (err) {
      // Counting is not worth breaking the queue for.
      this.log.error({ err: errorMessage(err), event, outcome }, 'a hook outcome observer threw; ignored');
    }
  }

  /** Whether any executable is configured for `event` (the caller may skip building the document). */
  has(event: HookEvent): boolean {
    return (this.config.events[event]?.length ?? 0) > 0;
  }

  /** Queues the runs of `doc.event`'s executables. Returns false when nothing was queued (none configured, stopped, or the queue was full). */
  submit(doc: HookDocument): boolean {
    return this.enqueue(doc);
  }

  /** Nothing running or waiting. */
  get idle(): boolean {
    for (const q of this.queues.values()) if (q.running || q.waiting.length > 0) return false;
    return true;
  }

  /** Resolves once nothing runs or waits. */
  async whenIdle(): Promise<void> {
    if (this.idle) return;
    await new Promise<void>((resolve) => this.once('idle', () => { resolve(); }));
  }

  /**
   * Stops accepting runs, forgets waiting ones, and gives running ones `graceMs` before their
   * process groups are killed. Resolves when every run has ended.
   */
  async stop(graceMs = 2000): Promise<void> {
    this.stopped = true;
    let forgotten = 0;
    for (const q of this.queues.values()) {
      forgotten += q.waiting.length;
      for (const job of q.waiting) this.count(job.doc.event, 'dropped', null);
      q.waiting.length = 0;
    }
    if (forgotten > 0) this.log.info({ hooks: 'stop', forgotten }, `stopping: ${forgotten} queued hook runs not started`);
    if (this.idle) return;
    const done = this.whenIdle();
    const timer = setTimeout(() => {
      for (const child of this.running) killGroup(child, 'SIGKILL');
    }, graceMs);
    await done;
    clearTimeout(timer);
  }

  private enqueue(doc: HookDocument): boolean {
    if (this.stopped || !this.has(doc.event)) return false;
    let q = this.queues.get(doc.event);
    if (q === undefined) {
      q = { running: false, waiting: [] };
      this.queues.set(doc.event, q);
    }
    if (q.waiting.length >= this.config.queueMax) {
      this.counters.dropped += 1;
      this.count(doc.event, 'dropped', null);
      this.log.warn({ hooks: 'dropped', event: doc.event, queued: q.waiting.length, queueMax: this.config.queueMax }, `hook run for ${doc.event} dropped: ${q.waiting.length} runs already wait (limit ${this.config.queueMax})`);
      this.emit('dropped', doc.event);
      return false;
    }
    q.waiting.push({ doc });
    if (!q.running) void this.drain(q);
    return true;
  }

  private async drain(q: EventQueue): Promise<void> {
    q.running = true;
    try {
      for (let job = q.waiting.shift(); job !== undefined; job = q.waiting.shift()) {
        const commands = this.config.events[job.doc.event] ?? [];
        const input = `${JSON.stringify(job.doc)}\n`;
        const results = await Promise.all(commands.map((c) => this.runOne(job.doc.event, c, input)));
        for (const r of results) this.report(r);
      }
    } finally {
      q.running = false;
      if (this.idle) this.emit('idle');
    }
  }

  private report(r: HookResult): void {
    this.counters.runs += 1;
    if (r.timedOut) this.counters.timeouts += 1;
    if (!r.ok) this.counters.failures += 1;
    const fields = {
      hooks: r.ok ? 'ok' : 'failed',
      event: r.event,
      command: r.command,
      pid: r.pid,
      exitCode: r.exitCode,
      signal: r.signal,
      timedOut: r.timedOut,
      durationMs: r.durationMs,
      stdout: r.stdout,
      stderr: r.stderr,
      outputBytesDropped: r.outputBytesDropped,
    };
    const outcome = outcomeOf(r);
    if (outcome === 'ok') {
      this.log.info(fields, `hook ${r.command} for ${r.event} succeeded in ${r.durationMs} ms`);
    } else {
      const why = r.spawnError !== null
        ? `could not start: ${r.spawnError}`
        : r.timedOut
          ? `timed out after ${this.config.timeoutMs} ms and was killed`
          : r.signal !== null
            ? `was killed by ${r.signal}`
            : `exited with status ${r.exitCode ?? '?'}`;
      this.lastFailure = {
        event: r.event,
        command: r.command,
        at: new Date(this.now()).toISOString(),
        outcome,
        reason: why,
        exitCode: r.exitCode,
        signal: r.signal,
        durationMs: r.durationMs,
      };
      this.log.warn(fields, `hook ${r.command} for ${r.event} ${why}`);
    }
    this.count(r.event, outcome, r.durationMs);
    try {
      this.emit('result', r);
    } catch (err) {
      // A listener's bug must not break the queue.
      this.log.error({ err: errorMessage(err) }, 'a hook result listener threw; ignored');
    }
  }

  private runOne(event: HookEvent, command: string, input: string): Promise<HookResult> {
    const started = Date.now();
    const stdout = new Capture(this.config.outputBytesMax);
    const stderr = new Capture(this.config.outputBytesMax);
    return new Promise<HookResult>((resolve) => {
      // detached: the hook leads its own process group, so that a timeout kills what it started too.
      const child = spawn(command, [], { detached: true, stdio: ['pipe', 'pipe', 'pipe'], env: hookEnv(process.env, event) });
      let timedOut = false;
      let spawnError: string | null = null;
      let settled = false;
      const finish = (exitCode: number | null, signal: string | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearTimeout(killTimer);
        this.running.delete(child);
        const ok = spawnError === null && !timedOut && exitCode === 0;
        resolve({
          event,
          command,
          pid: child.pid ?? null,
          exitCode,
          signal,
          timedOut,
          spawnError,
          ok,
          durationMs: Date.now() - started,
          stdout: stdout.text(),
          stderr: stderr.text(),
          outputBytesDropped: stdout.dropped + stderr.dropped,
        });
      };
      let killTimer: NodeJS.Timeout | undefined;
      this.running.add(child);
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup(child, 'SIGTERM');
        killTimer = setTimeout(() => { killGroup(child, 'SIGKILL'); }, this.config.killGraceMs);
      }, this.config.timeoutMs);
      child.stdout.on('data', (c: Buffer) => { stdout.add(c); });
      child.stderr.on('data', (c: Buffer) => { stderr.add(c); });
      // A hook that does not read its stdin (or exits first) breaks the pipe: not an error of ours.
      child.stdin.on('error', () => undefined);
      child.on('error', (err) => {
        spawnError = err.message;
        finish(null, null);
      });
      // 'close' waits for the pipes, which a grandchild may hold open after the hook exits;
      // 'exit' is the hook itself. Output that arrives after 'exit' is not waited for.
      child.on('exit', (code, signal) => { finish(code, signal); });
      child.stdin.end(input);
    });
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  const pid = child.pid;
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is gone already.
  }
}
