// The store's commands (what goes into a Raft entry, as JSON) and their results (what
// StateMachine.apply returns, handed back to the proposer by RaftNode.propose).
// Time is a field of each command that needs one, set by the proposer: apply never reads a clock.
// Results are plain JSON values: a rejection is a value with a stable code, never a throw.
import { STORE_ERR } from './errors.js';
import { peerTagsProblems, type PeerInfo, type PeerId, type PeerTags, type Session } from '../model/index.js';
import { settingsProblems, type ShardSettings } from './settings.js';
import { FIELD_CHARS_MAX, isIsoTime, peerProblems } from './validate.js';

/** Largest command accepted (bytes of JSON): a state with 64 asyncs fits many times over. */
export const COMMAND_BYTES_MAX = 256 * 1024;

/** Compare-and-set of the cluster state. `expectVersion` 0 means "there is no state yet". */
export interface PutStateCommand {
  readonly op: 'putState';
  readonly expectVersion: number;
  readonly state: unknown;
  readonly summary?: string;
  readonly time: string;
}

/** Opens (or replaces) the session of `peer.id`. */
export interface OpenSessionCommand {
  readonly op: 'openSession';
  readonly peer: PeerInfo;
  readonly time: string;
  /** The peer's tags (its configuration's), kept with its session. */
  readonly tags?: PeerTags;
}

/** "I am alive", for the session opened at `openedIndex`. */
export interface KeepaliveCommand {
  readonly op: 'keepalive';
  readonly peerId: PeerId;
  readonly openedIndex: number;
}

/** The owner ends its session (shutdown, or PostgreSQL unhealthy for too long). */
export interface CloseSessionCommand {
  readonly op: 'closeSession';
  readonly peerId: PeerId;
  readonly openedIndex: number;
  readonly time: string;
}

/**
 * The leader ends a silent session. `keepaliveIndex` is the index of the last keepalive that the
 * leader had applied when it decided: a later keepalive committed before this entry voids it, so
 * that keepalives stuck behind a slow disk or a slow apply never lose a live peer its session.
 */
export interface ExpireSessionCommand {
  readonly op: 'expireSession';
  readonly peerId: PeerId;
  readonly openedIndex: number;
  readonly keepaliveIndex: number;
  readonly reason: string;
  readonly time: string;
}

/** Compare-and-set of the shard-wide PostgreSQL settings (their own version, not the state's). */
export interface PutSettingsCommand {
  readonly op: 'putSettings';
  readonly expectVersion: number;
  readonly settings: ShardSettings;
  readonly time: string;
}

export type StoreCommand =
  | PutStateCommand
  | PutSettingsCommand
  | OpenSessionCommand
  | KeepaliveCommand
  | CloseSessionCommand
  | ExpireSessionCommand;

export type StoreRejectionCode =
  | typeof STORE_ERR.versionMismatch
  | typeof STORE_ERR.invalidState
  | typeof STORE_ERR.invalidCommand
  | typeof STORE_ERR.sessionExpired
  | typeof STORE_ERR.tooManySessions;

export interface StoreRejection {
  readonly ok: false;
  readonly code: StoreRejectionCode;
  readonly message: string;
  /** For a version mismatch: the store's version when the command was applied. */
  readonly currentVersion?: number;
  /** For an invalid state: each problem found. */
  readonly problems?: readonly string[];
}

export type StoreResult =
  | { readonly ok: true; readonly op: 'putState'; readonly version: number }
  | { readonly ok: true; readonly op: 'putSettings'; readonly version: number }
  | { readonly ok: true; readonly op: 'openSession'; readonly session: Session }
  | { readonly ok: true; readonly op: 'keepalive' }
  | { readonly ok: true; readonly op: 'closeSession'; readonly closed: boolean }
  | { readonly ok: true; readonly op: 'expireSession'; readonly expired: boolean; readonly why?: string }
  | { readonly ok: true; readonly op: 'noop' }
  | StoreRejection;

export function encodeCommand(cmd: StoreCommand): string {
  return JSON.stringify(cmd);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isIndex(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 1;
}

function isPeerId(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= FIELD_CHARS_MAX;
}

/** Parses an entry's data into a command, or says what is wrong with it. Pure and deterministic. */
export function parseCommand(data: string): { command: StoreCommand } | { problem: string } {
  if (data.length > COMMAND_BYTES_MAX) return { problem: `command is ${data.length} bytes, more than ${COMMAND_BYTES_MAX}` };
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    return { problem: 'command is not JSON' };
  }
  if (!isRecord(v)) return { problem: 'command is not a JSON object' };
  const time = v['time'];
  switch (v['op']) {
    case 'putState': {
      const ev = v['expectVersion'];
      if (!(Number.isSafeInteger(ev) && (ev as number) >= 0)) return { problem: 'putState.expectVersion: must be an integer >= 0' };
      if (!isIsoTime(time)) return { problem: 'putState.time: must be an ISO 8601 time' };
      const summary = v['summary'];
      if (summary !== undefined && typeof summary !== 'string') return { problem: 'putState.summary: must be a string' };
      if (!('state' in v)) return { problem: 'putState.state: is missing' };
      const cmd: PutStateCommand =
        summary === undefined
          ? { op: 'putState', expectVersion: ev as number, state: v['state'], time }
          : { op: 'putState', expectVersion: ev as number, state: v['state'], summary, time };
      return { command: cmd };
    }
    case 'putSettings': {
      const ev = v['expectVersion'];
      if (!(Number.isSafeInteger(ev) && (ev as number) >= 0)) return { problem: 'putSettings.expectVersion: must be an integer >= 0' };
      if (!isIsoTime(time)) return { problem: 'putSettings.time: must be an ISO 8601 time' };
      const problems = settingsProblems(v['settings'], 'putSettings.settings');
      if (problems.length > 0) return { problem: problems.join('; ') };
      return { command: { op: 'putSettings', expectVersion: ev as number, settings: v['settings'] as ShardSettings, time } };
    }
    case 'openSession': {
      const problems = peerProblems(v['peer'], 'openSession.peer');
      if (problems.length > 0) return { problem: problems.join('; ') };
      if (!isIsoTime(time)) return { problem: 'openSession.time: must be an ISO 8601 time' };
      const tags = v['tags'];
      if (tags === undefined) return { command: { op: 'openSession', peer: v['peer'] as PeerInfo, time } };
      const tagProblems = peerTagsProblems(tags, 'openSession.tags');
      if (tagProblems.length > 0) return { problem: tagProblems.join('; ') };
      return { command: { op: 'openSession', peer: v['peer'] as PeerInfo, time, tags: tags as PeerTags } };
    }
    case 'keepalive': {
      if (!isPeerId(v['peerId'])) return { problem: 'keepalive.peerId: must be a non-empty string' };
      if (!isIndex(v['openedIndex'])) return { problem: 'keepalive.openedIndex: must be an integer >= 1' };
      return { command: { op: 'keepalive', peerId: v['peerId'], openedIndex: v['openedIndex'] } };
    }
    case 'closeSession': {
      if (!isPeerId(v['peerId'])) return { problem: 'closeSession.peerId: must be a non-empty string' };
      if (!isIndex(v['openedIndex'])) return { problem: 'closeSession.openedIndex: must be an integer >= 1' };
      if (!isIsoTime(time)) return { problem: 'closeSession.time: must be an ISO 8601 time' };
      return { command: { op: 'closeSession', peerId: v['peerId'], openedIndex: v['openedIndex'], time } };
    }
    case 'expireSession': {
      if (!isPeerId(v['peerId'])) return { problem: 'expireSession.peerId: must be a non-empty string' };
      if (!isIndex(v['openedIndex'])) return { problem: 'expireSession.openedIndex: must be an integer >= 1' };
      if (!isIndex(v['keepaliveIndex'])) return { problem: 'expireSession.keepaliveIndex: must be an integer >= 1' };
      const reason = v['reason'];
      if (typeof reason !== 'string' || reason.length > FIELD_CHARS_MAX) {
        return { problem: `expireSession.reason: must be a string of at most ${FIELD_CHARS_MAX} characters` };
      }
      if (!isIsoTime(time)) return { problem: 'expireSession.time: must be an ISO 8601 time' };
      return {
        command: {
          op: 'expireSession',
          peerId: v['peerId'],
          openedIndex: v['openedIndex'],
          keepaliveIndex: v['keepaliveIndex'],
          reason,
          time,
        },
      };
    }
    default:
      return { problem: `unknown command op ${JSON.stringify(v['op'])}` };
  }
}

/** True when `v` looks like a StoreResult (what a proposal resolves with). */
export function isStoreResult(v: unknown): v is StoreResult {
  return isRecord(v) && typeof v['ok'] === 'boolean';
}
