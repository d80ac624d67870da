// The records a chaos run writes: operations (history.jsonl), faults (faults.jsonl) and
// status samples. Plain data, shared by the workload, the nemesis, the checker and the picture.

/** How an operation ended. `unknown`: a timeout or a broken connection; it may or may not have taken effect. */
export type Outcome = 'ok' | 'fail' | 'unknown';

/** One write: an insert of a unique id through the peer that the client library named primary. */
export interface WriteOp {
  readonly f: 'write';
  readonly client: number;
  /** Unique across the run: the key of the inserted row. */
  readonly id: number;
  /** The peer the client sent the write to (for a write that got no connection: the one it tried). */
  readonly peer: string;
  /** The generation of the newest committed state the client library had delivered when the write was sent; that state named `peer` primary. */
  readonly generation: number;
  readonly invokedAtMs: number;
  readonly completedAtMs: number;
  readonly outcome: Outcome;
  /** Read inside the same transaction on the server: its current WAL timeline (a promotion starts a new one). */
  readonly timeline?: number;
  /** Why it failed or is unknown; notices the server sent (e.g. a cancelled synchronous-replication wait). */
  readonly error?: string;
  readonly notice?: string;
}

/** One read on a replica: which of the asked ids it found. */
export interface ReadOp {
  readonly f: 'read';
  readonly client: number;
  readonly peer: string;
  readonly asked: readonly number[];
  readonly invokedAtMs: number;
  readonly completedAtMs: number;
  readonly outcome: Outcome;
  readonly found?: readonly number[];
  readonly error?: string;
}

export type Op = WriteOp | ReadOp;

export type FaultKind =
  | 'kill-peer'
  | 'kill-sitter'
  | 'kill-postgres'
  | 'pause-short'
  | 'pause-long'
  | 'partition-primary'
  | 'partition-sync'
  | 'partition-minority'
  | 'partition-oneway'
  /** The clients cut off from one peer (the primary half of the time); the peers still talk. */
  | 'partition-clients'
  | 'restart-all'
  /** Two of the others at once (the second starts while the first holds). */
  | 'overlap'
  /** A full disk: a zfs quota just above what the peer's dataset uses (zfs backend only). */
  | 'disk-full'
  /** Slow I/O: the peer's PostgreSQL throttled to a few % of a CPU (a real slow disk cannot be made here; see nemesis.ts). */
  | 'slow-io'
  /** A peer added to the shard (add-peer, then its sitter) and removed again (sitter stopped, remove-peer, reap). */
  | 'membership';

export const FAULT_KINDS: readonly FaultKind[] = [
  'kill-peer',
  'kill-sitter',
  'kill-postgres',
  'pause-short',
  'pause-long',
  'partition-primary',
  'partition-sync',
  'partition-minority',
  'partition-oneway',
  'partition-clients',
  'restart-all',
  'overlap',
  'disk-full',
  'slow-io',
  'membership',
];

/** The kinds that need the zfs backend (a dataset to put a quota on). */
export const ZFS_ONLY_KINDS: readonly FaultKind[] = ['disk-full'];

/** The kinds of the short run in `npm test` (the default of runChaos): the later kinds take longer and run with `npm run chaos`. */
export const SHORT_RUN_KINDS: readonly FaultKind[] = FAULT_KINDS.filter((k) => k !== 'disk-full' && k !== 'slow-io' && k !== 'membership');

/** One injected fault, from its start to its heal. */
export interface FaultRecord {
  readonly seq: number;
  readonly kind: FaultKind;
  /** For an overlapping fault: the two kinds it combined, in the order they started. */
  readonly parts?: readonly FaultKind[];
  /** The peers it hit (for a one-way partition: [from, to], the direction that is cut). */
  readonly targets: readonly string[];
  readonly startedAtMs: number;
  readonly healedAtMs: number;
  readonly detail: string;
}

/** What the status monitor saw at one moment: who claimed to be primary, in which generation. */
export interface StatusSample {
  readonly atMs: number;
  readonly peers: readonly { readonly id: string; readonly role: string | null; readonly generation: number | null; readonly writable: boolean }[];
}

/** The final contents read from one peer after healing. */
export interface FinalRead {
  readonly peer: string;
  readonly role: string;
  /** Its replay (or, for the primary, current) LSN reached the primary's final LSN before the read. */
  readonly caughtUp: boolean;
  readonly ids: ReadonlySet<number>;
}
