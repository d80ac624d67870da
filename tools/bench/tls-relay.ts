// Benchmark of manatee-tls-relay alone (src/backup/relay/), no zfs and no Node in the byte path:
// `--mib` MiB of zeros from a pipe into the listener, over TLS 1.3 on 127.0.0.1, out of the
// connecting end into /dev/null. In counts, not wall-clock: CPU seconds (user + sys, from
// /usr/bin/time) of each end per GiB, and, in one extra round per binary under `strace -c`, the
// system calls of each end per GiB. With --compare-path, a second build (e.g. the previous
// commit's) runs in the same rounds, alternating which goes first, and the ratios of the medians
// are printed. Wall-clock seconds are shown for reference only.
//
//   npx tsx tools/bench/tls-relay.ts [--mib 1024] [--rounds 5] [--relay-path <path>] [--compare-path <path>] [--no-strace]
//
// The certificates are a throwaway shard CA and peers a (source) and b (restoring peer), made
// with src/tls as `manatee-adm certs` makes them, in a temporary directory removed at the end.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { builtRelayPath } from '../../src/backup/tls-relay.js';
import { CA_CERT_FILE, initCa, issuePeerCertificate, peerCertFile, peerKeyFile } from '../../src/tls/index.js';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '1024' },
    rounds: { type: 'string', default: '5' },
    'relay-path': { type: 'string' },
    'compare-path': { type: 'string' },
    'no-strace': { type: 'boolean', default: false },
  },
});

function intArg(name: string, v: string | undefined, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer in ${min}..${max} (got ${v ?? 'nothing'})`);
  return n;
}
const mib = intArg('mib', values.mib, 1, 65536);
const rounds = intArg('rounds', values.rounds, 1, 100);
const binaries = [values['relay-path'] ?? builtRelayPath(), ...(values['compare-path'] !== undefined ? [values['compare-path']] : [])];

interface Files { ca: string; a: { cert: string; key: string }; b: { cert: string; key: string } }
interface Run { listenerCpuS: number; connectorCpuS: number; wallS: number }

const median = (xs: number[]): number => { const s = [...xs].sort((p, q) => p - q); const m = Math.floor(s.length / 2); return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');

/** One stream through `bin`; each end runs under `wrap` (/usr/bin/time, or strace -c) writing to its out file. */
async function stream(bin: string, f: Files, dir: string, wrap: (out: string) => string[]): Promise<{ wallS: number; listenerOut: string; connectorOut: string }> {
  const listenerOut = join(dir, 'listener.out');
  const connectorOut = join(dir, 'connector.out');
  const t0 = performance.now();
  const listener = spawn('bash', ['-c', 'head -c "$0" /dev/zero | exec "$@"', String(mib * 1024 * 1024), ...wrap(listenerOut), bin, 'listen', '127.0.0.1', 'b', f.a.cert, f.a.key, f.ca], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  listener.stderr.on('data', (c: Buffer) => { log += c.toString('utf8'); });
  const listenerDone = new Promise<number | null>((resolve) => { listener.once('close', resolve); });
  const deadline = Date.now() + 60_000;
  let port: string | undefined;
  while ((port = /listening on AF=2 127\.0\.0\.1:(\d+)/.exec(log)?.[1]) === undefined) {
    if (Date.now() > deadline || listener.exitCode !== null) throw new Error(`the listener did not listen: ${log}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const connector = await execa(wrap(connectorOut)[0]!, [...wrap(connectorOut).slice(1), bin, 'connect', '127.0.0.1', port, 'a', f.b.cert, f.b.key, f.ca], { stdout: 'ignore', reject: false });
  const lc = await listenerDone;
  if (connector.exitCode !== 0 || lc !== 0) throw new Error(`the relay failed (listener ${lc ?? '?'}, connector ${connector.exitCode ?? '?'}): ${log}\n${connector.stderr}`);
  return { wallS: (performance.now() - t0) / 1000, listenerOut, connectorOut };
}

async function cpuRun(bin: string, f: Files, dir: string): Promise<Run> {
  const s = await stream(bin, f, dir, (out) => ['/usr/bin/time', '-f', '%U %S', '-o', out]);
  const cpu = async (file: string): Promise<number> => (await readFile(file, 'utf8')).trim().split('\n').at(-1)!.split(' ').map(Number).reduce((x, y) => x + y, 0);
  return { listenerCpuS: await cpu(s.listenerOut), connectorCpuS: await cpu(s.connectorOut), wallS: s.wallS };
}

/** System calls of each end (strace -c's total), per GiB. */
async function syscalls(bin: string, f: Files, dir: string): Promise<{ listener: number; connector: number }> {
  const s = await stream(bin, f, dir, (out) => ['strace', '-c', '-o', out]);
  const total = async (file: string): Promise<number> => {
    const line = (await readFile(file, 'utf8')).split('\n').find((l) => /\stotal$/.test(l)) ?? '';
    return Number(line.trim().split(/\s+/)[3]);
  };
  const perGib = 1024 / mib;
  return { listener: (await total(s.listenerOut)) * perGib, connector: (await total(s.connectorOut)) * perGib };
}

const dir = await mkdtemp(join(tmpdir(), 'manatee-bench-relay-'));
try {
  await initCa({ dir, name: 'bench CA' });
  for (const id of ['a', 'b']) await issuePeerCertificate({ dir, peerId: id, hosts: ['127.0.0.1'] });
  const f: Files = { ca: join(dir, CA_CERT_FILE), a: { cert: peerCertFile(dir, 'a'), key: peerKeyFile(dir, 'a') }, b: { cert: peerCertFile(dir, 'b'), key: peerKeyFile(dir, 'b') } };
  const runs = new Map<string, Run[]>(binaries.map((b) => [b, []]));
  console.log(`tls-relay bench: ${mib} MiB per stream, ${rounds} round(s), binaries: ${binaries.join(', ')}; load average ${load()}`);
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? binaries : [...binaries].reverse();
    for (const bin of order) {
      const x = await cpuRun(bin, f, dir);
      runs.get(bin)!.push(x);
      console.log(`round ${r + 1} ${bin}: listener ${x.listenerCpuS.toFixed(2)} CPU s, connector ${x.connectorCpuS.toFixed(2)} CPU s, ${x.wallS.toFixed(2)} s wall (load ${load()})`);
    }
  }
  const perGib = 1024 / mib;
  const med = (bin: string, k: keyof Run): number => median(runs.get(bin)!.map((x) => x[k])) * perGib;
  console.log('medians, per GiB:        listener CPU s  connector CPU s  wall s');
  for (const bin of binaries) console.log(`  ${bin}: ${med(bin, 'listenerCpuS').toFixed(3).padStart(8)} ${med(bin, 'connectorCpuS').toFixed(3).padStart(16)} ${med(bin, 'wallS').toFixed(2).padStart(7)}`);
  if (binaries.length === 2) {
    const [x, y] = binaries as [string, string];
    console.log(`ratio ${x} / ${y}: listener CPU ${(med(x, 'listenerCpuS') / med(y, 'listenerCpuS')).toFixed(2)}, connector CPU ${(med(x, 'connectorCpuS') / med(y, 'connectorCpuS')).toFixed(2)}`);
  }
  if (!values['no-strace']) {
    for (const bin of binaries) {
      const s = await syscalls(bin, f, dir);
      console.log(`system calls per GiB (strace -c, one stream) ${bin}: listener ${s.listener.toFixed(0)}, connector ${s.connector.toFixed(0)}`);
    }
  }
  console.log(`load average at the end ${load()}`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
