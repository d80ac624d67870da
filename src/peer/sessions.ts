// This peer's session: open while this peer can serve (the rule is rules/session.ts). A peer
// whose PostgreSQL has been unhealthy for pgUnhealthyTimeoutMs while its role needs it closes its
// session, so that a hung primary fails over (Joyent's Manatee never did); it reopens once healthy.
// A primary that closed it reopens only after its sync had that long again to take over; then it
// renews its lease and restarts PostgreSQL itself (nobody else can make the shard writable).
import type { Logger } from '../log.js';
import { errorMessage } from '../errors.js';
import type { PeerInfo, PeerTags } from '../model/index.js';
import type { Clock } from './clock.js';
import type { DecisionLog } from './decision-log.js';
import { decideSession } from './rules/index.js';

/** What the keeper needs from the cluster store. */
export interface SessionStore {
  session(): unknown;
  openSession(peer: PeerInfo, tags?: PeerTags): Promise<unknown>;
  closeSession(): Promise<unknown>;
}

export interface SessionKeeperOptions {
  readonly self: PeerInfo;
  /** This peer's tags (its configuration's), carried in its session. */
  readonly tags?: PeerTags;
  readonly store: SessionStore;
  /** How long PostgreSQL has been unhealthy while its role needs it to run (0 when healthy or not needed). */
  readonly unhealthyForMs: (nowMs: number) => number;
  readonly unhealthyTimeoutMs: number;
  readonly decisions: DecisionLog;
  readonly clock: Clock;
  readonly log: Logger;
  /** Try again soon (no leader yet to open the session with). */
  readonly retrySoon: () => void;
}

export class SessionKeeper {
  private closedForHealth = false;
  /** When this peer closed its session for health as the primary (null: it did not, or reopened since). */
  private closedAsPrimaryAtMs: number | null = null;
  /** Closed because this primary's data is gone: it stays closed while this peer is the primary. */
  private closedForLostData = false;
  /** The last wait logged (one line per wait, not one per evaluation). */
  private loggedWait: string | null = null;

  constructor(private readonly o: SessionKeeperOptions) {}

  async keep(): Promise<void> {
    const nowMs = this.o.clock.nowMs();
    const unhealthyForMs = this.o.unhealthyForMs(nowMs);
    const role = this.o.decisions.last?.role;
    if (this.closedForLostData && role !== 'primary') this.closedForLostData = false;
    const d = decideSession({
      open: this.o.store.session() !== null,
      closedForHealth: this.closedForHealth,
      unhealthyForMs,
      unhealthyTimeoutMs: this.o.unhealthyTimeoutMs,
      closedAsPrimaryForMs: this.closedAsPrimaryAtMs === null ? null : Math.max(0, nowMs - this.closedAsPrimaryAtMs),
      lostDataAsPrimary: this.closedForLostData,
    });
    const generation = this.o.decisions.last?.generation ?? null;
    if (d.kind === 'closeSession') {
      this.o.decisions.side({
        kind: d.kind, reason: d.reason, generation, logDecision: 'closeSession', level: 'warn',
        fields: { role }, message: `closing this peer's session: ${d.reason}`,
      }, nowMs);
      // Set first: if closeSession throws (no leader), the flag still keeps the next evaluation
      // from reopening the session while PostgreSQL is hung (flapping).
      this.closedForHealth = true;
      this.closedAsPrimaryAtMs = role === 'primary' ? nowMs : null;
      await this.o.store.closeSession();
      return;
    }
    if (d.kind === 'waitForTakeover' || d.kind === 'waitForHealth') {
      // One line when the wait begins (its reason counts down; the kind does not change).
      if (this.loggedWait !== d.kind) this.o.log.info({ decision: d.kind, reason: d.reason, generation }, `not reopening this peer's session: ${d.reason}`);
      this.loggedWait = d.kind;
      return;
    }
    this.loggedWait = null;
    if (d.kind !== 'openSession') return;
    try {
      await this.o.store.openSession(this.o.self, this.o.tags);
      this.closedForHealth = false;
      this.closedAsPrimaryAtMs = null;
      this.o.decisions.side({ kind: d.kind, reason: d.reason, generation, logDecision: 'openSession', level: 'info', message: `opened this peer's session: ${d.reason}` }, nowMs);
    } catch (err) {
      // No leader yet (start-up, election): the loop tries again.
      this.o.log.debug({ err: errorMessage(err) }, 'could not open the session yet');
      this.o.retrySoon();
    }
  }

  /**
   * A primary that lost its data must not serve an empty database: give up the session so that
   * the sync (which has the data) takes over. It stays closed while the role is primary.
   */
  async closeForLostData(): Promise<void> {
    this.closedForLostData = true;
    if (this.o.store.session() === null) return;
    this.closedForHealth = true;
    const reason = 'primary without data';
    this.o.decisions.side({
      kind: 'closeSession', reason, generation: this.o.decisions.last?.generation ?? null, logDecision: 'closeSession', level: 'error',
      message: 'closing this peer\'s session: I am the primary but have no data; the sync takes over',
    }, this.o.clock.nowMs());
    await this.o.store.closeSession();
  }
}
