// The model's types and the API's schemas agree (src/wire/schemas.ts is the contract; src/model
// cannot import it). Checked by the compiler (npm run typecheck compiles test/): a field that the
// model has and the schema lacks would be dropped from the answer by fastify's serializer without a
// word, and one the schema has and the model lacks is a promise the sitter does not keep. The
// runtime part checks the schemas against real answers of an API.
import { describe, expect, expectTypeOf, it } from 'vitest';
import { Ajv } from 'ajv';
import type { ClusterState, HistoryEntry, PeerInfo, SitterStatus } from '../../src/model/index.js';
import type { FromSchema } from '../../src/wire/index.js';
import {
  clusterStateSchema, historyEntrySchema, peerInfoSchema, shardReportSchema, sitterStatusSchema, versionedStateSchema,
} from '../../src/wire/index.js';
import { buildShardReport } from '../../src/api/shard.js';
import { MemoryStore, peer, statusOf, threePeerState } from '../../tools/lib/memory-peer.js';

/** An object type with its nulls and arrays peeled off (what its keys are checked on). */
type Inner<T> = NonNullable<T> extends readonly (infer E)[] ? Inner<E> : NonNullable<T>;
/** The paths of the fields that A has and B lacks, at any depth ("lease", "postgres.error"...); records' open keys are not fields. */
type MissingIn<A, B> = Inner<A> extends object
  ? Inner<B> extends object
    ? { [K in keyof Inner<A> & string]-?: string extends K ? never : K extends keyof Inner<B> ? (MissingIn<Inner<A>[K], Inner<B>[K]> extends infer P extends string ? `${K}.${P}` : never) : K }[keyof Inner<A> & string]
    : never
  : never;

type Wire<S> = FromSchema<S>;

describe('the model and the wire contract', () => {
  it('the check itself finds a field missing at any depth', () => {
    expectTypeOf<MissingIn<{ a: { b: string; c: number }[] }, { a: { b: string }[] }>>().toEqualTypeOf<'a.c'>();
    expectTypeOf<MissingIn<{ a: string }, { a: string; b: string }>>().toEqualTypeOf<never>();
  });

  it('PeerInfo, ClusterState and HistoryEntry are exactly their schemas', () => {
    expectTypeOf<Wire<typeof peerInfoSchema>>().toEqualTypeOf<PeerInfo>();
    expectTypeOf<Wire<typeof clusterStateSchema>>().toEqualTypeOf<ClusterState>();
    expectTypeOf<Wire<typeof historyEntrySchema>>().toEqualTypeOf<HistoryEntry>();
  });

  it('every SitterStatus fits GET /status\'s schema, and the two have the same fields at every depth', () => {
    expectTypeOf<SitterStatus>().toExtend<Wire<typeof sitterStatusSchema>>();
    expectTypeOf<MissingIn<SitterStatus, Wire<typeof sitterStatusSchema>>>().toEqualTypeOf<never>();
    expectTypeOf<MissingIn<Wire<typeof sitterStatusSchema>, SitterStatus>>().toEqualTypeOf<never>();
  });

  it('real answers validate against their schemas', () => {
    const ajv = new Ajv({ strict: false });
    const peers = [peer('a'), peer('b'), peer('c')];
    const store = new MemoryStore(threePeerState(peers), peers);
    const status = statusOf(peers[0]!, store);
    const report = buildShardReport(status, new Map([['b', { ok: true, status: statusOf(peers[1]!, store) }], ['c', { ok: false, error: 'ECONNREFUSED' }]]));
    for (const [schema, value] of [
      [sitterStatusSchema, status], [shardReportSchema, report], [versionedStateSchema, { state: status.state, version: 3 }],
    ] as const) {
      const validate = ajv.compile(schema);
      expect(validate(value), JSON.stringify(validate.errors)).toBe(true);
    }
    // And a value that does not fit is refused (the check can fail).
    expect(ajv.compile(shardReportSchema)({ ...report, peers: [{ id: 'a' }] })).toBe(false);
  });
});
