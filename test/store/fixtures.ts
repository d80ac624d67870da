// Builders for store tests: peers, states, and a machine driven entry by entry.
import { ClusterStateMachine, type ClusterStateMachineOptions } from '../../src/store/state-machine.js';
import { encodeCommand, type StoreCommand, type StoreResult } from '../../src/store/commands.js';
import type { ClusterState, PeerInfo } from '../../src/model/index.js';

export function peer(id: string): PeerInfo {
  const n = id.charCodeAt(0);
  return { id, pgUrl: `postgres://postgres@127.0.0.1:${5000 + n}/postgres`, apiUrl: `http://127.0.0.1:${6000 + n}`, host: '127.0.0.1' };
}

export const a = peer('a');
export const b = peer('b');
export const c = peer('c');
export const d = peer('d');

export const T0 = '2026-01-01T00:00:00.000Z';

/** Generation 1 as initial setup writes it: a primary, b sync, c async. */
export function gen1(over: Partial<ClusterState> = {}): ClusterState {
  return { generation: 1, primary: a, sync: b, async: [c], deposed: [], initWal: '0/0', ...over };
}

/** A machine plus an index counter: apply commands as Raft would. */
export class Driver {
  index = 0;
  constructor(readonly machine: ClusterStateMachine = new ClusterStateMachine()) {}

  static with(opts: ClusterStateMachineOptions): Driver {
    return new Driver(new ClusterStateMachine(opts));
  }

  raw(data: string): StoreResult {
    this.index += 1;
    return this.machine.apply({ index: this.index, term: 1, data });
  }

  run(cmd: StoreCommand): StoreResult {
    return this.raw(encodeCommand(cmd));
  }

  put(state: unknown, expectVersion = this.machine.version, summary?: string): StoreResult {
    return this.run(
      summary === undefined
        ? { op: 'putState', expectVersion, state, time: T0 }
        : { op: 'putState', expectVersion, state, summary, time: T0 },
    );
  }

  /** Puts a state that must be accepted. */
  ok(state: ClusterState, summary?: string): number {
    const r = this.put(state, this.machine.version, summary);
    if (!r.ok || r.op !== 'putState') throw new Error(`expected the state to be accepted: ${JSON.stringify(r)}`);
    return r.version;
  }

  open(p: PeerInfo): number {
    const r = this.run({ op: 'openSession', peer: p, time: T0 });
    if (!r.ok || r.op !== 'openSession') throw new Error(`open failed: ${JSON.stringify(r)}`);
    return r.session.openedIndex;
  }
}

/** The message of a rejected putState, or fails. */
export function rejection(r: StoreResult): { code: string; message: string } {
  if (r.ok) throw new Error(`expected a rejection, got ${JSON.stringify(r)}`);
  return { code: r.code, message: r.message };
}
