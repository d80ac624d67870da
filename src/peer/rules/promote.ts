// An operator's planned switchover (state.promote, written by manatee-adm promote).
// As in Joyent's Manatee, a request is acted on only while it is current: not expired, made for
// the current generation, naming the peer that is at the role (and async index) it says.
// The sync acts on a request for the sync (it takes over and the primary is deposed); the
// primary acts on a request for an async (the async moves up the chain by one place).
import type { ClusterState, PromoteRequest } from '../../model/index.js';
import { frozenBecause, type ActivePeers } from './peers.js';

export type PromoteCheck =
  | { readonly kind: 'valid'; readonly request: PromoteRequest; readonly target: 'sync' }
  | { readonly kind: 'valid'; readonly request: PromoteRequest; readonly target: 'async'; readonly asyncIndex: number }
  | {
      readonly kind: 'invalid';
      readonly request: PromoteRequest;
      /** Why it is ignored, as a clause: "it expired at 2026-...". */
      readonly why: string;
      /**
       * The primary removes it from the state. True when it can never become valid (expired,
       * stale or malformed); false when it may (its target has no session, or the cluster is
       * frozen) - such a request stays until it expires.
       */
      readonly clear: boolean;
      /** A scheduled request whose time has not come. */
      readonly scheduled?: boolean;
    };

/**
 * Why a due scheduled switchover cannot happen now, so that the primary skips it; null when it
 * may go ahead (or is not a due scheduled one). Not healthy: frozen, the target without a session,
 * or (for the sync) no active async to become the next sync.
 */
export function scheduledSkipReason(state: ClusterState, active: ActivePeers, check: PromoteCheck | null): string | null {
  if (check === null || check.request.at === undefined) return null;
  if (check.kind === 'invalid') return check.clear || check.scheduled === true ? null : check.why;
  if (check.target === 'sync' && active.chooseSync(state.async) === undefined) {
    return active.noSyncBecause(state.async, 'become the sync after it');
  }
  return null;
}

/** Check the state's promote request, if any, against the state and the time. */
export function checkPromote(state: ClusterState, active: ActivePeers, nowMs: number): PromoteCheck | null {
  const request = state.promote;
  if (request === undefined) return null;
  const invalid = (why: string, clear: boolean): PromoteCheck => ({ kind: 'invalid', request, why, clear });

  // The request comes from outside (an operator's tool): check every field, whatever its type says.
  const fields = request as unknown as Record<string, unknown>;
  const id = fields.id;
  const role = fields.role;
  const generation = fields.generation;
  const expireTime = fields.expireTime;
  const asyncIndex = fields.asyncIndex;

  const expireMs = typeof expireTime === 'string' ? Date.parse(expireTime) : Number.NaN;
  if (Number.isNaN(expireMs)) return invalid(`its expireTime ${JSON.stringify(expireTime)} is not a time`, true);
  if (expireMs <= nowMs) return invalid(`it expired at ${new Date(expireMs).toISOString()}`, true);
  if (typeof generation !== 'number' || !Number.isInteger(generation)) {
    return invalid(`its generation ${JSON.stringify(generation)} is not a number`, true);
  }
  if (generation !== state.generation) {
    return invalid(`it was made for generation ${generation}, and this is generation ${state.generation}`, true);
  }
  if (typeof id !== 'string' || id === '') return invalid('it names no peer', true);
  if (role !== 'sync' && role !== 'async') {
    return invalid(`its role ${JSON.stringify(role)} is neither "sync" nor "async"`, true);
  }

  if (role === 'sync') {
    if (state.sync?.id !== id) {
      return invalid(`it names ${JSON.stringify(id)} as the sync, but the sync is ${JSON.stringify(state.sync?.id ?? null)}`, true);
    }
  } else {
    if (typeof asyncIndex !== 'number' || !Number.isInteger(asyncIndex)) {
      return invalid(`its asyncIndex ${JSON.stringify(asyncIndex)} is not an index`, true);
    }
    if (asyncIndex < 0 || asyncIndex >= state.async.length) {
      return invalid(`its asyncIndex ${asyncIndex} is outside the async chain (length ${state.async.length})`, true);
    }
    const at = state.async[asyncIndex]!;
    if (at.id !== id) {
      return invalid(`it names ${JSON.stringify(id)} at async index ${asyncIndex}, but that is ${JSON.stringify(at.id)}`, true);
    }
  }

  // A peer tagged nofailover is never made primary or sync (it must have a session to be acted on).
  if (active.noFailover(id) && (role === 'sync' || asyncIndex === 0)) {
    return invalid(`${JSON.stringify(id)} is tagged nofailover: it may not become ${role === 'sync' ? 'the primary' : 'the sync'}`, true);
  }

  const at = fields.at;
  if (at !== undefined) {
    const atMs = typeof at === 'string' ? Date.parse(at) : Number.NaN;
    if (Number.isNaN(atMs)) return invalid(`its time ${JSON.stringify(at)} is not a time`, true);
    if (atMs > nowMs) return { kind: 'invalid', request, why: `it is scheduled for ${new Date(atMs).toISOString()}`, clear: false, scheduled: true };
  }
  if (state.freeze !== undefined) return invalid(frozenBecause(state), false);
  if (!active.has(id)) return invalid(`${JSON.stringify(id)} has no session`, false);

  return role === 'sync'
    ? { kind: 'valid', request, target: 'sync' }
    : { kind: 'valid', request, target: 'async', asyncIndex: asyncIndex as number };
}

/** "the promote request for "c" (async 1)" */
export function describePromote(request: PromoteRequest): string {
  const fields = request as unknown as Record<string, unknown>;
  const where = fields.role === 'async' ? `async ${String(fields.asyncIndex)}` : String(fields.role);
  const at = typeof fields.at === 'string' ? ` scheduled for ${fields.at}` : '';
  return `the promote request for ${JSON.stringify(fields.id ?? null)} (${where})${at}`;
}
