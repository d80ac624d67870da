// AdminOperations over any compare-and-set store of the cluster state: read the state, compute
// the operator's change with src/peer/admin.ts, and write it if nobody wrote in between. A lost
// race (the primary added an async meanwhile) is retried on the new state, because the change
// is recomputed from scratch and its checks run again. The sitter passes its ClusterStore as it
// is (src/store/store.ts has these three methods); the tests pass an in-memory store.
import { ManateeError } from '../errors.js';
import * as admin from '../peer/admin.js';
import type { AdminChange } from '../peer/admin.js';
import type { ClusterState, PeerId, PeerInfo } from '../model/index.js';
import type { AdminOperations, AdminResult, PromoteInput, RebuildResult, VersionedState } from './types.js';

/** What the admin operations need from the cluster store. */
export interface AdminStateStore {
  /** The committed state and its version (linearizable where possible). */
  readState(): Promise<VersionedState>;
  /**
   * Write `state` if the store's version is still `expectVersion`, and resolve with the new
   * version. Rejects with a ManateeError (a version mismatch is recognised by `isVersionMismatch`,
   * an invalid state, no leader...).
   */
  putState(state: ClusterState, expectVersion: number, summary: string): Promise<{ readonly version: number }>;
  activePeers(): readonly PeerInfo[] | Promise<readonly PeerInfo[]>;
}

export interface StoreAdminOptions {
  readonly store: AdminStateStore;
  /** This peer: the one that rebuild() rebuilds. */
  readonly peerId: PeerId;
  /**
   * Start this peer's rebuild (the sitter's reconciler). Called after checkRebuild() passed;
   * `asSync` when this peer is the sync and checkRebuild allowed it (below initWal).
   */
  readonly startRebuild: (opts: { asSync?: { generation: number; upstreamId: PeerId; initWal: string } }) => Promise<RebuildResult>;
  /**
   * This peer's own WAL positions, read fresh from its PostgreSQL (replay and receive LSN; null
   * when not a standby). Needed to allow a rebuild of the sync; absent: the sync is always refused.
   */
  readonly ownWal?: () => Promise<admin.OwnWal>;
  readonly now?: () => Date;
  /** Compare-and-set attempts before giving up; each lost race means someone else wrote. */
  readonly attemptsMax?: number;
  readonly isVersionMismatch?: (err: unknown) => boolean;
}

export const VERSION_MISMATCH_CODE = 'MANATEE_ERR_STORE_VERSION_MISMATCH';
const ATTEMPTS_MAX_DEFAULT = 5;

export function storeAdminOperations(opts: StoreAdminOptions): AdminOperations {
  const now = opts.now ?? (() => new Date());
  const attemptsMax = opts.attemptsMax ?? ATTEMPTS_MAX_DEFAULT;
  const isMismatch = opts.isVersionMismatch ?? ((err: unknown) => err instanceof ManateeError && err.code === VERSION_MISMATCH_CODE);

  async function apply(change: (current: ClusterState | null) => AdminChange | Promise<AdminChange>): Promise<AdminResult> {
    for (let attempt = 1; ; attempt++) {
      const { state, version } = await opts.store.readState();
      const next = await change(state);
      try {
        const written = await opts.store.putState(next.state, version, next.summary);
        return { summary: next.summary, state: next.state, version: written.version };
      } catch (err) {
        if (!isMismatch(err) || attempt >= attemptsMax) throw err;
      }
    }
  }

  return {
    freeze: (reason) => apply((s) => admin.freeze(s, reason, now())),
    unfreeze: () => apply((s) => admin.unfreeze(s)),
    promote: (input: PromoteInput) =>
      apply((s) => admin.promote(s, {
        peerId: input.peerId,
        now: now(),
        ...(input.expireMs === undefined ? {} : { expireMs: input.expireMs }),
        ...(input.at === undefined ? {} : { at: input.at }),
      })),
    clearPromote: () => apply((s) => admin.clearPromote(s)),
    scheduleRestart: (input) => apply((s) => admin.scheduleRestart(s, { ...input, now: now() })),
    clearRestart: () => apply((s) => admin.clearRestart(s)),
    reap: (peerId) =>
      apply(async (s) => {
        const active = await opts.store.activePeers();
        return admin.reap(s, peerId, { activePeerIds: active.map((p) => p.id) });
      }),
    setOnwm: (mode) => apply((s) => admin.setOnwm(s, mode)),
    async rebuild() {
      const { state } = await opts.store.readState();
      const isSync = state?.sync?.id === opts.peerId;
      // A failed read leaves `own` null: checkRebuild then refuses the sync (its position is unknown).
      const own = isSync && opts.ownWal !== undefined ? await opts.ownWal().catch(() => null) : null;
      const kind = admin.checkRebuild(state, opts.peerId, own);
      if (kind === 'sync' && state !== null) {
        return opts.startRebuild({ asSync: { generation: state.generation, upstreamId: state.primary.id, initWal: state.initWal } });
      }
      return opts.startRebuild({});
    },
  };
}
