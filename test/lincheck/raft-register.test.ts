// The Raft register: three real RaftNode processes (the node, level storage and TCP transport that
// the sitter uses) run integer registers as their state machine, each in its own network namespace
// on a bridge (test/jepsen-like/net.ts), as the chaos harness's peers are. Clients (in the root
// namespace) read, write and compare-and-set through any node: followers forward proposals to the
// leader and serve reads through ReadIndex. Meanwhile a nemesis kills nodes (SIGKILL, restart from
// disk), pauses them (SIGSTOP longer than an election timeout, so that a paused leader wakes up
// deposed), partitions them for real (iptables DROP rules in the namespaces: the leader or a
// follower isolated, one direction cut, the clients cut off from one node), and does two of these
// at once. The history must be linearizable. The same for the cluster store (src/store) on those
// nodes: its compare-and-set of the state by version, and its linearizable readState.
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { canManageNetworks, createNetwork, cut, cutClients, destroyNetwork, healNetwork, isolate, RAFT_TEST_PREFIX, type Network } from '../jepsen-like/net.js';
import { Rng } from '../helpers/rng.js';
import { waitFor } from '../../tools/lib/wait.js';
import { ProcCluster } from '../../tools/lib/raft-cluster.js';
import { checkOperations, describeCounterexample } from './check.js';
import { registerModel, registerModelStartingAt, type RegisterInput, type RegisterOutput } from './models.js';
import type { RegisterOperation } from './parse.js';

const SEED = 20261206;
const IDS = ['r1', 'r2', 'r3'];
const CLIENTS = 4;
/** Faults go on for this long, and then until every kind was injected once (at most twice as long). */
const RUN_MS = 36_000;
const OP_TIMEOUT_MS = 3000;
/** Registers in use at a time, and operations per register before moving to fresh ones. */
const KEYS = 3;
const OPS_PER_KEY = 100;
/** Refused before anything was proposed, or a proposal that a new leader replaced: no effect. */
const NO_EFFECT = new Set(['MANATEE_ERR_RAFT_NO_LEADER', 'MANATEE_ERR_RAFT_PROPOSAL_DROPPED', 'MANATEE_ERR_RAFT_PROPOSAL_LOST', 'MANATEE_ERR_RAFT_OVERLOADED']);

let cluster: ProcCluster | null = null;
let network: Network | null = null;
afterEach(async () => {
  if (cluster !== null) for (const n of cluster.nodes.values()) n.child?.kill('SIGCONT');
  await cluster?.close();
  cluster = null;
  if (network !== null) await destroyNetwork(network.prefix);
  network = null;
});


/** Three nodes, each in a namespace of its own. */
async function nsCluster(mode: 'register' | 'store', rng: Rng): Promise<ProcCluster> {
  network = await createNetwork(`${RAFT_TEST_PREFIX}${randomBytes(3).toString('hex').slice(0, 5)}`, IDS, () => rng.int(0, 1_000_000));
  return ProcCluster.create(IDS, { mode, tickMs: 50, electionTicks: 10, snapshotEveryEntries: 300, keepEntriesAfterSnapshot: 50, hosts: network.hosts });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

type Sent = { kind: 'ok'; body: Record<string, unknown> } | { kind: 'mismatch'; currentVersion: number } | { kind: 'no-effect'; why: string } | { kind: 'unknown'; why: string };

/** One HTTP request to a node: its answer, or whether the request may have had an effect. */
async function send(c: ProcCluster, id: string, path: string, body?: string): Promise<Sent> {
  try {
    const r = await fetch(c.url(id, path), { method: body === undefined ? 'GET' : 'POST', ...(body !== undefined ? { body } : {}), signal: AbortSignal.timeout(OP_TIMEOUT_MS) });
    const v = (await r.json()) as Record<string, unknown>;
    if (r.status === 200) return { kind: 'ok', body: v };
    // The store applied the compare-and-set and the version differed: a definite failed comparison.
    if (r.status === 409) return { kind: 'mismatch', currentVersion: v['currentVersion'] as number };
    const code = String(v['code']);
    return NO_EFFECT.has(code) ? { kind: 'no-effect', why: code } : { kind: 'unknown', why: code };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    // Refused: the request never reached the node. Anything else (a timeout, a reset) may have.
    return cause === 'ECONNREFUSED' ? { kind: 'no-effect', why: cause } : { kind: 'unknown', why: (err as Error).message };
  }
}

/**
 * Faults for RUN_MS, one at a time from a seeded order (and on until each kind came once, at most three times as long): SIGKILL
 * of the leader or a follower (restarted from its disk), SIGSTOP of the leader or a follower past an
 * election timeout, the leader or a follower isolated from the other nodes, one direction between
 * the leader and a follower cut, the clients cut off from one node, and two at once (the leader
 * paused, then a follower killed: no quorum for a while; or a follower isolated, then the leader
 * paused).
 */
async function nemesis(c: ProcCluster, net: Network, rng: Rng, now: () => number, faults: string[]): Promise<void> {
  const pause = (id: string): void => { c.node(id).child?.kill('SIGSTOP'); };
  const resume = (id: string): void => { c.node(id).child?.kill('SIGCONT'); };
  let round: (typeof KINDS)[number][] = [];
  while (now() < RUN_MS || (now() < 3 * RUN_MS && !KINDS.every((k) => faults.includes(k)))) {
    await sleep(rng.int(1000, 2500));
    const leader = await c.leader(IDS, 60_000);
    if (round.length === 0) round = rng.shuffle(KINDS);
    const kind = round.shift()!;
    const follower = rng.pick(IDS.filter((id) => id !== leader));
    faults.push(kind);
    if (kind === 'kill-leader' || kind === 'kill-follower') {
      const id = kind === 'kill-leader' ? leader : follower;
      await c.kill(id, 'SIGKILL');
      await sleep(rng.int(1000, 3000));
      await c.start(id);
    } else if (kind === 'pause-leader' || kind === 'pause-follower') {
      // Longer than an election timeout (10 ticks of 50 ms, randomized up to 2x): a paused leader wakes up deposed.
      const id = kind === 'pause-leader' ? leader : follower;
      pause(id);
      await sleep(rng.int(1500, 4000));
      resume(id);
    } else if (kind === 'isolate-leader' || kind === 'isolate-follower') {
      // Past an election timeout: the majority elects a new leader while the old one still thinks it leads.
      await isolate(net, [kind === 'isolate-leader' ? leader : follower]);
      await sleep(rng.int(1500, 4000));
      await healNetwork(net);
    } else if (kind === 'cut-oneway') {
      const [from, to] = rng.next() < 0.5 ? [leader, follower] : [follower, leader];
      await cut(net, from, to);
      await sleep(rng.int(1500, 4000));
      await healNetwork(net);
    } else if (kind === 'cut-clients') {
      await cutClients(net, rng.pick(IDS));
      await sleep(rng.int(1500, 4000));
      await healNetwork(net);
    } else if (rng.next() < 0.5) {
      pause(leader);
      await sleep(rng.int(300, 1200));
      await c.kill(follower, 'SIGKILL');
      await sleep(rng.int(1000, 2500));
      resume(leader);
      await c.start(follower);
    } else {
      await isolate(net, [follower]);
      await sleep(rng.int(300, 1200));
      pause(leader);
      await sleep(rng.int(1000, 2500));
      resume(leader);
      await healNetwork(net);
    }
  }
}

const KINDS = ['kill-leader', 'kill-follower', 'pause-leader', 'pause-follower', 'isolate-leader', 'isolate-follower', 'cut-oneway', 'cut-clients', 'overlap'] as const;
const ALL_FAULTS = new Set<string>(KINDS);

async function sameOnEveryNode(c: ProcCluster): Promise<void> {
  await waitFor('all nodes applied the same sequence', async () => {
    const sts = await Promise.all(IDS.map((id) => c.status(id)));
    return sts.every((s) => s !== null && s.count === sts[0]!.count && s.chain === sts[0]!.chain) ? true : null;
  }, { timeoutMs: 60_000, intervalMs: 250 });
}

describe.skipIf(!canManageNetworks())('Raft register on real RaftNode processes in network namespaces', () => {
  it('is linearizable through kills, pauses of the leader, real partitions, and two faults at once; reads go through ReadIndex on any node', { timeout: 300_000 }, async () => {
    const rng = new Rng(SEED);
    const c = await nsCluster('register', rng.fork(99));
    cluster = c;
    await Promise.all(IDS.map((id) => c.start(id)));
    await c.leader();
    const ops: RegisterOperation[] = [];
    const readsByNode = new Map<string, number>();
    const faults: string[] = [];
    let stop = false;
    let started = 0;
    const t0 = performance.now();
    const now = (): number => performance.now() - t0;

    const client = async (client: number): Promise<void> => {
      const r = rng.fork(client);
      const seen = new Map<string, number | null>();
      let seq = 0;
      while (!stop) {
        const key = String(Math.floor(started++ / (KEYS * OPS_PER_KEY)) * KEYS + r.int(0, KEYS - 1));
        const node = r.pick(IDS);
        const roll = r.int(0, 99);
        const known = seen.get(key);
        const value = (client + 1) * 1_000_000 + ++seq;
        const input: RegisterInput = roll < 50 ? { key, f: 'read' } : roll < 75 || known === undefined || known === null ? { key, f: 'write', value } : { key, f: 'cas', from: known, to: value };
        const callMs = now();
        const sent = input.f === 'read'
          ? await send(c, node, `/register?key=${key}`)
          : await send(c, node, '/propose', JSON.stringify(input));
        const returnMs = now();
        let output: RegisterOutput | null = null;
        if (sent.kind === 'ok') {
          if (input.f === 'read') {
            const v = sent.body['value'] as number | null;
            output = { status: 'ok', value: v };
            seen.set(key, v);
            readsByNode.set(node, (readsByNode.get(node) ?? 0) + 1);
          } else {
            const applied = (sent.body['result'] as { ok: boolean }).ok;
            output = applied ? { status: 'ok' } : input.f === 'cas' ? { status: 'fail' } : null;
            if (applied) seen.set(key, input.f === 'write' ? input.value : input.to);
          }
        } else if (sent.kind === 'unknown' && input.f !== 'read') {
          output = { status: 'unknown' };
        }
        if (output !== null) ops.push({ client, input, output, callMs, returnMs: output.status === 'unknown' ? Infinity : returnMs });
        await sleep(sent.kind === 'ok' ? r.int(5, 30) : r.int(50, 150));
      }
    };

    const clients = Array.from({ length: CLIENTS }, (_, i) => client(i));
    await nemesis(c, network!, rng, now, faults);
    await c.leader(IDS, 60_000);
    await sleep(2000);
    stop = true;
    await Promise.all(clients);

    const report = checkOperations(registerModel, ops, { timeBudgetMs: 60_000 });
    const explanation = report.counterexample === null ? report.reason ?? '' : describeCounterexample(registerModel, report.counterexample).join('\n');
    console.log(`raft register: ${ops.length} operations on ${report.partitions.length} keys, ${faults.length} faults (${faults.join(', ')}), reads per node ${JSON.stringify(Object.fromEntries(readsByNode))}: ${report.verdict} in ${report.elapsedMs.toFixed(0)} ms`);
    expect(report.verdict, explanation).toBe('linearizable');
    expect(ops.length).toBeGreaterThan(300);
    expect(ops.filter((o) => o.output.status === 'unknown').length).toBeGreaterThan(0);
    expect(new Set(faults)).toEqual(ALL_FAULTS);
    // Reads went to every node: two of them are followers at any time, so ReadIndex on followers is exercised.
    for (const id of IDS) expect(readsByNode.get(id) ?? 0, id).toBeGreaterThan(20);
    await sameOnEveryNode(c);
  });

  it('the cluster store: compare-and-set of the state by its version and readState are linearizable through the same faults', { timeout: 300_000 }, async () => {
    const rng = new Rng(SEED + 1);
    const c = await nsCluster('store', rng.fork(99));
    cluster = c;
    await Promise.all(IDS.map((id) => c.start(id)));
    await c.leader();
    const ops: RegisterOperation[] = [];
    const faults: string[] = [];
    let stop = false;
    const t0 = performance.now();
    const now = (): number => performance.now() - t0;
    // The register is the state's version: putState(expectVersion v) is cas(v, v + 1); readState reads it.
    const client = async (client: number): Promise<void> => {
      const r = rng.fork(client);
      let known: number | null = null;
      while (!stop) {
        const node = r.pick(IDS);
        const callMs = now();
        if (known === null || r.int(0, 99) < 40) {
          const sent = await send(c, node, '/state');
          if (sent.kind === 'ok') {
            known = sent.body['version'] as number;
            ops.push({ client, input: { key: 'state', f: 'read' }, output: { status: 'ok', value: known }, callMs, returnMs: now() });
          }
          await sleep(sent.kind === 'ok' ? r.int(5, 30) : r.int(50, 150));
          continue;
        }
        const from: number = known;
        const sent = await send(c, node, '/state', JSON.stringify({ expectVersion: from }));
        const returnMs = now();
        const input: RegisterInput = { key: 'state', f: 'cas', from, to: from + 1 };
        if (sent.kind === 'ok') {
          expect(sent.body['version']).toBe(from + 1);
          ops.push({ client, input, output: { status: 'ok' }, callMs, returnMs });
          known = from + 1;
        } else if (sent.kind === 'mismatch') {
          ops.push({ client, input, output: { status: 'fail' }, callMs, returnMs });
          known = sent.currentVersion;
        } else if (sent.kind === 'unknown') {
          ops.push({ client, input, output: { status: 'unknown' }, callMs, returnMs: Infinity });
        }
        await sleep(sent.kind === 'ok' || sent.kind === 'mismatch' ? r.int(5, 30) : r.int(50, 150));
      }
    };
    const clients = Array.from({ length: CLIENTS }, (_, i) => client(i));
    await nemesis(c, network!, rng, now, faults);
    await c.leader(IDS, 60_000);
    await sleep(2000);
    stop = true;
    await Promise.all(clients);

    const report = checkOperations(registerModelStartingAt(0), ops, { timeBudgetMs: 60_000 });
    const explanation = report.counterexample === null ? report.reason ?? '' : describeCounterexample(registerModel, report.counterexample).join('\n');
    const count = (s: string): number => ops.filter((o) => o.output.status === s).length;
    console.log(`raft store: ${ops.length} operations (${count('ok')} ok, ${count('fail')} version mismatches, ${count('unknown')} unknown), ${faults.length} faults (${faults.join(', ')}): ${report.verdict} in ${report.elapsedMs.toFixed(0)} ms`);
    expect(report.verdict, explanation).toBe('linearizable');
    expect(ops.filter((o) => o.input.f === 'cas' && o.output.status === 'ok').length).toBeGreaterThan(100);
    expect(count('fail')).toBeGreaterThan(0);
    expect(new Set(faults)).toEqual(ALL_FAULTS);
    await sameOnEveryNode(c);
  });
});
