// Sequential models: a register (read / write / compare-and-set, one per key) and a key-value map
// of strings (get / put / append, per key), as Porcupine's etcd and kv models.
import { hashString, ILLEGAL, type Illegal, type Model } from './model.js';

/** A register holds an integer, or null ("no value yet", the initial state). */
export type RegisterState = number | null;

export type RegisterInput =
  | { readonly key?: string; readonly f: 'read' }
  | { readonly key?: string; readonly f: 'write'; readonly value: number }
  | { readonly key?: string; readonly f: 'cas'; readonly from: number; readonly to: number };

/**
 * How an operation ended.
 * - `ok`: it took effect; a read carries the value it returned.
 * - `fail`: for a cas, it ran and the comparison failed (the register did not hold `from`), as
 *   Porcupine reads Jepsen's `:fail :cas`; for a read or a write, it definitely took no effect.
 * - `unknown`: it may or may not have taken effect (its return is at +infinity).
 */
export type RegisterOutput =
  | { readonly status: 'ok'; readonly value?: number | null }
  | { readonly status: 'fail' }
  | { readonly status: 'unknown' };

function show(v: number | null | undefined): string {
  return v === null || v === undefined ? 'nil' : String(v);
}

export const registerModel: Model<RegisterState, RegisterInput, RegisterOutput> = {
  name: 'register',
  init: () => null,
  step(state, input, output): RegisterState | Illegal {
    switch (input.f) {
      case 'read':
        if (output.status !== 'ok') return state;
        return output.value === state ? state : ILLEGAL;
      case 'write':
        return output.status === 'fail' ? state : input.value;
      case 'cas':
        if (output.status === 'ok') return state === input.from ? input.to : ILLEGAL;
        if (output.status === 'fail') return state !== input.from ? state : ILLEGAL;
        return state === input.from ? input.to : state;
    }
  },
  hash: (s) => (s === null ? 0x5bd1e995 : s | 0),
  equal: (a, b) => a === b,
  partitionKey: (input) => input.key ?? '',
  isNoOp: (input, output) => output.status === 'unknown' ? input.f === 'read' : output.status === 'fail' && input.f !== 'cas',
  isReadOnly: (input, output) => input.f === 'read' || (input.f === 'cas' && output.status === 'fail'),
  unknownOutput: () => ({ status: 'unknown' }),
  observes(input, output, writer): boolean {
    if (writer.f === 'read' || output.status !== 'ok') return false;
    const written = writer.f === 'write' ? writer.value : writer.to;
    return (input.f === 'read' && output.value === written) || (input.f === 'cas' && input.from === written);
  },
  describeOperation(input, output): string {
    const result = output.status === 'unknown' ? ' -> ?' : output.status === 'fail' ? ' -> fail' : input.f === 'read' ? ` -> ${show(output.value)}` : input.f === 'cas' ? ' -> ok' : '';
    const key = input.key !== undefined && input.key !== '' ? `[${input.key}]` : '';
    switch (input.f) {
      case 'read':
        return `read${key}${result}`;
      case 'write':
        return `write${key}(${input.value})${result}`;
      case 'cas':
        return `cas${key}(${input.from}, ${input.to})${result}`;
    }
  },
  describeState: show,
};

export interface KvInput {
  readonly key: string;
  readonly f: 'get' | 'put' | 'append';
  /** The argument of put and append; unused by get. */
  readonly value: string;
}

/** The string that a get returned (unused for put and append), or `unknown` when it may not have happened. */
export type KvOutput = { readonly status: 'ok'; readonly value: string } | { readonly status: 'unknown' };

/** Each key holds a string, initially empty; keys are independent (one partition each). */
export const kvModel: Model<string, KvInput, KvOutput> = {
  name: 'key-value',
  init: () => '',
  step(state, input, output): string | Illegal {
    switch (input.f) {
      case 'get':
        return output.status !== 'ok' || output.value === state ? state : ILLEGAL;
      case 'put':
        return input.value;
      case 'append':
        return state + input.value;
    }
  },
  hash: hashString,
  equal: (a, b) => a === b,
  partitionKey: (input) => input.key,
  isNoOp: (input, output) => input.f === 'get' && output.status === 'unknown',
  isReadOnly: (input) => input.f === 'get',
  unknownOutput: () => ({ status: 'unknown' }),
  describeOperation(input, output): string {
    if (input.f === 'get') return `get(${JSON.stringify(input.key)}) -> ${output.status === 'ok' ? JSON.stringify(output.value) : '?'}`;
    return `${input.f}(${JSON.stringify(input.key)}, ${JSON.stringify(input.value)})${output.status === 'unknown' ? ' -> ?' : ''}`;
  },
  describeState: (s) => JSON.stringify(s),
};

/** The register model from another initial state (Porcupine's etcd data needs nil; 0 is a known mistake). */
export function registerModelStartingAt(initial: RegisterState): Model<RegisterState, RegisterInput, RegisterOutput> {
  return { ...registerModel, name: `register from ${initial ?? 'nil'}`, init: () => initial };
}
