// Benchmark: what an idle Raft group costs in CPU (heartbeats and ticks), the part of the sitters'
// cost that does not depend on any write. Three Manatee Raft node processes on loopback, nothing
// proposed; each round measures every process's CPU (utime + stime from /proc) over a window.
// Interleaved rounds of two configurations at the same tick and election timeout: heartbeats
// every tick (the old default, the baseline) and every 2 ticks (the default since).
//
//   npx tsx tools/bench/raft-idle.ts [--rounds 3] [--seconds 15] [--tick-ms 50] [--election-ticks 10]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ProcCluster } from '../lib/raft-cluster.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '15' },
    'tick-ms': { type: 'string', default: '50' },
    'election-ticks': { type: 'string', default: '10' },
  },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const tickMs = Number(values['tick-ms']);
const electionTicks = Number(values['election-ticks']);
for (const [name, v] of [['--rounds', rounds], ['--seconds', seconds], ['--tick-ms', tickMs], ['--election-ticks', electionTicks]] as const) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${String(v)}`);
}
if (electionTicks < 3) throw new Error('--election-ticks must be at least 3 (heartbeats every 2 ticks must stay below it)');

const CLK_TCK_MS = 10; // USER_HZ is 100 on Linux

function cpuMs(pid: number): number {
  // Fields after the command name: state is [0], utime [11], stime [12].
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * CLK_TCK_MS;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** CPU ms per second of the whole group (three processes) while idle. */
async function measure(heartbeatTicks: number): Promise<{ groupMsPerSec: number; perNode: string }> {
  const ids = ['m1', 'm2', 'm3'];
  const c = await ProcCluster.create(ids, { mode: 'count', tickMs, electionTicks, heartbeatTicks });
  try {
    await Promise.all(ids.map((id) => c.start(id)));
    const leader = await c.leader();
    // Start-up (module loading, the election) is not what is measured.
    await new Promise((r) => setTimeout(r, 3000));
    const pids = ids.map((id) => c.node(id).child!.pid!);
    const before = pids.map(cpuMs);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const elapsedS = (performance.now() - t0) / 1000;
    const used = pids.map((p, i) => cpuMs(p) - before[i]!);
    const perNode = ids.map((id, i) => `${id}${id === leader ? '(leader)' : ''}=${(used[i]! / elapsedS).toFixed(1)}`).join(' ');
    return { groupMsPerSec: used.reduce((a, b) => a + b, 0) / elapsedS, perNode };
  } finally {
    await c.close();
  }
}

console.log(`raft idle bench: 3 nodes on loopback, nothing proposed, tick ${tickMs} ms, election timeout ${electionTicks} ticks; ${rounds} interleaved rounds of ${seconds} s; CPU ms per second (utime + stime)`);
const configs = [{ name: 'heartbeat every tick (baseline)', heartbeatTicks: 1 }, { name: 'heartbeat every 2 ticks (default)', heartbeatTicks: 2 }];
const results = new Map<string, number[]>();
for (let round = 1; round <= rounds; round++) {
  for (const cfg of round % 2 === 1 ? configs : [...configs].reverse()) {
    const r = await measure(cfg.heartbeatTicks);
    console.log(`  round ${round}: ${cfg.name.padEnd(34)} group ${r.groupMsPerSec.toFixed(1).padStart(6)} ms/s  (${r.perNode})`);
    results.set(cfg.name, [...(results.get(cfg.name) ?? []), r.groupMsPerSec]);
  }
}
const base = median(results.get(configs[0]!.name)!);
const now = median(results.get(configs[1]!.name)!);
console.log(`medians: ${configs[0]!.name} ${base.toFixed(1)} ms/s, ${configs[1]!.name} ${now.toFixed(1)} ms/s; ratio ${(now / base).toFixed(2)}x`);
