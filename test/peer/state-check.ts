// The store's validation rules (DESIGN.md: "These are invalid: primary equal to sync, a peer in
// two places, a missing sync outside ONWM, a generation that is not equal to or one more than
// the current one, and a malformed LSN"), plus what "generation" means: it changes exactly when
// the primary or the sync changes, and initWal changes only with it.
// The tests check every write both with this (written from DESIGN.md, independently of the
// store) and with the store's own validator (src/store/validate.ts).
import { type ClusterState, isLsn } from '../../src/model/index.js';

/** Problems with `next` as the successor of `prev` (null: no state yet). Empty when valid. */
export function stateProblems(prev: ClusterState | null, next: ClusterState): string[] {
  const problems: string[] = [];
  const where = new Map<string, string>();
  const place = (id: string, at: string): void => {
    const before = where.get(id);
    if (before !== undefined) problems.push(`peer ${id} is both ${before} and ${at}`);
    where.set(id, at);
  };
  place(next.primary.id, 'primary');
  if (next.sync !== null) place(next.sync.id, 'sync');
  next.async.forEach((p, i) => { place(p.id, `async[${i}]`); });
  next.deposed.forEach((p, i) => { place(p.id, `deposed[${i}]`); });

  if (next.sync === null && next.oneNodeWriteMode !== true) problems.push('sync is missing outside one-node-write mode');
  if (!isLsn(next.initWal)) problems.push(`initWal ${JSON.stringify(next.initWal)} is not an LSN`);
  if (!Number.isInteger(next.generation) || next.generation < 1) problems.push(`generation ${next.generation} is not a positive integer`);

  if (prev === null) {
    if (next.generation !== 1) problems.push(`the first state has generation ${next.generation}, not 1`);
    return problems;
  }
  const sameRoles = prev.primary.id === next.primary.id && (prev.sync?.id ?? null) === (next.sync?.id ?? null);
  if (next.generation === prev.generation) {
    if (!sameRoles) problems.push(`primary or sync changed within generation ${next.generation}`);
    if (next.initWal !== prev.initWal) problems.push(`initWal changed within generation ${next.generation}`);
  } else if (next.generation === prev.generation + 1) {
    if (sameRoles) problems.push(`generation ${next.generation} declared with the same primary and sync`);
  } else {
    problems.push(`generation went from ${prev.generation} to ${next.generation}`);
  }
  return problems;
}
