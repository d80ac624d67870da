// The register workload's verdict in a chaos summary, from hand-made histories: the files it
// writes, the operations that cannot be ordered, and the workload list of `npm run chaos`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRegisterJsonl } from '../lincheck/parse.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';
import { parseWorkloads } from './harness.js';
import { judgeRegister, opKey, type RegisterOperation } from './register.js';

function op(client: number, key: string, f: 'read' | 'write', value: number | null, callMs: number, returnMs: number): RegisterOperation {
  return f === 'read'
    ? { client, input: { key, f }, output: { status: 'ok', value }, callMs, returnMs }
    : { client, input: { key, f, value: value! }, output: { status: 'ok' }, callMs, returnMs };
}

describe('register workload verdict', () => {
  let tmp: { path: string; cleanup: () => Promise<void> };
  beforeAll(async () => { tmp = await makeTmpDir('lc-register'); });
  afterAll(async () => { await tmp.cleanup(); });

  it('a linearizable history: the verdict, and register.jsonl that npm run lincheck reads back', () => {
    const ops = [op(10, '0', 'write', 1, 1000, 1010), op(11, '0', 'read', 1, 1020, 1030), op(10, '1', 'read', null, 1000, 1005)];
    const v = judgeRegister(ops, tmp.path, 10_000);
    expect(v).toMatchObject({ verdict: 'linearizable', operations: 3, keys: 2, reason: null, cannotBeOrdered: [], picture: null });
    expect(parseRegisterJsonl(readFileSync(join(tmp.path, 'register.jsonl'), 'utf8'))).toEqual(ops);
  });

  it('a stale read from an old primary: not linearizable, with the operations that cannot be ordered and their picture', () => {
    const ops = [
      op(10, '3', 'write', 1, 1000, 1010),
      op(11, '3', 'write', 2, 1020, 1030),
      // A client that still follows the old primary reads the old value after the new write was acknowledged.
      op(12, '3', 'read', 1, 1040, 1050),
      op(10, '4', 'write', 5, 1000, 1010),
    ];
    // Where each operation went, as the workload records it: the stale read names the old primary.
    const sentTo = new Map([[opKey(ops[0]!), { peer: 'peer1', generation: 3 }], [opKey(ops[1]!), { peer: 'peer2', generation: 4 }], [opKey(ops[2]!), { peer: 'peer1', generation: 3 }]]);
    const v = judgeRegister(ops, tmp.path, 10_000, sentTo);
    expect(v.verdict).toBe('not linearizable');
    expect(v.cannotBeOrdered).toEqual([
      'client 10: write[3](1) [1000, 1010] on peer1 (generation 3)',
      'client 11: write[3](2) [1020, 1030] on peer2 (generation 4)',
      'client 12: read[3] -> 1 [1040, 1050] on peer1 (generation 3)',
    ]);
    expect(v.picture).toBe('register-violation.svg');
    expect(readFileSync(join(tmp.path, 'register-violation.svg'), 'utf8')).toContain('read[3] -&gt; 1');
  });

  it('the workload list of npm run chaos: known kinds only, named in the error', () => {
    expect(parseWorkloads('register')).toEqual(['register']);
    expect(parseWorkloads('writes, register,writes')).toEqual(['writes', 'register']);
    expect(() => parseWorkloads('register,raft')).toThrow('unknown workload raft; expected a comma-separated list of writes, register');
    expect(() => parseWorkloads('')).toThrow('unknown workload (none)');
  });
});
