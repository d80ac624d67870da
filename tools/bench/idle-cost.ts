// Benchmark: what each sitter of an idle dev shard costs the machine, in counts rather than
// wall-clock (issue #11: on a 2-core box every wake-up of a sitter takes CPU and cache from
// PostgreSQL). Per sitter, over a clean window (nothing attached): CPU seconds a minute (utime +
// stime from /proc/<pid>/stat) and voluntary / involuntary context switches a second (summed over
// every thread in /proc/<pid>/task). Then, over a shorter window under `strace -f -yy`: syscalls a
// second, and the event loop's wake-ups a second (blocking epoll_pwait returns on the main thread),
// split into timer wake-ups (returned no event) and I/O wake-ups by what woke it (the fd in the
// event: Raft transport inbound / outbound link, PostgreSQL, API, thread pool). strace slows the
// process, so its rates are for the breakdown; the clean window's figures are the ones to compare.
// With --census the shard is started with tools/bench/timer-census.ts preloaded, and each sitter's
// timer fires a second are listed by the line of code that set the timer.
//
//   npx tsx tools/bench/idle-cost.ts [--dir /tmp/manatee-idle-cost] [--port-base 36300] [--seconds 60]
//        [--strace-seconds 10] [--census] [--keep]
//
// It uses the dev shard in --dir when all its sitters run, or starts one there (tools/dev-cluster up
// --no-tls, as tools/bench/datapath.ts) and stops it at the end unless --keep.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readRecord, type ClusterRecord } from '../lib/dev-record.js';
import { isRunning } from '../lib/processes.js';

const { values } = parseArgs({
  options: {
    dir: { type: 'string', default: '/tmp/manatee-idle-cost' },
    'port-base': { type: 'string', default: '36300' },
    seconds: { type: 'string', default: '60' },
    'strace-seconds': { type: 'string', default: '10' },
    settle: { type: 'string', default: '10' },
    census: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});

function intArg(name: string, v: string | undefined, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer in ${min}..${max} (got ${v ?? 'nothing'})`);
  return n;
}
const seconds = intArg('seconds', values.seconds, 1, 3600);
const straceSeconds = intArg('strace-seconds', values['strace-seconds'], 0, 600);
const settleS = intArg('settle', values.settle, 0, 600);
const portBase = intArg('port-base', values['port-base'], 1024, 65000);
const dir = resolve(values.dir);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const censusDir = join(dir, 'census');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function devCluster(cmd: 'up' | 'down', env: NodeJS.ProcessEnv = process.env): void {
  const args = [join(root, 'tools/dev-cluster'), cmd, '--dir', dir, ...(cmd === 'up' ? ['--no-tls', '--port-base', String(portBase)] : [])];
  const r = spawnSync('bash', args, { cwd: root, stdio: 'inherit', env });
  if (r.status !== 0) throw new Error(`tools/dev-cluster ${cmd} exited with ${r.status ?? r.signal ?? '?'}`);
}

interface Sitter { readonly id: string; readonly pid: number; readonly apiUrl: string; readonly ports: { pg: number; api: number; raft: number }; label: string }

function sittersOf(rec: ClusterRecord): Sitter[] {
  const out: Sitter[] = [];
  for (const p of rec.peers) {
    const proc = [...rec.processes].reverse().find((x) => x.kind === 'sitter' && x.peer === p.id && isRunning(x));
    if (proc !== undefined) out.push({ id: p.id, pid: proc.pid, apiUrl: p.apiUrl, ports: { pg: p.pgPort, api: p.apiPort, raft: p.raftPort }, label: p.id });
  }
  return out;
}

interface StatusBody { role?: string; raft?: { role?: string }; postgres?: { writable?: boolean } }

async function statusOf(s: Sitter): Promise<StatusBody | null> {
  try {
    const res = await fetch(`${s.apiUrl}/status`, { signal: AbortSignal.timeout(3000) });
    return res.ok ? await res.json() as StatusBody : null;
  } catch {
    return null;
  }
}

const CLK_TCK = 100;

interface Counters { cpuTicks: number; vcs: number; ivcs: number; threads: number }

function counters(pid: number): Counters {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  let vcs = 0;
  let ivcs = 0;
  let threads = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const st = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      vcs += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0);
      ivcs += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0);
      threads++;
    } catch { /* the thread ended meanwhile */ }
  }
  return { cpuTicks: Number(f[11]) + Number(f[12]), vcs, ivcs, threads };
}

/** What an fd is, from strace -yy's decoration, seen from sitter s. */
function classify(desc: string, s: Sitter, raftPorts: Map<number, string>): string {
  const tcp = /^TCP:\[[^:]+:(\d+)->[^:]+:(\d+)\]$/.exec(desc);
  if (tcp !== null) {
    const local = Number(tcp[1]);
    const remote = Number(tcp[2]);
    if (local === s.ports.raft) return 'raft inbound conn';
    const peer = raftPorts.get(remote);
    if (peer !== undefined) return `raft link to ${peer}`;
    if (remote === s.ports.pg || local === s.ports.pg) return 'postgres (tcp)';
    if (local === s.ports.api) return 'api';
    return `tcp :${remote}`;
  }
  if (desc.startsWith('UNIX-STREAM')) return 'unix socket (postgres)';
  if (desc.includes('eventfd')) return 'thread pool / async done';
  if (desc.startsWith('pipe')) return 'pipe (child process)';
  if (desc.startsWith('TCPv6') || desc.startsWith('TCP')) return 'tcp listen/accept';
  return desc.replace(/\[.*$/, '') || '?';
}

interface TraceSummary {
  syscalls: Map<string, number>;
  timerWakes: number;
  ioWakes: Map<string, number>;
  polls: number;
}

/** Parses strace -f -yy output: syscall counts; the main thread's blocking epoll_pwait returns by cause. */
function parseTrace(text: string, s: Sitter, raftPorts: Map<number, string>): TraceSummary {
  const syscalls = new Map<string, number>();
  const ioWakes = new Map<string, number>();
  const fdDesc = new Map<number, string>();
  const pendingByTid = new Map<string, string>();
  let timerWakes = 0;
  let polls = 0;
  const add = (m: Map<string, number>, k: string, n = 1): void => { m.set(k, (m.get(k) ?? 0) + n); };
  const lines: Array<{ tid: string; call: string }> = [];
  for (const raw of text.split('\n')) {
    const m = /^(\d+)\s+(.*)$/.exec(raw);
    if (m === null) continue;
    const tid = m[1]!;
    let call = m[2]!;
    if (call.endsWith('<unfinished ...>')) { pendingByTid.set(tid, call.slice(0, -'<unfinished ...>'.length)); continue; }
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(call);
    if (resumed !== null) call = (pendingByTid.get(tid) ?? `${resumed[1]!}(`) + resumed[2]!;
    pendingByTid.delete(tid);
    lines.push({ tid, call });
    for (const d of call.matchAll(/(?:^|[(, ])(\d+)<([\w-]+:\[[^\]]*\]|[^>]*)>/g)) fdDesc.set(Number(d[1]), d[2]!);
  }
  for (const { tid, call } of lines) {
    const name = /^(\w+)\(/.exec(call)?.[1];
    if (name === undefined) continue;
    add(syscalls, name);
    if (tid !== String(s.pid) || (name !== 'epoll_pwait' && name !== 'epoll_wait')) continue;
    const e = /\], \d+, (-?\d+)(?:, [^)]*)?\) = (\d+)/.exec(call);
    if (e === null) continue;
    if (e[1] === '0') { polls++; continue; }
    if (e[2] === '0') { timerWakes++; continue; }
    const fds = [...call.matchAll(/u32=(\d+)/g)].map((x) => Number(x[1]));
    const kinds = new Set(fds.map((fd) => classify(fdDesc.get(fd) ?? '?', s, raftPorts)));
    add(ioWakes, [...kinds].sort().join(' + '));
  }
  return { syscalls, timerWakes, ioWakes, polls };
}

async function straceAll(sitters: Sitter[], secondsS: number): Promise<Map<string, string>> {
  mkdirSync(join(dir, 'strace'), { recursive: true });
  const outs = new Map<string, string>();
  await Promise.all(sitters.map(async (s) => {
    const file = join(dir, 'strace', `${s.id}.txt`);
    const child = spawn('strace', ['-f', '-yy', '-qq', '-o', file, '-p', String(s.pid)], { stdio: 'ignore' });
    await sleep(secondsS * 1000);
    child.kill('SIGINT');
    await new Promise((r) => { child.once('exit', r); });
    outs.set(s.id, existsSync(file) ? readFileSync(file, 'utf8') : '');
  }));
  return outs;
}

function readCensus(pid: number): Map<string, number> {
  const file = join(censusDir, `census-${pid}.json`);
  if (!existsSync(file)) return new Map();
  return new Map(Object.entries(JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>));
}

async function snapshotCensus(sitters: Sitter[]): Promise<Map<string, Map<string, number>>> {
  for (const s of sitters) process.kill(s.pid, 'SIGUSR2');
  await sleep(500);
  return new Map(sitters.map((s) => [s.id, readCensus(s.pid)]));
}

async function main(): Promise<void> {
  console.log(`idle-cost: dev shard in ${dir}; load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')} (the machine is shared: CPU figures include contention; counts are steadier)`);
  let rec = readRecord(dir);
  let started = false;
  if (rec === null || sittersOf(rec).length !== rec.peers.length) {
    if (rec !== null) throw new Error(`${dir} holds a dev shard whose sitters are not all running: tools/dev-cluster down --dir ${dir} first`);
    const env = { ...process.env };
    if (values.census) {
      mkdirSync(censusDir, { recursive: true });
      env['MANATEE_TIMER_CENSUS_DIR'] = censusDir;
      env['NODE_OPTIONS'] = `${env['NODE_OPTIONS'] ?? ''} --import ${join(root, 'dist/tools/bench/timer-census.js')}`.trim();
    }
    console.log(`starting a dev shard (tools/dev-cluster up --no-tls --dir ${dir} --port-base ${portBase}${values.census ? ', timer census preloaded' : ''})`);
    devCluster('up', env);
    started = true;
    rec = readRecord(dir);
    if (rec === null) throw new Error(`no dev shard record in ${dir} after up`);
  } else if (values.census) {
    throw new Error('--census needs a shard that this script starts (the preload goes in at start): tools/dev-cluster down --dir the running one, or pick another --dir');
  }
  try {
    const sitters = sittersOf(rec);
    const raftPorts = new Map(sitters.map((s) => [s.ports.raft, s.id]));
    // Wait for a writable primary, then let start-up work (module loading, catch-up) pass.
    const deadline = Date.now() + 120_000;
    for (;;) {
      const st = await Promise.all(sitters.map(statusOf));
      if (st.some((x) => x?.role === 'primary' && x.postgres?.writable === true)) {
        sitters.forEach((s, i) => { s.label = `${s.id} (${st[i]?.role ?? '?'}, raft ${st[i]?.raft?.role ?? '?'})`; });
        break;
      }
      if (Date.now() > deadline) throw new Error('no writable primary within 120 s');
      await sleep(500);
    }
    await sleep(settleS * 1000);

    const census0 = values.census ? await snapshotCensus(sitters) : null;
    const before = sitters.map((s) => counters(s.pid));
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const elapsedS = (performance.now() - t0) / 1000;
    const after = sitters.map((s) => counters(s.pid));
    const census1 = values.census ? await snapshotCensus(sitters) : null;
    console.log(`\nclean window: ${elapsedS.toFixed(1)} s, nothing attached; load average now ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    console.log(`${'sitter'.padEnd(34)} ${'CPU s/min'.padStart(9)} ${'vol cs/s'.padStart(9)} ${'invol cs/s'.padStart(10)} ${'threads'.padStart(7)}`);
    let cpuSum = 0;
    let vcsSum = 0;
    sitters.forEach((s, i) => {
      const b = before[i]!;
      const a = after[i]!;
      const cpuPerMin = (a.cpuTicks - b.cpuTicks) / CLK_TCK / elapsedS * 60;
      const vcs = (a.vcs - b.vcs) / elapsedS;
      cpuSum += cpuPerMin;
      vcsSum += vcs;
      console.log(`${s.label.padEnd(34)} ${cpuPerMin.toFixed(2).padStart(9)} ${vcs.toFixed(1).padStart(9)} ${((a.ivcs - b.ivcs) / elapsedS).toFixed(1).padStart(10)} ${String(a.threads).padStart(7)}`);
    });
    console.log(`${'all sitters'.padEnd(34)} ${cpuSum.toFixed(2).padStart(9)} ${vcsSum.toFixed(1).padStart(9)}`);

    if (census0 !== null && census1 !== null) {
      console.log(`\ntimer fires a second by the line that set the timer (census over the clean window; dist paths)`);
      for (const s of sitters) {
        const c0 = census0.get(s.id) ?? new Map<string, number>();
        const rows = [...(census1.get(s.id) ?? new Map<string, number>())].map(([k, v]) => [k, (v - (c0.get(k) ?? 0)) / elapsedS] as const).filter(([, r]) => r >= 0.05).sort((x, y) => y[1] - x[1]);
        console.log(`  ${s.label}: ${rows.reduce((a, [, r]) => a + r, 0).toFixed(1)} fires/s`);
        for (const [k, r] of rows.slice(0, 15)) console.log(`    ${r.toFixed(1).padStart(6)}  ${k}`);
      }
    }

    if (straceSeconds > 0) {
      const traces = await straceAll(sitters, straceSeconds);
      console.log(`\nunder strace -f -yy for ${straceSeconds} s (slows the process; for the breakdown): main thread's blocking epoll_pwait returns a second = wake-ups`);
      for (const s of sitters) {
        const t = parseTrace(traces.get(s.id) ?? '', s, raftPorts);
        const total = [...t.syscalls.values()].reduce((a, b) => a + b, 0);
        const io = [...t.ioWakes.values()].reduce((a, b) => a + b, 0);
        const top = [...t.syscalls].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, v]) => `${k} ${(v / straceSeconds).toFixed(0)}`).join(', ');
        console.log(`  ${s.label}: wake-ups ${((t.timerWakes + io) / straceSeconds).toFixed(1)}/s (timers ${(t.timerWakes / straceSeconds).toFixed(1)}, I/O ${(io / straceSeconds).toFixed(1)}); non-blocking polls ${(t.polls / straceSeconds).toFixed(1)}/s; syscalls ${(total / straceSeconds).toFixed(0)}/s (${top})`);
        for (const [k, v] of [...t.ioWakes].sort((a, b) => b[1] - a[1])) console.log(`      I/O ${(v / straceSeconds).toFixed(1).padStart(6)}/s  ${k}`);
      }
    }
  } finally {
    if (started && !values.keep) devCluster('down');
  }
}

await main();
