// Typed errors of the cluster store. The state machine never throws for a rejected command:
// it returns a rejection value (every node must reach the same result), and ClusterStore turns
// that value into one of these errors for its caller. Only broken invariants and malformed
// snapshots throw from inside the machine.
import { ManateeError } from '../errors.js';

export const STORE_ERR = {
  /** A compare-and-set lost: the state changed since the caller read it. `currentVersion` says to what. */
  versionMismatch: 'MANATEE_ERR_STORE_VERSION_MISMATCH',
  /** The proposed cluster state breaks a rule of DESIGN.md; the message names the problem. */
  invalidState: 'MANATEE_ERR_STORE_INVALID_STATE',
  /** A command that does not parse or has a bad field (a bug in the caller, or a version skew). */
  invalidCommand: 'MANATEE_ERR_STORE_INVALID_COMMAND',
  /** The session named by a keepalive no longer exists (it expired or was closed). Open a new one. */
  sessionExpired: 'MANATEE_ERR_STORE_SESSION_EXPIRED',
  /** keepalive() or closeSession() was called before openSession(). */
  noSession: 'MANATEE_ERR_STORE_NO_SESSION',
  /** The limit on concurrent sessions is reached. */
  tooManySessions: 'MANATEE_ERR_STORE_TOO_MANY_SESSIONS',
  /** restore() was handed data that is not a snapshot of this store; the message names the field. */
  invalidSnapshot: 'MANATEE_ERR_STORE_INVALID_SNAPSHOT',
  /** An internal invariant is broken: the store stops rather than go on with corrupt state. */
  invariant: 'MANATEE_ERR_STORE_INVARIANT',
  /** The consensus layer answered a proposal with something that is not a store result. */
  unexpectedResult: 'MANATEE_ERR_STORE_UNEXPECTED_RESULT',
  /** The store was stopped. */
  stopped: 'MANATEE_ERR_STORE_STOPPED',
} as const;

export type StoreErrorCode = (typeof STORE_ERR)[keyof typeof STORE_ERR];

export class StoreError extends ManateeError {
  declare readonly code: StoreErrorCode;

  // Not useless: it narrows `code` to the store's codes.
  // eslint-disable-next-line @typescript-eslint/no-useless-constructor
  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export class VersionMismatchError extends StoreError {
  /** The store's version when the compare-and-set was applied. */
  readonly currentVersion: number;
  readonly expectedVersion: number;

  constructor(expectedVersion: number, currentVersion: number) {
    super(
      STORE_ERR.versionMismatch,
      `cluster state version mismatch: expected version ${expectedVersion}, current version is ${currentVersion}`,
    );
    this.currentVersion = currentVersion;
    this.expectedVersion = expectedVersion;
  }
}

export class InvalidStateError extends StoreError {
  /** Each problem names the field or rule ("sync is missing (null) outside one-node-write mode"). */
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(STORE_ERR.invalidState, `invalid cluster state: ${problems.join('; ')}`);
    this.problems = problems;
  }
}

export class InvalidSnapshotError extends StoreError {
  constructor(problem: string) {
    super(STORE_ERR.invalidSnapshot, `invalid store snapshot: ${problem}`);
  }
}

export class StoreInvariantError extends StoreError {
  constructor(what: string) {
    super(STORE_ERR.invariant, `store invariant broken: ${what}`);
  }
}

/** TIGER_STYLE assertion: a false condition is a bug, and the store must not go on. */
export function invariant(condition: boolean, what: string | (() => string)): asserts condition {
  if (!condition) throw new StoreInvariantError(typeof what === 'string' ? what : what());
}
