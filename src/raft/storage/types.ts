// What the Raft node hands its storage and gets back from it (both formats).
import type { Entry, HardState, Snapshot } from '../core/types.js';

/** What was on disk, checked. `entries` are contiguous and follow `snapshot` (if any). */
export interface PersistedState {
  readonly hardState: HardState | null;
  readonly snapshot: Snapshot | null;
  readonly entries: readonly Entry[];
}

/** One Ready's worth of durable state, in the order the Ready contract gives. */
export interface StorageUpdate {
  readonly snapshot: Snapshot | null;
  readonly entries: readonly Entry[];
  readonly hardState: HardState | null;
}
