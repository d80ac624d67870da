// npm run chaos -- [options]: one chaos run against a shard of real peers in network namespaces.
// Prints the verdict and the results directory; exits 0 when valid, 1 when invalid, 2 on a harness error.
// npm run chaos -- cleanup: removes what a crashed run left behind (namespaces, bridges, processes, data).
import { Command, InvalidArgumentError } from 'commander';
import { randomInt } from 'node:crypto';
import { resolve } from 'node:path';
import { BACKENDS, cleanupLeftovers, DEFAULT_OPTIONS, type ChaosBackend, leftoverWorkDirs, parseWorkloads, runChaos, verdictLines, WORKLOAD_KINDS, type WorkloadKind } from './harness.js';
import { FAULT_KINDS } from './history.js';
import { leftoverPrefixes } from './net.js';
import { parseFaultKinds } from './nemesis.js';

function int(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

function workloads(v: string): WorkloadKind[] {
  try {
    return parseWorkloads(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

function backend(v: string): ChaosBackend {
  if (!(BACKENDS as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${BACKENDS.join(', ')}`);
  return v as ChaosBackend;
}

function log(line: string): void {
  process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
}

async function main(): Promise<number> {
  const program = new Command()
    .name('npm run chaos --')
    .description('Chaos test of a Manatee shard: peers in network namespaces, faults, concurrent clients, a checked history')
    .option('--time <s>', 'seconds of fault injection', int(10, 86_400), DEFAULT_OPTIONS.timeS)
    .option('--seed <n>', 'seed of the fault schedule and the clients (replays a run)', int(0, 2 ** 32 - 1))
    .option('--faults <kinds>', `comma-separated fault kinds, or "all": ${FAULT_KINDS.join(', ')}`, 'all')
    .option('--workload <kinds>', `comma-separated workloads: ${WORKLOAD_KINDS.join(', ')} (writes: nothing lost; register: linearizable)`, workloads, [...WORKLOAD_KINDS])
    .option('--register-clients <n>', 'concurrent clients of the register workload', int(1, 64), DEFAULT_OPTIONS.registerClients)
    .option('--peers <n>', 'peers in the shard', int(3, 7), DEFAULT_OPTIONS.peers)
    .option('--backend <kind>', `storage of the peers' data: ${BACKENDS.join(' or ')} (zfs: a zfs-fuse pool per host; the disk faults need it)`, backend, DEFAULT_OPTIONS.backend)
    .option('--writers <n>', 'concurrent writing clients', int(1, 64), DEFAULT_OPTIONS.writers)
    .option('--readers <n>', 'concurrent clients reading from replicas', int(0, 16), DEFAULT_OPTIONS.readers)
    .option('--session-timeout-ms <ms>', 'the peers\' session timeout', int(500, 60_000), DEFAULT_OPTIONS.sessionTimeoutMs)
    .option('--gap-ms <ms>', 'report windows without a successful write at least this long', int(100, 600_000), DEFAULT_OPTIONS.gapMs)
    .option('--results <dir>', 'where the results directory goes', DEFAULT_OPTIONS.resultsDir)
    .option('--no-each-kind', 'stop at --time even if some kinds of fault were not injected yet')
    .option('--keep-data', 'keep the peers\' data directories (under /tmp/manatee-chaos-<prefix>)')
    .option('--no-tls', 'plain TCP everywhere (default: TLS everywhere, a shard CA and a certificate per peer, as a real shard runs)')
    .addHelpText('after', '\nnpm run chaos -- cleanup   removes the namespaces, processes and data that a crashed run left behind');

  if (process.argv[2] === 'cleanup') {
    const prefixes = [...new Set([...(await leftoverPrefixes()), ...leftoverWorkDirs()])].sort();
    if (prefixes.length === 0) log('cleanup: nothing left behind');
    await cleanupLeftovers(prefixes, log);
    return 0;
  }
  program.parse(process.argv);
  const o = program.opts<{ time: number; seed?: number; faults: string; workload: WorkloadKind[]; registerClients: number; peers: number; backend: ChaosBackend; writers: number; readers: number; sessionTimeoutMs: number; gapMs: number; results: string; eachKind: boolean; keepData?: boolean; tls: boolean }>();
  if (process.getuid?.() !== 0) {
    process.stderr.write('chaos: must run as root (it creates network namespaces and iptables rules)\n');
    return 2;
  }
  const summary = await runChaos({
    ...DEFAULT_OPTIONS,
    timeS: o.time,
    seed: o.seed ?? randomInt(0, 2 ** 32 - 1),
    faults: parseFaultKinds(o.faults),
    workloads: o.workload,
    registerClients: o.registerClients,
    peers: o.peers,
    backend: o.backend,
    writers: o.writers,
    readers: o.readers,
    sessionTimeoutMs: o.sessionTimeoutMs,
    gapMs: o.gapMs,
    resultsDir: resolve(o.results),
    eachKind: o.eachKind,
    keepData: o.keepData === true,
    tls: o.tls,
    log,
  });
  for (const line of verdictLines(summary)) process.stdout.write(`${line}\n`);
  return summary.valid ? 0 : 1;
}

main().then(
  (code) => { process.exit(code); },
  (err: unknown) => {
    process.stderr.write(`chaos: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(2);
  },
);
