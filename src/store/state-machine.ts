// ClusterStateMachine: the replicated state that Raft keeps for Manatee, the part that
// ZooKeeper played for Joyent's Manatee. It holds
//   - the cluster state and its version (compare-and-set writes, each validated);
//   - the bounded history of accepted changes, each with a one-line summary;
//   - the sessions (which peers are active).
// It is pure and deterministic: every node applies the same entries and reaches the same state.
// Time comes inside the commands (set by the proposer); apply never reads a clock. A rejected
// command is a returned value; only a broken invariant throws (and then the node must stop).
// Observers (ClusterStore, the sitter) subscribe to state, peers and keepalive events, emitted
// synchronously after each change.
import type { Logger } from '../log.js';
import type { AppliedEntry, StateMachine } from '../raft/state-machine.js';
import {
  parseCommand,
  type CloseSessionCommand,
  type ExpireSessionCommand,
  type KeepaliveCommand,
  type OpenSessionCommand,
  type PutSettingsCommand,
  type PutStateCommand,
  type StoreResult,
} from './commands.js';
import { InvalidSnapshotError, STORE_ERR, invariant } from './errors.js';
import { Listeners } from './listeners.js';
import { clampSummary, summarizeChange } from './summary.js';
import { canonicalPeerTags, peerTagsProblems, type ClusterState, type HistoryEntry, type PeerId, type PeerInfo, type PeerTags, type Session } from '../model/index.js';
import { canonicalSettings, settingsProblems, type ShardSettings, type VersionedSettings } from './settings.js';
import {
  canonicalPeer,
  canonicalState,
  isIsoTime,
  peerProblems,
  stateShapeProblems,
  transitionProblems,
} from './validate.js';
import { errorMessage } from '../errors.js';
import { ManateeError } from '../errors.js';

export const HISTORY_LIMIT_DEFAULT = 1000;
export const HISTORY_LIMIT_MAX = 100_000;
export const SESSIONS_MAX_DEFAULT = 64;

const SNAPSHOT_FORMAT = 'manatee-store';
const SNAPSHOT_FORMAT_VERSION = 1;

export interface ClusterStateMachineOptions {
  /** How many history entries are kept (the oldest are dropped). Every node must use the same value. */
  readonly historyLimit?: number;
  /** Most concurrent sessions. Every node must use the same value. */
  readonly sessionsMax?: number;
  /** Where listener errors are logged. */
  readonly log?: Logger;
}

/** A session as the store keeps it: Session plus the index of its last keepalive. */
export interface SessionRecord extends Session {
  readonly openedTime: string;
  /** Index of the last applied keepalive (the open counts as the first one). */
  readonly keepaliveIndex: number;
}

export interface StateChange {
  readonly state: ClusterState;
  readonly version: number;
  readonly previous: ClusterState | null;
  readonly summary: string;
  readonly time: string;
  /** The Raft index of the entry, or of the snapshot for a restore. */
  readonly index: number;
  readonly cause: 'put' | 'restore';
}

export type PeersChangeCause = 'open' | 'close' | 'expire' | 'restore';

export interface PeersChange {
  /** The active peers, in the order their sessions were opened. */
  readonly peers: readonly PeerInfo[];
  readonly sessions: readonly Session[];
  readonly index: number;
  readonly cause: PeersChangeCause;
  /** The peer whose session opened, closed or expired (absent for a restore). */
  readonly peerId?: PeerId;
  /** For an expiry: the leader's reason. */
  readonly reason?: string;
}

/** A committed change of the shard-wide PostgreSQL settings. */
export interface SettingsChange extends VersionedSettings {
  readonly previous: ShardSettings;
  readonly time: string;
  readonly index: number;
  readonly cause: 'put' | 'restore';
}

export interface KeepaliveEvent {
  readonly peerId: PeerId;
  readonly openedIndex: number;
  readonly index: number;
}

interface SnapshotData {
  readonly format: typeof SNAPSHOT_FORMAT;
  readonly formatVersion: typeof SNAPSHOT_FORMAT_VERSION;
  readonly appliedIndex: number;
  readonly version: number;
  readonly state: ClusterState | null;
  readonly history: readonly HistoryEntry[];
  readonly sessions: readonly SessionRecord[];
  /** Absent in snapshots written before shard settings existed: none, version 0. */
  readonly shardSettings?: VersionedSettings;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function invalidState(problems: string[]): StoreResult {
  return { ok: false, code: STORE_ERR.invalidState, message: `invalid cluster state: ${problems.join('; ')}`, problems };
}

function rejectCommand(message: string): StoreResult {
  return { ok: false, code: STORE_ERR.invalidCommand, message };
}

export class ClusterStateMachine implements StateMachine {
  readonly historyLimit: number;
  readonly sessionsMax: number;

  private current: ClusterState | null = null;
  private currentVersion = 0;
  private historyEntries: HistoryEntry[] = [];
  /** Insertion order is opening order: a re-opened session is deleted and added again. */
  private sessionsById = new Map<PeerId, SessionRecord>();
  private lastAppliedIndex = 0;
  private applying = false;
  private currentSettings: ShardSettings = Object.freeze({});
  private currentSettingsVersion = 0;

  private readonly stateListeners: Listeners<StateChange>;
  private readonly peersListeners: Listeners<PeersChange>;
  private readonly keepaliveListeners: Listeners<KeepaliveEvent>;
  private readonly settingsListeners: Listeners<SettingsChange>;

  constructor(opts: ClusterStateMachineOptions = {}) {
    const historyLimit = opts.historyLimit ?? HISTORY_LIMIT_DEFAULT;
    if (!Number.isSafeInteger(historyLimit) || historyLimit < 1 || historyLimit > HISTORY_LIMIT_MAX) {
      throw new ManateeError('MANATEE_ERR_INVALID_ARGUMENT', `historyLimit must be an integer in [1, ${HISTORY_LIMIT_MAX}] (got ${historyLimit})`);
    }
    const sessionsMax = opts.sessionsMax ?? SESSIONS_MAX_DEFAULT;
    if (!Number.isSafeInteger(sessionsMax) || sessionsMax < 1) {
      throw new ManateeError('MANATEE_ERR_INVALID_ARGUMENT', `sessionsMax must be an integer >= 1 (got ${sessionsMax})`);
    }
    this.historyLimit = historyLimit;
    this.sessionsMax = sessionsMax;
    const log = opts.log ?? null;
    this.stateListeners = new Listeners('state', log);
    this.peersListeners = new Listeners('peers', log);
    this.keepaliveListeners = new Listeners('keepalive', log);
    this.settingsListeners = new Listeners('settings', log);
  }

  /** Where listener errors go, when the machine was made without a logger (ClusterStore sets its own). */
  setLogger(log: Logger): void {
    for (const l of [this.stateListeners, this.peersListeners, this.keepaliveListeners]) l.log ??= log;
    this.settingsListeners.log ??= log;
  }

  // ---- queries (local, as of the last applied entry) ----

  get state(): ClusterState | null {
    return this.current;
  }

  /** 0 before the first state; +1 for each accepted putState. */
  get version(): number {
    return this.currentVersion;
  }

  /** The shard-wide PostgreSQL settings and their version (0: never written). */
  get settings(): VersionedSettings {
    return { settings: this.currentSettings, version: this.currentSettingsVersion };
  }

  get appliedIndex(): number {
    return this.lastAppliedIndex;
  }

  /** The last `limit` history entries (all kept ones by default), oldest first. */
  history(limit?: number): HistoryEntry[] {
    if (limit === undefined) return [...this.historyEntries];
    if (!Number.isSafeInteger(limit) || limit < 0) throw new ManateeError('MANATEE_ERR_INVALID_ARGUMENT', `history limit must be an integer >= 0 (got ${limit})`);
    return limit === 0 ? [] : this.historyEntries.slice(-limit);
  }

  /** Active sessions, in the order they were opened. */
  sessions(): SessionRecord[] {
    return [...this.sessionsById.values()];
  }

  session(peerId: PeerId): SessionRecord | undefined {
    return this.sessionsById.get(peerId);
  }

  activePeers(): PeerInfo[] {
    return this.sessions().map((s) => s.peer);
  }

  // ---- watches ----

  onState(listener: (change: StateChange) => void): () => void {
    return this.stateListeners.add(listener);
  }

  onPeers(listener: (change: PeersChange) => void): () => void {
    return this.peersListeners.add(listener);
  }

  /** Every applied keepalive of an existing session. The leader's liveness tracking listens. */
  onSettings(listener: (change: SettingsChange) => void): () => void {
    return this.settingsListeners.add(listener);
  }

  onKeepalive(listener: (event: KeepaliveEvent) => void): () => void {
    return this.keepaliveListeners.add(listener);
  }

  // ---- StateMachine ----

  apply(entry: AppliedEntry): StoreResult {
    invariant(!this.applying, 'apply re-entered (a listener applied an entry synchronously)');
    invariant(Number.isSafeInteger(entry.index) && entry.index > this.lastAppliedIndex, () =>
      `entries applied out of order: index ${entry.index} after ${this.lastAppliedIndex}`,
    );
    this.lastAppliedIndex = entry.index;
    // A new leader's empty entry, or a no-op: nothing to do.
    if (entry.data === '') return { ok: true, op: 'noop' };
    const parsed = parseCommand(entry.data);
    if ('problem' in parsed) return rejectCommand(parsed.problem);
    this.applying = true;
    const emits: (() => void)[] = [];
    let result: StoreResult;
    try {
      const cmd = parsed.command;
      switch (cmd.op) {
        case 'putState':
          result = this.applyPutState(cmd, entry.index, emits);
          break;
        case 'putSettings':
          result = this.applyPutSettings(cmd, entry.index, emits);
          break;
        case 'openSession':
          result = this.applyOpenSession(cmd, entry.index, emits);
          break;
        case 'keepalive':
          result = this.applyKeepalive(cmd, entry.index, emits);
          break;
        case 'closeSession':
          result = this.applyCloseSession(cmd, entry.index, emits);
          break;
        case 'expireSession':
          result = this.applyExpireSession(cmd, entry.index, emits);
          break;
      }
      this.checkInvariants(cmd.op === 'putState');
    } finally {
      this.applying = false;
    }
    for (const emit of emits) emit();
    return result;
  }

  private applyPutState(cmd: PutStateCommand, index: number, emits: (() => void)[]): StoreResult {
    if (cmd.expectVersion !== this.currentVersion) {
      return {
        ok: false,
        code: STORE_ERR.versionMismatch,
        message: `cluster state version mismatch: expected version ${cmd.expectVersion}, current version is ${this.currentVersion}`,
        currentVersion: this.currentVersion,
      };
    }
    const shape = stateShapeProblems(cmd.state);
    if (shape.length > 0) return invalidState(shape);
    const next = deepFreeze(canonicalState(cmd.state as ClusterState));
    const transition = transitionProblems(this.current, next);
    if (transition.length > 0) return invalidState(transition);
    const previous = this.current;
    const version = this.currentVersion + 1;
    const summary = cmd.summary !== undefined && cmd.summary.trim() !== '' ? clampSummary(cmd.summary) : summarizeChange(previous, next);
    this.current = next;
    this.currentVersion = version;
    this.historyEntries.push(deepFreeze({ version, time: cmd.time, generation: next.generation, summary, state: next }));
    if (this.historyEntries.length > this.historyLimit) {
      this.historyEntries.splice(0, this.historyEntries.length - this.historyLimit);
    }
    emits.push(() => {
      this.stateListeners.emit({ state: next, version, previous, summary, time: cmd.time, index, cause: 'put' });
    });
    return { ok: true, op: 'putState', version };
  }

  private applyPutSettings(cmd: PutSettingsCommand, index: number, emits: (() => void)[]): StoreResult {
    if (cmd.expectVersion !== this.currentSettingsVersion) {
      return {
        ok: false,
        code: STORE_ERR.versionMismatch,
        message: `shard settings version mismatch: expected version ${cmd.expectVersion}, current version is ${this.currentSettingsVersion}`,
        currentVersion: this.currentSettingsVersion,
      };
    }
    const previous = this.currentSettings;
    const settings = deepFreeze(canonicalSettings(cmd.settings));
    const version = this.currentSettingsVersion + 1;
    this.currentSettings = settings;
    this.currentSettingsVersion = version;
    emits.push(() => {
      this.settingsListeners.emit({ settings, version, previous, time: cmd.time, index, cause: 'put' });
    });
    return { ok: true, op: 'putSettings', version };
  }

  private applyOpenSession(cmd: OpenSessionCommand, index: number, emits: (() => void)[]): StoreResult {
    const replaces = this.sessionsById.has(cmd.peer.id);
    if (!replaces && this.sessionsById.size >= this.sessionsMax) {
      return {
        ok: false,
        code: STORE_ERR.tooManySessions,
        message: `cannot open a session for ${cmd.peer.id}: ${this.sessionsById.size} sessions are open, the limit is ${this.sessionsMax}`,
      };
    }
    const tags = canonicalPeerTags(cmd.tags);
    const record: SessionRecord = deepFreeze({
      peer: canonicalPeer(cmd.peer),
      openedIndex: index,
      openedTime: cmd.time,
      keepaliveIndex: index,
      ...(tags === undefined ? {} : { tags }),
    });
    // Delete first so that the map's order stays the opening order (a re-opened peer moves to the end).
    this.sessionsById.delete(cmd.peer.id);
    this.sessionsById.set(cmd.peer.id, record);
    this.emitPeers(emits, index, 'open', cmd.peer.id);
    return { ok: true, op: 'openSession', session: toSession(record) };
  }

  private applyKeepalive(cmd: KeepaliveCommand, index: number, emits: (() => void)[]): StoreResult {
    const s = this.sessionsById.get(cmd.peerId);
    if (s?.openedIndex !== cmd.openedIndex) {
      return {
        ok: false,
        code: STORE_ERR.sessionExpired,
        message: `the session of ${cmd.peerId} opened at index ${cmd.openedIndex} no longer exists${s === undefined ? '' : ` (a newer one was opened at index ${s.openedIndex})`}`,
      };
    }
    this.sessionsById.set(cmd.peerId, deepFreeze({ ...s, keepaliveIndex: index }));
    emits.push(() => {
      this.keepaliveListeners.emit({ peerId: cmd.peerId, openedIndex: cmd.openedIndex, index });
    });
    return { ok: true, op: 'keepalive' };
  }

  private applyCloseSession(cmd: CloseSessionCommand, index: number, emits: (() => void)[]): StoreResult {
    const s = this.sessionsById.get(cmd.peerId);
    if (s?.openedIndex !== cmd.openedIndex) return { ok: true, op: 'closeSession', closed: false };
    this.sessionsById.delete(cmd.peerId);
    this.emitPeers(emits, index, 'close', cmd.peerId);
    return { ok: true, op: 'closeSession', closed: true };
  }

  private applyExpireSession(cmd: ExpireSessionCommand, index: number, emits: (() => void)[]): StoreResult {
    const s = this.sessionsById.get(cmd.peerId);
    if (s?.openedIndex !== cmd.openedIndex) {
      return { ok: true, op: 'expireSession', expired: false, why: 'the session no longer exists' };
    }
    if (s.keepaliveIndex > cmd.keepaliveIndex) {
      return {
        ok: true,
        op: 'expireSession',
        expired: false,
        why: `a keepalive (index ${s.keepaliveIndex}) was committed after the one the expiry was decided on (index ${cmd.keepaliveIndex})`,
      };
    }
    this.sessionsById.delete(cmd.peerId);
    this.emitPeers(emits, index, 'expire', cmd.peerId, cmd.reason);
    return { ok: true, op: 'expireSession', expired: true };
  }

  private emitPeers(emits: (() => void)[], index: number, cause: PeersChangeCause, peerId?: PeerId, reason?: string): void {
    const sessions = this.sessions().map(toSession);
    const change: PeersChange = {
      peers: sessions.map((s) => s.peer),
      sessions,
      index,
      cause,
      ...(peerId === undefined ? {} : { peerId }),
      ...(reason === undefined ? {} : { reason }),
    };
    emits.push(() => {
      this.peersListeners.emit(change);
    });
  }

  // ---- snapshots ----

  snapshot(): string {
    const data: SnapshotData = {
      format: SNAPSHOT_FORMAT,
      formatVersion: SNAPSHOT_FORMAT_VERSION,
      appliedIndex: this.lastAppliedIndex,
      version: this.currentVersion,
      state: this.current,
      history: this.historyEntries,
      sessions: this.sessions(),
      shardSettings: this.settings,
    };
    return JSON.stringify(data);
  }

  /**
   * Replaces everything with a snapshot's data. The data is checked completely before anything
   * is replaced: a malformed snapshot throws InvalidSnapshotError (naming the field) and leaves
   * the machine as it was.
   */
  restore(data: string): void {
    invariant(!this.applying, 'restore called during apply');
    // An empty string is the snapshot of a group that has none yet: the empty store.
    const snap = data === '' ? emptySnapshot() : parseSnapshot(data);
    const history = snap.history.slice(-this.historyLimit).map((h) => deepFreeze(h));
    if (snap.sessions.length > this.sessionsMax) {
      throw new InvalidSnapshotError(`sessions: ${snap.sessions.length} sessions, more than the limit of ${this.sessionsMax}`);
    }
    const previous = this.current;
    const previousVersion = this.currentVersion;
    this.current = snap.state === null ? null : deepFreeze(snap.state);
    this.currentVersion = snap.version;
    this.historyEntries = history;
    this.sessionsById = new Map(snap.sessions.map((s) => [s.peer.id, deepFreeze(s)]));
    this.lastAppliedIndex = snap.appliedIndex;
    const previousSettings = this.currentSettings;
    const previousSettingsVersion = this.currentSettingsVersion;
    this.currentSettings = deepFreeze(snap.shardSettings?.settings ?? {});
    this.currentSettingsVersion = snap.shardSettings?.version ?? 0;
    this.checkInvariants(true);

    const emits: (() => void)[] = [];
    if (this.current !== null && this.currentVersion !== previousVersion) {
      const state = this.current;
      const version = this.currentVersion;
      const last = history[history.length - 1];
      emits.push(() => {
        this.stateListeners.emit({
          state,
          version,
          previous,
          summary: last?.summary ?? 'restored from a snapshot',
          time: last?.time ?? '',
          index: snap.appliedIndex,
          cause: 'restore',
        });
      });
    }
    this.emitPeers(emits, snap.appliedIndex, 'restore');
    if (this.currentSettingsVersion !== previousSettingsVersion) {
      const change: SettingsChange = {
        ...this.settings, previous: previousSettings, time: '', index: snap.appliedIndex, cause: 'restore',
      };
      emits.push(() => { this.settingsListeners.emit(change); });
    }
    for (const emit of emits) emit();
  }

  // ---- invariants (TIGER_STYLE): checked after every change, crash loudly if broken ----

  private checkInvariants(full: boolean): void {
    invariant((this.current === null) === (this.currentVersion === 0), () =>
      `state is ${this.current === null ? 'absent' : 'present'} but version is ${this.currentVersion}`,
    );
    invariant(this.historyEntries.length <= this.historyLimit, 'history is longer than its limit');
    const last = this.historyEntries[this.historyEntries.length - 1];
    if (last !== undefined) {
      invariant(last.version === this.currentVersion, () => `last history version ${last.version} is not the store version ${this.currentVersion}`);
      invariant(last.state === this.current || JSON.stringify(last.state) === JSON.stringify(this.current), 'last history state is not the current state');
    }
    invariant(this.sessionsById.size <= this.sessionsMax, 'more sessions than the limit');
    if (!full) return;
    for (let i = 1; i < this.historyEntries.length; i++) {
      const a = this.historyEntries[i - 1]!;
      const b = this.historyEntries[i]!;
      invariant(b.version > a.version, () => `history is out of order: version ${b.version} after ${a.version}`);
    }
    const seen = new Set<PeerId>();
    for (const [id, s] of this.sessionsById) {
      invariant(id === s.peer.id && !seen.has(id), () => `session of ${id} is duplicated or filed under the wrong id`);
      seen.add(id);
    }
  }
}

function emptySnapshot(): SnapshotData {
  return { format: SNAPSHOT_FORMAT, formatVersion: SNAPSHOT_FORMAT_VERSION, appliedIndex: 0, version: 0, state: null, history: [], sessions: [] };
}

function toSession(r: SessionRecord): Session {
  return { peer: r.peer, openedIndex: r.openedIndex, openedTime: r.openedTime, ...(r.tags === undefined ? {} : { tags: r.tags }) };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNonNegInt(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

/** Parses and checks a snapshot completely (the same rules as for applied states). Throws InvalidSnapshotError. */
function parseSnapshot(data: string): SnapshotData {
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch (err) {
    throw new InvalidSnapshotError(`not JSON (${errorMessage(err)})`);
  }
  if (!isRecord(v)) throw new InvalidSnapshotError('not a JSON object');
  if (v['format'] !== SNAPSHOT_FORMAT) {
    throw new InvalidSnapshotError(`format: must be ${JSON.stringify(SNAPSHOT_FORMAT)} (got ${JSON.stringify(v['format'])})`);
  }
  if (v['formatVersion'] !== SNAPSHOT_FORMAT_VERSION) {
    throw new InvalidSnapshotError(`formatVersion: this store reads version ${SNAPSHOT_FORMAT_VERSION} (got ${JSON.stringify(v['formatVersion'])})`);
  }
  const appliedIndex = v['appliedIndex'];
  if (!isNonNegInt(appliedIndex)) throw new InvalidSnapshotError('appliedIndex: must be an integer >= 0');
  const version = v['version'];
  if (!isNonNegInt(version)) throw new InvalidSnapshotError('version: must be an integer >= 0');

  let state: ClusterState | null = null;
  if (v['state'] !== null) {
    const problems = stateShapeProblems(v['state']);
    if (problems.length > 0) throw new InvalidSnapshotError(`state: ${problems.join('; ')}`);
    state = canonicalState(v['state'] as ClusterState);
  }
  if ((state === null) !== (version === 0)) {
    throw new InvalidSnapshotError(`version: is ${version} but the state is ${state === null ? 'null' : 'present'}`);
  }

  const rawHistory = v['history'];
  if (!Array.isArray(rawHistory)) throw new InvalidSnapshotError('history: must be an array');
  const history: HistoryEntry[] = [];
  rawHistory.forEach((h: unknown, i) => {
    const where = `history[${i}]`;
    if (!isRecord(h)) throw new InvalidSnapshotError(`${where}: must be an object`);
    const hv = h['version'];
    if (!(Number.isSafeInteger(hv) && (hv as number) >= 1)) throw new InvalidSnapshotError(`${where}.version: must be an integer >= 1`);
    const prev = history[history.length - 1];
    if (prev !== undefined && (hv as number) <= prev.version) {
      throw new InvalidSnapshotError(`${where}.version: ${hv as number} is not after ${prev.version} (history must be ordered)`);
    }
    if (!isIsoTime(h['time'])) throw new InvalidSnapshotError(`${where}.time: must be an ISO 8601 time`);
    if (typeof h['summary'] !== 'string') throw new InvalidSnapshotError(`${where}.summary: must be a string`);
    const problems = stateShapeProblems(h['state']);
    if (problems.length > 0) throw new InvalidSnapshotError(`${where}.state: ${problems.join('; ')}`);
    const hs = canonicalState(h['state'] as ClusterState);
    if (h['generation'] !== hs.generation) throw new InvalidSnapshotError(`${where}.generation: must equal its state's generation ${hs.generation}`);
    history.push({ version: hv as number, time: h['time'], generation: hs.generation, summary: h['summary'], state: hs });
  });
  const last = history[history.length - 1];
  if (last !== undefined) {
    if (last.version !== version) throw new InvalidSnapshotError(`history: the last entry has version ${last.version}, the store ${version}`);
    if (JSON.stringify(last.state) !== JSON.stringify(state)) throw new InvalidSnapshotError('history: the last entry is not the current state');
  }

  const rawSessions = v['sessions'];
  if (!Array.isArray(rawSessions)) throw new InvalidSnapshotError('sessions: must be an array');
  const sessions: SessionRecord[] = [];
  const ids = new Set<PeerId>();
  rawSessions.forEach((s: unknown, i) => {
    const where = `sessions[${i}]`;
    if (!isRecord(s)) throw new InvalidSnapshotError(`${where}: must be an object`);
    const problems = peerProblems(s['peer'], `${where}.peer`);
    if (problems.length > 0) throw new InvalidSnapshotError(problems.join('; '));
    const peer = canonicalPeer(s['peer'] as PeerInfo);
    if (ids.has(peer.id)) throw new InvalidSnapshotError(`${where}.peer.id: ${peer.id} has two sessions (sessions must be unique by peer id)`);
    ids.add(peer.id);
    const openedIndex = s['openedIndex'];
    const keepaliveIndex = s['keepaliveIndex'];
    if (!(Number.isSafeInteger(openedIndex) && (openedIndex as number) >= 1 && (openedIndex as number) <= appliedIndex)) {
      throw new InvalidSnapshotError(`${where}.openedIndex: must be an integer in [1, appliedIndex ${appliedIndex}]`);
    }
    if (!(Number.isSafeInteger(keepaliveIndex) && (keepaliveIndex as number) >= (openedIndex as number) && (keepaliveIndex as number) <= appliedIndex)) {
      throw new InvalidSnapshotError(`${where}.keepaliveIndex: must be an integer in [openedIndex, appliedIndex]`);
    }
    if (!isIsoTime(s['openedTime'])) throw new InvalidSnapshotError(`${where}.openedTime: must be an ISO 8601 time`);
    const rawTags = s['tags'];
    const tagProblems = rawTags === undefined ? [] : peerTagsProblems(rawTags, `${where}.tags`);
    if (tagProblems.length > 0) throw new InvalidSnapshotError(tagProblems.join('; '));
    const tags = canonicalPeerTags(rawTags as PeerTags | undefined);
    sessions.push({ peer, openedIndex: openedIndex as number, openedTime: s['openedTime'], keepaliveIndex: keepaliveIndex as number, ...(tags === undefined ? {} : { tags }) });
  });
  const opened = sessions.map((s) => s.openedIndex);
  for (let i = 1; i < opened.length; i++) {
    if (opened[i]! <= opened[i - 1]!) throw new InvalidSnapshotError(`sessions[${i}].openedIndex: sessions must be in opening order`);
  }

  const rawSettings = v['shardSettings'];
  if (rawSettings === undefined) return { format: SNAPSHOT_FORMAT, formatVersion: SNAPSHOT_FORMAT_VERSION, appliedIndex, version, state, history, sessions };
  if (!isRecord(rawSettings)) throw new InvalidSnapshotError('shardSettings: must be {settings, version}');
  const settingsVersion = rawSettings['version'];
  if (!isNonNegInt(settingsVersion)) throw new InvalidSnapshotError('shardSettings.version: must be an integer >= 0');
  const sp = settingsProblems(rawSettings['settings'], 'shardSettings.settings');
  if (sp.length > 0) throw new InvalidSnapshotError(sp.join('; '));
  const shardSettings: VersionedSettings = { settings: canonicalSettings(rawSettings['settings'] as ShardSettings), version: settingsVersion };
  return { format: SNAPSHOT_FORMAT, formatVersion: SNAPSHOT_FORMAT_VERSION, appliedIndex, version, state, history, sessions, shardSettings };
}
