// Hooks, plusmoin's triggers: operator-configured executables that the sitter runs when something
// happens to the shard (the primary or the sync changed, a peer came or went, this peer was
// deposed or rebuilt, the sitter started, and a periodic heartbeat). Each run gets one JSON
// document on stdin: the event, this peer, the committed shard state and the event's details.
//
// A hook is the operator's code, so it must never hold the sitter back: runs are asynchronous,
// each event has its own bounded queue (a full queue drops the newest run with a log line), each
// run has a timeout after which its whole process group is killed, and its output is logged,
// truncated to a bound. Runs of one event are in order (one at a time per event), so that a
// hook sees primary_changed events in the order they were committed.
// Every outcome (ok, failed, timedOut, dropped) is counted per event, and the last failure kept,
// so that an operator sees them in GET /status and /metrics, not only in the logs.
//
// Three parts: this file is the contract (configuration, the document a hook reads, results) and
// detectHookEvents(), which is pure (previous observation + new observation → events);
// hook-runner.ts runs executables; sitter-hooks.ts wires both to what a sitter observes.
import type { ClusterState, HookEvent, HookOutcome, PeerInfo } from '../model/index.js';

/** The `hooks` section of the sitter's configuration (src/peer/config.ts). */
export interface HooksConfig {
  /** Absolute paths of the executables to run for each event (run directly, no shell, no arguments). */
  readonly events: Partial<Readonly<Record<HookEvent, readonly string[]>>>;
  /** A run still going after this long has its process group killed (SIGTERM, then SIGKILL after killGraceMs). */
  readonly timeoutMs: number;
  readonly killGraceMs: number;
  /** Runs of one event waiting behind the running one; one more is dropped with a log line. */
  readonly queueMax: number;
  /** Bytes of each of stdout and stderr kept for the log; the rest is counted, not kept. */
  readonly outputBytesMax: number;
  /** How often the heartbeat event fires. */
  readonly heartbeatIntervalMs: number;
}

export const HOOKS_CONFIG_DEFAULT: HooksConfig = {
  events: {},
  timeoutMs: 10_000,
  killGraceMs: 1000,
  queueMax: 16,
  outputBytesMax: 4096,
  heartbeatIntervalMs: 60_000,
};

/** What every hook reads on stdin. */
export interface HookDocument {
  readonly event: HookEvent;
  /** ISO 8601, when the sitter saw the event. */
  readonly time: string;
  /** This peer. */
  readonly peer: PeerInfo;
  /** This peer's place in the state ('primary', 'sync', 'async', 'deposed', 'unassigned'). */
  readonly role: string;
  /** The committed shard state as this peer has it, with its store version. */
  readonly state: ClusterState | null;
  readonly version: number;
  readonly activePeers: readonly PeerInfo[];
  /** Event-specific: {previous, current} for *_changed, {peer} for peer_up/down, the rebuild's source... */
  readonly details: Readonly<Record<string, unknown>>;
}

/** One event found by detectHookEvents(), before the shared fields are added. */
export interface DetectedEvent {
  readonly event: HookEvent;
  readonly details: Readonly<Record<string, unknown>>;
}

/** What the sitter has observed at one moment: the committed state and the active peers. */
export interface Observation {
  readonly state: ClusterState | null;
  readonly version: number;
  readonly activePeers: readonly PeerInfo[];
}

function sameId(a: PeerInfo | null | undefined, b: PeerInfo | null | undefined): boolean {
  return (a?.id ?? null) === (b?.id ?? null);
}

/**
 * The events between two observations. `previous` null means nothing was observed before (the
 * sitter just started): the first observation is the baseline and yields no events (sitter_up
 * carries it). An observed empty state (no shard yet) is a baseline too, so that the initial
 * setup reports primary_changed and sync_changed.
 */
export function detectHookEvents(previous: Observation | null, next: Observation, selfId: string): DetectedEvent[] {
  if (previous === null) return [];
  const out: DetectedEvent[] = [];
  const before = previous.state;
  const after = next.state;
  if (after !== null && next.version !== previous.version) {
    const generation = after.generation;
    if (!sameId(before?.primary, after.primary)) {
      out.push({ event: 'primary_changed', details: { previous: before?.primary ?? null, current: after.primary, generation } });
    }
    if (before === null || !sameId(before.sync, after.sync)) {
      out.push({ event: 'sync_changed', details: { previous: before?.sync ?? null, current: after.sync, generation } });
    }
    const wasDeposed = before?.deposed.some((p) => p.id === selfId) ?? false;
    if (!wasDeposed && after.deposed.some((p) => p.id === selfId)) {
      out.push({ event: 'deposed', details: { generation, primary: after.primary } });
    }
  }
  const was = new Set(previous.activePeers.map((p) => p.id));
  const now = new Set(next.activePeers.map((p) => p.id));
  for (const p of next.activePeers) if (!was.has(p.id)) out.push({ event: 'peer_up', details: { peer: p } });
  for (const p of previous.activePeers) if (!now.has(p.id)) out.push({ event: 'peer_down', details: { peer: p } });
  return out;
}

/** The outcome of one executable's run. */
export interface HookResult {
  readonly event: HookEvent;
  readonly command: string;
  readonly pid: number | null;
  /** null when it was killed by a signal or could not be started. */
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  /** It could not be started (missing, not executable): the error, else null. */
  readonly spawnError: string | null;
  readonly ok: boolean;
  readonly durationMs: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Bytes written beyond outputBytesMax (not kept). */
  readonly outputBytesDropped: number;
}

export interface HookCounters {
  runs: number;
  failures: number;
  timeouts: number;
  dropped: number;
}

/** Told of every outcome as it happens (ApiMetrics implements it: manatee_hook_runs_total, manatee_hook_duration_seconds). */
export interface HookObserver {
  hookOutcome(event: HookEvent, outcome: HookOutcome, durationMs: number | null): void;
}

/** The outcome of a finished run. */
export function outcomeOf(r: HookResult): 'ok' | 'failed' | 'timedOut' {
  return r.ok ? 'ok' : r.timedOut ? 'timedOut' : 'failed';
}
