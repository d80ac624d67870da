// tools/dev-cluster on a real dev shard of its own (its own directory and port base, so the fixed
// ports of a developer's shard are never touched): kill one peer (sitter and postmaster), start it
// again, add a fourth peer, then `down` must stop every process, the restarted and added ones too.
// It runs with TLS, the default of `up`: the command lines that status prints (psql with
// verify-full, manatee-adm with the CA, curl --cacert) must work as printed.
import { createServer } from 'node:net';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { makeTmpDir } from '../../tools/lib/tmp.js';
import { waitFor } from '../../tools/lib/wait.js';
import { isRunning, recordProcess, type ProcessRecord } from '../../tools/lib/processes.js';
import { readFile } from 'node:fs/promises';
import { httpJson } from '../../tools/lib/http.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface Row { id: string; role: string; apiUrl: string; sitterPid: number | null; postgresPid: number | null; online: boolean; writable: boolean; pendingRestart: string[] | null }

let dir = '';
let cleanup: (() => Promise<void>) | null = null;
/** Every process the shard had at some point (pid + start time: pids are recycled): none may run after `down`. */
const seen: ProcessRecord[] = [];
const remember = (pid: number | null): void => {
  const rec = pid === null ? null : recordProcess(pid);
  if (rec !== null && !seen.some((x) => x.pid === rec.pid && x.startTicks === rec.startTicks)) seen.push(rec);
};
const runs = (pid: number | null): boolean => seen.some((x) => x.pid === pid && isRunning(x));

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => { res(false); });
    srv.listen(port, '127.0.0.1', () => srv.close(() => { res(true); }));
  });
}

/** A port base below the ephemeral range (tests' freePort()) whose 4 peers' ports are all free. */
async function freePortBase(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + 100 * Math.floor(Math.random() * 100);
    const ports = [0, 1, 2, 3].flatMap((i) => [base + 10 * i, base + 10 * i + 1, base + 10 * i + 2]);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return base;
  }
  throw new Error('no free block of ports for the dev shard');
}

function dev(args: string[]) {
  return execa(process.execPath, ['--import', 'tsx', 'tools/dev-cluster.ts', ...args, '--dir', dir], {
    cwd: repoRoot, reject: false, timeout: 300_000, env: { NODE_OPTIONS: '' },
  });
}

async function rows(): Promise<Row[]> {
  const r = await dev(['status', '--json']);
  expect(r.exitCode, r.stderr).toBe(0);
  const parsed = JSON.parse(r.stdout) as Row[];
  for (const x of parsed) {
    remember(x.sitterPid);
    remember(x.postgresPid);
  }
  return parsed;
}

beforeAll(async () => {
  const tmp = await makeTmpDir('devcluster');
  cleanup = tmp.cleanup;
  dir = join(tmp.path, 'shard');
  const up = await dev(['up', '--port-base', String(await freePortBase())]);
  expect(up.exitCode, `${up.stdout}\n${up.stderr}`).toBe(0);
}, 360_000);

afterAll(async () => {
  // `down` is what the test checks; after a failure it still cleans up what it can.
  if (existsSync(join(dir, 'cluster.json'))) await dev(['down']);
  await cleanup?.();
}, 180_000);

const caFile = (): string => join(dir, 'certs', 'ca.crt');

describe('tools/dev-cluster', () => {
  it('runs TLS by default: https APIs, and the psql and curl lines that status prints connect over TLS checked against the shard CA', async () => {
    await waitFor('a writable primary', async () => (await rows()).some((x) => x.role === 'primary' && x.writable), { timeoutMs: 180_000 });
    const r = await rows();
    expect(r.map((x) => x.apiUrl.slice(0, 8))).toEqual(['https://', 'https://', 'https://']);
    const text = (await dev(['status'])).stdout;
    const psql = text.split('\n').find((l) => l.startsWith('PGPASSFILE='));
    const curl = text.split('\n').find((l) => l.startsWith('curl: '))?.slice('curl: '.length);
    expect(psql).toMatch(/ psql 'postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres\?sslmode=verify-full&sslrootcert=[^']*ca\.crt'$/);
    expect(curl).toBe(`curl --cacert ${caFile()} ${r[0]!.apiUrl}/status`);
    const q = await execa('sh', ['-c', `${psql!} -tAc 'SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()'`], { reject: false, timeout: 60_000 });
    expect({ code: q.exitCode, out: q.stdout.trim(), err: q.stderr }).toEqual({ code: 0, out: 't|TLSv1.3', err: '' });
    const c = await execa('sh', ['-c', `${curl!} -sS`], { reject: false, timeout: 60_000 });
    expect(c.exitCode, c.stderr).toBe(0);
    expect((JSON.parse(c.stdout) as { peer: { id: string } }).peer.id).toBe('peer1');
    // Without the CA the API's certificate is refused.
    const plain = await execa('curl', ['-sS', `${r[0]!.apiUrl}/status`], { reject: false, timeout: 60_000 });
    expect(plain.exitCode).not.toBe(0);
  }, 300_000);

  it('status shows each peer\'s settings pending a restart', async () => {
    // Every PostgreSQL must be running before the change: one that starts afterwards (an async
    // still copying its data when `up` returns) reads the new value at its start, with nothing
    // pending (seen in a loaded full-suite run).
    const first = await waitFor('a writable primary and every peer online', async () => {
      const r = await rows();
      return r.some((x) => x.role === 'primary' && x.writable) && r.every((x) => x.online && x.postgresPid !== null) ? r : null;
    }, { timeoutMs: 180_000, intervalMs: 1000 });
    const set = await execa(process.execPath, ['--import', 'tsx', 'src/cli/manatee-adm.ts', 'config', 'set', 'max_prepared_transactions=5'], {
      cwd: repoRoot, reject: false, timeout: 60_000,
      env: { NODE_OPTIONS: '', MANATEE_URL: first.map((x) => x.apiUrl).join(','), MANATEE_CA: caFile(), MANATEE_ADMIN_TOKEN_FILE: join(dir, 'admin-token') },
    });
    expect(set.stderr).toBe('');
    await waitFor('max_prepared_transactions pending on every peer', async () => (await rows()).every((x) => x.pendingRestart?.includes('max_prepared_transactions') === true), { timeoutMs: 60_000 });
    const text = await dev(['status']);
    expect(text.stdout).toMatch(/PENDING RESTART/);
    expect(text.stdout.split('\n').filter((l) => /max_prepared_transactions/.test(l))).toHaveLength(first.length);
  }, 300_000);

  it('kill stops a peer\'s sitter and postmaster, start brings it back, add joins a fourth peer, down stops them all', async () => {
    // `up` returns once the primary takes writes; the async may still be copying its data then,
    // with no postmaster yet, so wait until every peer runs one.
    const before = await waitFor('every peer of the dev shard running its PostgreSQL', async () => {
      const r = await rows();
      return r.length === 3 && r.every((x) => x.sitterPid !== null && x.postgresPid !== null) && r.some((x) => x.role === 'async') ? r : null;
    }, { timeoutMs: 180_000, intervalMs: 1000 });
    expect(before.filter((x) => x.role === 'primary' && x.writable)).toHaveLength(1);
    const victim = before.find((x) => x.role === 'async')!;
    expect(victim.sitterPid).not.toBeNull();
    expect(victim.postgresPid).not.toBeNull();

    const k = await dev(['kill', victim.id]);
    expect(k.exitCode, k.stderr).toBe(0);
    expect(k.stdout).toContain(`killed ${victim.id} with SIGKILL (sitter pid ${victim.sitterPid}, postmaster pid ${victim.postgresPid})`);
    expect(runs(victim.sitterPid) || runs(victim.postgresPid)).toBe(false);
    const killed = (await rows()).find((x) => x.id === victim.id)!;
    expect({ sitter: killed.sitterPid, postgres: killed.postgresPid, online: killed.online }).toEqual({ sitter: null, postgres: null, online: false });

    const s = await dev(['start', victim.id]);
    expect(s.exitCode, s.stderr).toBe(0);
    const again = await dev(['start', victim.id]);
    expect({ code: again.exitCode, err: again.stderr }).toEqual({ code: 1, err: expect.stringMatching(/^dev-cluster: MANATEE_ERR_DEV_ALREADY_RUNNING: the sitter of \S+ already runs/) });
    const back = await waitFor(`${victim.id} online again`, async () => {
      const r = (await rows()).find((x) => x.id === victim.id)!;
      return r.online && r.postgresPid !== null && r.role !== 'unknown' ? r : null;
    }, { timeoutMs: 180_000, intervalMs: 1000 });
    expect(back.sitterPid).not.toBe(victim.sitterPid);

    const a = await dev(['add']);
    expect(a.exitCode, `${a.stdout}\n${a.stderr}`).toBe(0);
    expect(a.stdout).toMatch(/added peer4 \(127\.0\.0\.1:\d+\) to the Raft group as a voter/);
    const peer4 = (await rows()).find((x) => x.id === 'peer4')!;
    expect(peer4.sitterPid).not.toBeNull();
    const members = (await httpJson(`${peer4.apiUrl}/members`, { ca: await readFile(caFile(), 'utf8') })).body as { voters: string[] };
    expect([...members.voters].sort()).toEqual(['peer1', 'peer2', 'peer3', 'peer4']);
    await waitFor('peer4 with its PostgreSQL', async () => ((await rows()).find((x) => x.id === 'peer4')?.postgresPid ?? null) !== null, { timeoutMs: 180_000, intervalMs: 1000 });

    const d = await dev(['down']);
    expect(d.exitCode, d.stderr).toBe(0);
    expect(d.stdout).toContain(`stopped 4 sitters and removed ${dir}`);
    expect(seen.length).toBeGreaterThanOrEqual(8); // 4 sitters and 4 postmasters, the killed ones too
    expect(seen.filter(isRunning)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  }, 900_000);
});
