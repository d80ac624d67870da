// A standby that cannot stream from its active upstream for long (rules/stream-watch.ts): say
// so; an async rebuilds, and so does a sync that could not take over anyway.
import { errorMessage } from '../errors.js';
import type { ClusterState, PeerInfo, TimelineHistory } from '../model/index.js';
import type { DecisionLog } from './decision-log.js';
import { decideStreamStall, StreamWatch, type Decision, type OwnWal } from './rules/index.js';

/** What the watch reads from this peer's PostgreSQL. */
export interface StandbyProbe {
  /** The postmaster runs. */
  readonly running: boolean;
  /** Its WAL receiver streams, and its replayed position; null when it did not answer. */
  receiver(): Promise<{ readonly streaming: boolean; readonly replayLsn: string | null } | null>;
  /** Its replayed and received positions (null when not in recovery). */
  ownWal(): Promise<OwnWal>;
}

/** What the watch asks of the reconciler. */
export interface RebuildRequests {
  requestRebuild(o: { cannotStream: true } | { asSync: { generation: number; upstreamId: string; initWal: string; reason: string; forkLsn?: string; primaryReadOnly?: true } }): void;
}

export class StreamStallWatch {
  private readonly watch: StreamWatch;

  constructor(private readonly o: {
    readonly pg: StandbyProbe;
    readonly reconciler: RebuildRequests;
    /** The peers whose sessions are active, and the committed state. */
    readonly active: () => readonly { readonly id: string }[];
    readonly state: () => ClusterState | null;
    readonly decisions: DecisionLog;
    /** No stream for this long from an active upstream is a stall (10 session timeouts). */
    readonly stallLimitMs: number;
    readonly retrySoon: () => void;
    /**
     * The timeline the upstream (the primary) writes and its history, null when unknown: a sync past
     * initWal whose own history leaves the primary's before its WAL ends diverged.
     */
    readonly primaryHistory?: (upstream: PeerInfo) => Promise<TimelineHistory | null>;
    /** Whether the upstream (the primary) is read-only, null when unknown: it then waits for this sync. */
    readonly primaryReadOnly?: (upstream: PeerInfo) => Promise<boolean | null>;
  }) {
    this.watch = new StreamWatch(o.stallLimitMs);
  }

  async check(d: Decision, nowMs: number): Promise<void> {
    const standby = (d.role === 'sync' || d.role === 'async') && this.o.pg.running;
    const row = standby ? await this.o.pg.receiver() : null;
    const upstream = d.upstream;
    const verdict = this.watch.observe({
      role: d.role,
      upstreamId: upstream?.id ?? null,
      upstreamActive: upstream !== null && this.o.active().some((p) => p.id === upstream.id),
      streaming: row?.streaming ?? null,
      replayLsn: row?.replayLsn ?? null,
      nowMs,
    });
    if (verdict.action === 'none' || upstream === null) return;
    const own = verdict.action === 'report'
      ? await this.o.pg.ownWal().then((w) => ({ ...w, error: null }), (err: unknown) => ({ replayLsn: null, receiveLsn: null, error: errorMessage(err) }))
      : null;
    const state = this.o.state();
    const primaryHistory = verdict.action === 'report' && this.o.primaryHistory !== undefined
      ? await this.o.primaryHistory(upstream).catch(() => null)
      : undefined;
    const primaryReadOnly = verdict.action === 'report' && this.o.primaryReadOnly !== undefined
      ? await this.o.primaryReadOnly(upstream).catch(() => null)
      : undefined;
    const s = decideStreamStall({
      verdict, generation: d.generation, state, own,
      ...(primaryHistory === undefined ? {} : { primaryHistory }),
      ...(primaryReadOnly === undefined ? {} : { primaryReadOnly }),
    });
    const why = `my WAL receiver has not streamed from ${upstream.id} for ${verdict.stalledForMs} ms while its session is active (a diverged timeline, or WAL it no longer has)`;
    const fields = { upstream: upstream.id, stalledForMs: verdict.stalledForMs };
    switch (s.kind) {
      case 'none':
        return;
      case 'streamStalledRebuild':
        this.o.decisions.side({ kind: s.kind, reason: s.reason, generation: d.generation, logDecision: 'stream-stalled-rebuild', level: 'warn', fields, message: `${why}; ${s.reason}` }, nowMs);
        this.o.reconciler.requestRebuild({ cannotStream: true });
        this.o.retrySoon();
        return;
      case 'streamStalled': {
        const initWal = state !== null && d.generation !== null && state.generation === d.generation ? state.initWal : null;
        this.o.decisions.side({
          kind: s.kind, reason: s.reason, generation: d.generation, logDecision: 'stream-stalled', level: 'error',
          fields: { ...fields, replayLsn: own?.replayLsn ?? null, receiveLsn: own?.receiveLsn ?? null, initWal },
          message: `${why}; I am the sync and keep my data (${s.reason}), so only an operator's action or a sync replacement helps`,
        }, nowMs);
        return;
      }
      case 'streamStalledRebuildSync':
        this.o.decisions.side({
          kind: s.kind, reason: s.reason, generation: d.generation, logDecision: 'stream-stalled-rebuild-sync', level: 'warn',
          fields: { ...fields, replayLsn: own?.replayLsn ?? null, receiveLsn: own?.receiveLsn ?? null, initWal: s.initWal },
          message: `${why}; I am the sync and ${s.reason}: rebuilding from it`,
        }, nowMs);
        this.o.reconciler.requestRebuild({
          asSync: {
            generation: s.generation, upstreamId: upstream.id, initWal: s.initWal, reason: s.reason,
            ...(s.forkLsn === undefined ? {} : { forkLsn: s.forkLsn }),
            ...(s.primaryReadOnly === undefined ? {} : { primaryReadOnly: s.primaryReadOnly }),
          },
        });
        this.o.retrySoon();
        return;
    }
  }
}
