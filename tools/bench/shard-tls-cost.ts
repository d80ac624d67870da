// What TLS costs a test shard (tools/lib/shard.ts, which the integration tests start with TLS by
// default): shards with and without TLS in interleaved rounds, each measured the same way, in
// counts rather than wall-clock (the machine is shared):
// - the CA and the three peer certificates made before the start (CPU of the openssl children),
// - per sitter, over an idle window once the chain is whole: CPU seconds a minute (utime + stime
//   of /proc/<pid>/stat) and voluntary context switches a second (every thread's, /proc/<pid>/task),
// - the wall time from the start to the whole chain (noisy; printed for the record only).
//
//   npx tsx tools/bench/shard-tls-cost.ts [--rounds 3] [--window-s 20]
//
// Prints one line per shard, then the medians per mode and the ratio TLS / plain of each figure.
import { readdirSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Shard } from '../lib/shard.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, 'window-s': { type: 'string', default: '20' } } });
const rounds = Number(values.rounds);
const windowS = Number(values['window-s']);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new Error('--rounds must be an integer in 1..20');
if (!Number.isInteger(windowS) || windowS < 5 || windowS > 600) throw new Error('--window-s must be an integer in 5..600');

const TICK_S = 0.01;

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_S;
}

/** Voluntary context switches of every thread of a process. */
function voluntarySwitches(pid: number): number {
  let n = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      const m = /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8'));
      n += Number(m?.[1] ?? 0);
    } catch {
      // the thread ended
    }
  }
  return n;
}

/** CPU seconds of this process's waited-for children (cutime + cstime): the openssl runs. */
function childrenCpuSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) * TICK_S;
}

interface Sample { tls: boolean; certCpuS: number; chainS: number; cpuPerMin: number; switchesPerS: number }

async function one(tls: boolean): Promise<Sample> {
  const c0 = childrenCpuSeconds();
  const t0 = Date.now();
  const shard = await Shard.create({ prefix: tls ? 'tc' : 'pc', tls });
  // Only openssl runs as a waited-for child while the fixture makes the certificates (the sitters
  // run on until the teardown).
  const certCpuS = childrenCpuSeconds() - c0;
  try {
    await shard.waitForChain();
    const chainS = (Date.now() - t0) / 1000;
    const pids = shard.peers.map((p) => shard.sitterPid(p)).filter((p): p is number => p !== null);
    if (pids.length !== shard.peers.length) throw new Error('a sitter is not running');
    const cpu0 = pids.map(cpuSeconds);
    const sw0 = pids.map(voluntarySwitches);
    const w0 = Date.now();
    await new Promise((r) => setTimeout(r, windowS * 1000));
    const seconds = (Date.now() - w0) / 1000;
    const cpu = pids.map((p, i) => cpuSeconds(p) - (cpu0[i] ?? 0));
    const sw = pids.map((p, i) => voluntarySwitches(p) - (sw0[i] ?? 0));
    const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    return { tls, certCpuS, chainS, cpuPerMin: (avg(cpu) / seconds) * 60, switchesPerS: avg(sw) / seconds };
  } finally {
    await shard.teardown();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

const samples: Sample[] = [];
for (let r = 0; r < rounds; r++) {
  // Alternate which mode goes first, so that a drift in the machine's load does not favour one.
  for (const tls of r % 2 === 0 ? [true, false] : [false, true]) {
    const s = await one(tls);
    samples.push(s);
    console.log(`round ${r + 1} ${tls ? 'tls  ' : 'plain'}: certificates ${s.certCpuS.toFixed(2)} CPU s; chain whole after ${s.chainS.toFixed(1)} s; idle, per sitter: ${s.cpuPerMin.toFixed(2)} CPU s/min, ${s.switchesPerS.toFixed(1)} voluntary switches/s`);
  }
}
const of = (tls: boolean, k: keyof Omit<Sample, 'tls'>): number => median(samples.filter((s) => s.tls === tls).map((s) => s[k]));
for (const k of ['certCpuS', 'chainS', 'cpuPerMin', 'switchesPerS'] as const) {
  const t = of(true, k);
  const p = of(false, k);
  console.log(`median ${k}: tls ${t.toFixed(2)}, plain ${p.toFixed(2)}${p > 0 ? `, ratio ${(t / p).toFixed(2)}` : ''}`);
}
