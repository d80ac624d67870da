// Validation of the cluster state (DESIGN.md, "The cluster state and its rules"). Two layers:
//  - shape: what one state must look like on its own (fields, peer entries, LSN, one-node-write
//    mode, a peer in two places, primary equal to sync);
//  - transition: what may change from the committed state to the next one (the generation goes
//    up by one exactly when the primary or the sync changes; nothing changes generation while
//    frozen; initWal is set when a generation begins and never goes backwards, and so is the
//    timeline history recorded with it, which a state from before it existed may gain later).
// Every function is pure and returns a list of problems, each naming the field, so that a
// rejected write says exactly what was wrong. An empty list means valid.
import { compareLsn, describeHistory, isLsn, type ClusterState, type FreezeInfo, type Lsn, type PeerInfo, type PromoteRequest, type ScheduledRestart, type TimelineHistory } from '../model/index.js';

/** Most peers in `async` or in `deposed`: bounds the size of a state (TIGER_STYLE). */
export const PEER_LIST_MAX = 64;
/** Longest accepted string in a peer entry, freeze reason, id, or time. */
export const FIELD_CHARS_MAX = 1024;
/**
 * Most timeline switches in initWalHistory: one per promotion in the shard's life, so a shard that
 * failed over this often has a state of about 60 kB, copied into each history entry.
 */
export const TIMELINE_SWITCHES_MAX = 1000;

/** An ISO 8601 time as the writers produce it (Date.prototype.toISOString), or another parseable date-time. */
export function isIsoTime(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 64 && /^\d{4}-\d{2}-\d{2}T/.test(value) && !Number.isNaN(Date.parse(value));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 80))}`;
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${value}`;
  return typeof value;
}

function unknownKeys(obj: Record<string, unknown>, known: readonly string[], where: string, problems: string[]): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) problems.push(`${where}${where === '' ? '' : '.'}${key}: is not a known field`);
  }
}

function checkString(value: unknown, where: string, problems: string[]): value is string {
  if (typeof value !== 'string' || value.length === 0) {
    problems.push(`${where}: must be a non-empty string (got ${describe(value)})`);
    return false;
  }
  if (value.length > FIELD_CHARS_MAX) {
    problems.push(`${where}: is longer than ${FIELD_CHARS_MAX} characters`);
    return false;
  }
  return true;
}

const PEER_KEYS = ['id', 'pgUrl', 'apiUrl', 'host'] as const;

/** Problems with one peer entry `{id, pgUrl, apiUrl, host}`; `where` names it ("primary", "async[2]"). */
export function peerProblems(value: unknown, where: string): string[] {
  const problems: string[] = [];
  if (!isPlainObject(value)) {
    problems.push(`${where}: must be a peer {id, pgUrl, apiUrl, host} (got ${describe(value)})`);
    return problems;
  }
  for (const key of PEER_KEYS) checkString(value[key], `${where}.${key}`, problems);
  unknownKeys(value, PEER_KEYS, where, problems);
  return problems;
}

/** A copy with only the known fields, in a fixed order (the stored form). Call after peerProblems() is empty. */
export function canonicalPeer(p: PeerInfo): PeerInfo {
  return { id: p.id, pgUrl: p.pgUrl, apiUrl: p.apiUrl, host: p.host };
}

function peerListProblems(value: unknown, where: string, problems: string[]): void {
  if (!Array.isArray(value)) {
    problems.push(`${where}: must be an array of peers (got ${describe(value)})`);
    return;
  }
  if (value.length > PEER_LIST_MAX) {
    problems.push(`${where}: has ${value.length} peers, more than the limit of ${PEER_LIST_MAX}`);
    return;
  }
  value.forEach((p, i) => problems.push(...peerProblems(p, `${where}[${i}]`)));
}

function freezeProblems(value: unknown, problems: string[]): void {
  if (!isPlainObject(value)) {
    problems.push(`freeze: must be {date, reason} (got ${describe(value)})`);
    return;
  }
  if (!isIsoTime(value['date'])) problems.push(`freeze.date: must be an ISO 8601 time (got ${describe(value['date'])})`);
  const reason = value['reason'];
  if (typeof reason !== 'string') problems.push(`freeze.reason: must be a string (got ${describe(reason)})`);
  else if (reason.length > FIELD_CHARS_MAX) problems.push(`freeze.reason: is longer than ${FIELD_CHARS_MAX} characters`);
  unknownKeys(value, ['date', 'reason'], 'freeze', problems);
}

function promoteProblems(value: unknown, problems: string[]): void {
  if (!isPlainObject(value)) {
    problems.push(`promote: must be {id, role, generation, expireTime, asyncIndex?} (got ${describe(value)})`);
    return;
  }
  checkString(value['id'], 'promote.id', problems);
  const role = value['role'];
  if (role !== 'sync' && role !== 'async') problems.push(`promote.role: must be "sync" or "async" (got ${describe(role)})`);
  const asyncIndex = value['asyncIndex'];
  if (asyncIndex !== undefined && !(Number.isSafeInteger(asyncIndex) && (asyncIndex as number) >= 0)) {
    problems.push(`promote.asyncIndex: must be an integer >= 0 (got ${describe(asyncIndex)})`);
  }
  if (role === 'async' && asyncIndex === undefined) {
    problems.push('promote.asyncIndex: is required when promote.role is "async"');
  }
  const gen = value['generation'];
  if (!(Number.isSafeInteger(gen) && (gen as number) >= 1)) {
    problems.push(`promote.generation: must be an integer >= 1 (got ${describe(gen)})`);
  }
  if (!isIsoTime(value['expireTime'])) {
    problems.push(`promote.expireTime: must be an ISO 8601 time (got ${describe(value['expireTime'])})`);
  }
  if (value['at'] !== undefined && !isIsoTime(value['at'])) {
    problems.push(`promote.at: must be an ISO 8601 time (got ${describe(value['at'])})`);
  }
  unknownKeys(value, ['id', 'role', 'asyncIndex', 'generation', 'expireTime', 'at'], 'promote', problems);
}

function restartProblems(value: unknown, problems: string[]): void {
  if (!isPlainObject(value)) {
    problems.push(`restart: must be {at, pending, peer?} (got ${describe(value)})`);
    return;
  }
  if (!isIsoTime(value['at'])) problems.push(`restart.at: must be an ISO 8601 time (got ${describe(value['at'])})`);
  if (typeof value['pending'] !== 'boolean') problems.push(`restart.pending: must be a boolean (got ${describe(value['pending'])})`);
  if (value['peer'] !== undefined) checkString(value['peer'], 'restart.peer', problems);
  unknownKeys(value, ['at', 'pending', 'peer'], 'restart', problems);
}

function initWalHistoryProblems(value: unknown, problems: string[]): void {
  const where = 'initWalHistory';
  if (!isPlainObject(value)) {
    problems.push(`${where}: must be a timeline history {timeline, switches} (got ${describe(value)})`);
    return;
  }
  unknownKeys(value, ['timeline', 'switches'], where, problems);
  const timeline = value['timeline'];
  if (!(Number.isSafeInteger(timeline) && (timeline as number) >= 1)) {
    problems.push(`${where}.timeline: must be an integer >= 1 (got ${describe(timeline)})`);
    return;
  }
  const switches = value['switches'];
  if (!Array.isArray(switches)) {
    problems.push(`${where}.switches: must be an array of {timeline, switchLsn} (got ${describe(switches)})`);
    return;
  }
  if (switches.length > TIMELINE_SWITCHES_MAX) {
    problems.push(`${where}.switches: has ${switches.length} entries, more than the limit of ${TIMELINE_SWITCHES_MAX}`);
    return;
  }
  let prev: { timeline: number; switchLsn: Lsn } | null = null;
  for (let i = 0; i < switches.length; i++) {
    const sw: unknown = switches[i];
    const at = `${where}.switches[${i}]`;
    if (!isPlainObject(sw)) {
      problems.push(`${at}: must be {timeline, switchLsn} (got ${describe(sw)})`);
      return;
    }
    unknownKeys(sw, ['timeline', 'switchLsn'], at, problems);
    const t = sw['timeline'];
    const lsn = sw['switchLsn'];
    if (!(Number.isSafeInteger(t) && (t as number) >= 1 && (t as number) < (timeline as number))) {
      problems.push(`${at}.timeline: must be an integer from 1 to ${(timeline as number) - 1}, an ancestor of timeline ${timeline as number} (got ${describe(t)})`);
      return;
    }
    if (!isLsn(lsn)) {
      problems.push(`${at}.switchLsn: must be an LSN like "0/16B3748" (got ${describe(lsn)})`);
      return;
    }
    if (prev !== null && (t as number) <= prev.timeline) problems.push(`${at}.timeline: ${t as number} does not follow ${prev.timeline}`);
    if (prev !== null && compareLsn(lsn, prev.switchLsn) < 0) problems.push(`${at}.switchLsn: ${lsn} is before ${prev.switchLsn}`);
    prev = { timeline: t as number, switchLsn: lsn };
  }
  if ((timeline as number) > 1 && switches.length === 0) problems.push(`${where}.switches: timeline ${timeline as number} must list its ancestors`);
}

function sameHistory(a: TimelineHistory, b: TimelineHistory): boolean {
  return a.timeline === b.timeline && a.switches.length === b.switches.length &&
    a.switches.every((s, i) => s.timeline === b.switches[i]!.timeline && compareLsn(s.switchLsn, b.switches[i]!.switchLsn) === 0);
}

const STATE_KEYS = [
  'generation',
  'primary',
  'sync',
  'async',
  'deposed',
  'initWal',
  'initWalHistory',
  'freeze',
  'oneNodeWriteMode',
  'onwmOverride',
  'promote',
  'restart',
] as const;

/**
 * Problems with one cluster state on its own. When the list is empty, `value` is a ClusterState
 * and canonicalState(value) is its stored form.
 */
export function stateShapeProblems(value: unknown): string[] {
  const problems: string[] = [];
  if (!isPlainObject(value)) {
    problems.push(`the state must be an object {generation, primary, sync, async, deposed, initWal} (got ${describe(value)})`);
    return problems;
  }
  unknownKeys(value, STATE_KEYS, '', problems);
  const gen = value['generation'];
  if (!(Number.isSafeInteger(gen) && (gen as number) >= 1)) {
    problems.push(`generation: must be an integer >= 1 (got ${describe(gen)})`);
  }
  problems.push(...peerProblems(value['primary'], 'primary'));
  if (value['sync'] !== null) problems.push(...peerProblems(value['sync'], 'sync'));
  peerListProblems(value['async'], 'async', problems);
  peerListProblems(value['deposed'], 'deposed', problems);
  if (!isLsn(value['initWal'])) {
    problems.push(`initWal: must be an LSN like "0/16B3748" (two hex numbers of 1 to 8 digits) (got ${describe(value['initWal'])})`);
  }
  if (value['initWalHistory'] !== undefined) initWalHistoryProblems(value['initWalHistory'], problems);
  if (value['freeze'] !== undefined) freezeProblems(value['freeze'], problems);
  const onwm = value['oneNodeWriteMode'];
  if (onwm !== undefined && typeof onwm !== 'boolean') {
    problems.push(`oneNodeWriteMode: must be a boolean (got ${describe(onwm)})`);
  }
  const override = value['onwmOverride'];
  if (override !== undefined && typeof override !== 'boolean') {
    problems.push(`onwmOverride: must be a boolean, or absent to follow each peer's configuration (got ${describe(override)})`);
  }
  if (value['promote'] !== undefined) promoteProblems(value['promote'], problems);
  if (value['restart'] !== undefined) restartProblems(value['restart'], problems);
  if (problems.length > 0) return problems;

  // The fields are well formed: now the rules that relate them.
  const s = value as unknown as ClusterState;
  if (s.sync !== null && s.primary.id === s.sync.id) {
    problems.push(`primary and sync are the same peer (${s.primary.id})`);
  }
  const places = new Map<string, string[]>();
  const place = (p: PeerInfo, where: string): void => {
    const list = places.get(p.id) ?? [];
    list.push(where);
    places.set(p.id, list);
  };
  place(s.primary, 'primary');
  if (s.sync !== null) place(s.sync, 'sync');
  s.async.forEach((p, i) => { place(p, `async[${i}]`); });
  s.deposed.forEach((p, i) => { place(p, `deposed[${i}]`); });
  for (const [id, where] of places) {
    if (where.length < 2) continue;
    if (where.length === 2 && where[0] === 'primary' && where[1] === 'sync') continue; // reported above
    problems.push(`peer ${id} is in two places: ${where.join(' and ')}`);
  }
  if (s.oneNodeWriteMode === true) {
    if (s.sync !== null) problems.push(`sync must be null in one-node-write mode (got peer ${s.sync.id})`);
    if (s.async.length > 0) {
      problems.push(`async must be empty in one-node-write mode (got [${s.async.map((p) => p.id).join(', ')}])`);
    }
  } else if (s.sync === null) {
    problems.push('sync is missing (null) outside one-node-write mode');
  }
  return problems;
}

/** The stored form of a valid state: known fields only, in a fixed order, peers copied. */
export function canonicalState(s: ClusterState): ClusterState {
  const out: {
    generation: number;
    primary: PeerInfo;
    sync: PeerInfo | null;
    async: PeerInfo[];
    deposed: PeerInfo[];
    initWal: Lsn;
    initWalHistory?: TimelineHistory;
    freeze?: FreezeInfo;
    oneNodeWriteMode?: boolean;
    onwmOverride?: boolean;
    promote?: PromoteRequest;
    restart?: ScheduledRestart;
  } = {
    generation: s.generation,
    primary: canonicalPeer(s.primary),
    sync: s.sync === null ? null : canonicalPeer(s.sync),
    async: s.async.map(canonicalPeer),
    deposed: s.deposed.map(canonicalPeer),
    initWal: s.initWal,
  };
  if (s.initWalHistory !== undefined) {
    const h = s.initWalHistory;
    out.initWalHistory = { timeline: h.timeline, switches: h.switches.map((w) => ({ timeline: w.timeline, switchLsn: w.switchLsn })) };
  }
  if (s.freeze !== undefined) out.freeze = { date: s.freeze.date, reason: s.freeze.reason };
  if (s.oneNodeWriteMode !== undefined) out.oneNodeWriteMode = s.oneNodeWriteMode;
  if (s.onwmOverride !== undefined) out.onwmOverride = s.onwmOverride;
  if (s.promote !== undefined) {
    const p = s.promote;
    out.promote = {
      id: p.id,
      role: p.role,
      ...(p.asyncIndex === undefined ? {} : { asyncIndex: p.asyncIndex }),
      generation: p.generation,
      expireTime: p.expireTime,
      ...(p.at === undefined ? {} : { at: p.at }),
    };
  }
  if (s.restart !== undefined) {
    const r = s.restart;
    out.restart = { at: r.at, pending: r.pending, ...(r.peer === undefined ? {} : { peer: r.peer }) };
  }
  return out;
}

/**
 * Problems with going from the committed state `current` (null before initial setup) to `next`.
 * Both must already have valid shapes.
 */
export function transitionProblems(current: ClusterState | null, next: ClusterState): string[] {
  const problems: string[] = [];
  if (current === null) return problems; // generation >= 1 is checked by the shape.
  const gen = current.generation;
  const primaryChanged = current.primary.id !== next.primary.id;
  const syncChanged = (current.sync?.id ?? null) !== (next.sync?.id ?? null);
  if (next.generation !== gen && next.generation !== gen + 1) {
    problems.push(`generation ${next.generation} must be the current generation ${gen} or ${gen + 1}`);
    return problems;
  }
  if (next.generation === gen) {
    if (primaryChanged) {
      problems.push(`primary changed from ${current.primary.id} to ${next.primary.id} without a new generation (must be ${gen + 1})`);
    }
    if (syncChanged) {
      problems.push(
        `sync changed from ${current.sync?.id ?? 'none'} to ${next.sync?.id ?? 'none'} without a new generation (must be ${gen + 1})`,
      );
    }
    if (next.initWal !== current.initWal) {
      problems.push(`initWal changed from ${current.initWal} to ${next.initWal} within generation ${gen} (it is set when a generation begins)`);
    }
    const was = current.initWalHistory;
    const now = next.initWalHistory;
    if (was !== undefined && (now === undefined || !sameHistory(was, now))) {
      problems.push(
        `initWalHistory changed from ${describeHistory(was)} to ${now === undefined ? 'none' : describeHistory(now)} within generation ${gen} ` +
        '(it is recorded with initWal; a state from before it existed may only gain one)',
      );
    }
    return problems;
  }
  // next.generation === gen + 1
  if (!primaryChanged && !syncChanged) {
    problems.push(`generation went from ${gen} to ${next.generation} but neither the primary nor the sync changed`);
  }
  if (current.freeze !== undefined) {
    problems.push(
      `the cluster is frozen (${current.freeze.reason || 'no reason given'}): no generation change (${gen} to ${next.generation}) until it is unfrozen`,
    );
  }
  if (compareLsn(next.initWal, current.initWal) < 0) {
    problems.push(
      `initWal ${next.initWal} is behind the current initWal ${current.initWal}: a new generation must begin at or after the WAL position where the previous one began`,
    );
  }
  return problems;
}
