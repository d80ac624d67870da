// The facts file: what this peer remembers across restarts, beside its PostgreSQL data
// (<dataDir>/sitter-facts.json). A deposed peer rejoins on `rebuiltFrom`, a primary refuses
// to create a second, empty database on `initdbDone`, and a sitter restarted while a fenced write
// had no answer keeps its fence on `unsettledWrite`: a fact lost in a crash is a safety bug, so
// a write is durable before it returns (the temporary file and then its directory are fsynced
// around the rename).
import { open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ManateeError, errorMessage } from '../errors.js';
import { LSN_ZERO, type ClusterState, type PeerId } from '../model/index.js';
import { canonicalState, stateShapeProblems } from '../store/index.js';
import { FENCED_KINDS, type UnresolvedWrite } from './fencing.js';

export const FACTS_ERR_INVALID = 'MANATEE_ERR_FACTS_INVALID';

export interface LocalFacts {
  /** Set after a rebuild: a deposed peer leaves `deposed` when this names the current primary. */
  readonly rebuiltFrom: { readonly primaryId: PeerId; readonly generation: number } | null;
  /** Set once this peer ran initdb: it never creates a second, empty database in place of the first. */
  readonly initdbDone: boolean;
  /**
   * A fenced write (a takeover, a new sync...) whose proposal got no answer: it may still commit,
   * so the fence holds until the store shows its outcome, across a restart too (evaluation.ts).
   * Absent or null: none.
   */
  readonly unsettledWrite?: UnresolvedWrite | null;
}

export const NO_FACTS: LocalFacts = { rebuiltFrom: null, initdbDone: false };

/** Where the facts are kept: a file on a real peer, memory in a simulation. */
export interface FactsStore {
  /** Where the facts live, for messages ("this peer created its database before (<where>)"). */
  readonly where: string;
  read(): Promise<LocalFacts>;
  /** Durable when it returns. */
  write(facts: LocalFacts): Promise<void>;
}

export class FileFacts implements FactsStore {
  constructor(readonly where: string) {}

  async read(): Promise<LocalFacts> {
    let text: string;
    try {
      text = await readFile(this.where, 'utf8');
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return NO_FACTS;
      throw err;
    }
    return parseFacts(text, this.where);
  }

  async write(facts: LocalFacts): Promise<void> {
    const tmp = `${this.where}.tmp`;
    const file = await open(tmp, 'w', 0o644);
    try {
      await file.writeFile(JSON.stringify(facts));
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, this.where);
    // The rename is durable only once the directory's entry is.
    const dir = await open(dirname(this.where), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

/** The facts in a file's text; MANATEE_ERR_FACTS_INVALID names the file and what is wrong. */
export function parseFacts(text: string, where: string): LocalFacts {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ManateeError(FACTS_ERR_INVALID, `${where}: is not JSON (${errorMessage(err)})`, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ManateeError(FACTS_ERR_INVALID, `${where}: must be an object {rebuiltFrom, initdbDone}`);
  }
  const p = parsed as { rebuiltFrom?: unknown; initdbDone?: unknown; unsettledWrite?: unknown };
  const initdbDone = p.initdbDone === true;
  const unsettledWrite = parseUnsettledWrite(p.unsettledWrite, where);
  const rest = unsettledWrite === null ? { initdbDone } : { initdbDone, unsettledWrite };
  const r = p.rebuiltFrom;
  if (r === null || r === undefined) return { rebuiltFrom: null, ...rest };
  const rf = r as { primaryId?: unknown; generation?: unknown };
  if (typeof r !== 'object' || typeof rf.primaryId !== 'string' || typeof rf.generation !== 'number') {
    throw new ManateeError(FACTS_ERR_INVALID, `${where}: rebuiltFrom must be {primaryId: string, generation: number}`);
  }
  return { rebuiltFrom: { primaryId: rf.primaryId, generation: rf.generation }, ...rest };
}

function shown(v: unknown): string {
  return v === undefined ? 'nothing' : JSON.stringify(v);
}

/**
 * The record of a fenced write without an answer. A garbled one stops the sitter: guessing would
 * either lift a fence whose write may still commit, or keep one for good.
 */
function parseUnsettledWrite(value: unknown, where: string): UnresolvedWrite | null {
  if (value === null || value === undefined) return null;
  const bad = (what: string): ManateeError => new ManateeError(FACTS_ERR_INVALID,
    `${where}: unsettledWrite ${what}. The sitter does not start on it: the fenced write it records may still commit, so its fence must hold. ` +
    'The file is left as it is; fix the record, or remove it once the cluster state (manatee-adm state) shows that write\'s outcome');
  if (typeof value !== 'object' || Array.isArray(value)) throw bad('must be an object {kind, write: {expectVersion, newState, summary}}');
  const u = value as { kind?: unknown; write?: unknown };
  if (typeof u.kind !== 'string' || !(FENCED_KINDS as ReadonlySet<string>).has(u.kind)) {
    throw bad(`.kind must be one of ${[...FENCED_KINDS].join(', ')} (got ${shown(u.kind)})`);
  }
  const w = u.write as { expectVersion?: unknown; newState?: unknown; summary?: unknown } | null | undefined;
  if (typeof w !== 'object' || w === null || Array.isArray(w)) throw bad('.write must be an object {expectVersion, newState, summary}');
  if (!(Number.isSafeInteger(w.expectVersion) && (w.expectVersion as number) >= 0)) throw bad(`.write.expectVersion must be an integer >= 0 (got ${shown(w.expectVersion)})`);
  if (typeof w.summary !== 'string') throw bad('.write.summary must be a string');
  const problems = stateShapeProblems(w.newState);
  if (problems.length > 0) throw bad(`.write.newState is not a cluster state: ${problems.join('; ')}`);
  return {
    kind: u.kind as UnresolvedWrite['kind'],
    write: { expectVersion: w.expectVersion as number, newState: canonicalState(w.newState as ClusterState), summary: w.summary },
  };
}

/** The facts as the sitter knows them now, written through to their store. */
export class FactsKeeper {
  private facts: LocalFacts;

  constructor(private readonly store: FactsStore, initial: LocalFacts) {
    this.facts = initial;
  }

  get current(): LocalFacts {
    return this.facts;
  }

  get where(): string {
    return this.store.where;
  }

  /** Durable when it returns. */
  async update(change: Partial<LocalFacts>): Promise<void> {
    this.facts = { ...this.facts, ...change };
    await this.store.write(this.facts);
  }
}

/**
 * Whether this peer may create a new database (initdb) in an empty data directory, or why not.
 * Only at the cluster's setup: generation 1, initWal 0/0, this peer its primary, no data before,
 * and no initdb before. Otherwise its data was lost, and the sync holds it.
 */
export function initdbAllowed(o: { readonly state: ClusterState | null; readonly selfId: PeerId; readonly hasPreviousData: boolean; readonly facts: FactsKeeper }): true | string {
  const state = o.state;
  if (state === null) return 'the cluster state is unknown';
  if (state.primary.id !== o.selfId) return `${state.primary.id} is the primary, not me`;
  if (state.generation !== 1 || state.initWal !== LSN_ZERO) {
    return `generation ${state.generation} (initWal ${state.initWal}) is not the cluster's setup: my data was lost and the sync holds it`;
  }
  if (o.hasPreviousData) return 'this peer had a database when the sitter started, and it is gone';
  if (o.facts.current.initdbDone) return `this peer created its database before (${o.facts.where}), and it is gone`;
  return true;
}
