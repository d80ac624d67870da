// The dev-cluster's bookkeeping without a shard: processes are recognised by pid AND start time
// (a recycled pid is never signalled), and its record and options refuse bad input by name;
// status keeps the secrets in files.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { isRunning, processStartTicks, recordProcess, signalProcess, waitGone } from '../../tools/lib/processes.js';
import { extraSitterConfig, findPeer, mergeConfig, parsePortBase, readRecord, type ClusterRecord } from '../../tools/lib/dev-record.js';
import { freePort } from '../../tools/lib/wait.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

function sleeper(): number {
  const child = spawn('sleep', ['120'], { stdio: 'ignore' });
  cleanups.push(() => { child.kill('SIGKILL'); return Promise.resolve(); });
  return child.pid!;
}

describe('process records', () => {
  it('a record whose start time differs from the live process with that pid is not signalled', async () => {
    const pid = sleeper();
    const rec = recordProcess(pid)!;
    expect(rec.startTicks).toBe(processStartTicks(pid));
    // The same pid with another start time: what a recorded process looks like once its pid was reused.
    const recycled = { pid, startTicks: rec.startTicks - 1 };
    expect(isRunning(recycled)).toBe(false);
    expect(signalProcess(recycled, 'SIGKILL')).toBe(false);
    expect(isRunning(rec)).toBe(true);
    expect(signalProcess(rec, 'SIGTERM')).toBe(true);
    expect(await waitGone([rec], 10_000)).toBe(true);
    expect(signalProcess(rec, 'SIGTERM')).toBe(false);
  });

  it('no record for a pid that no process has', () => {
    expect(recordProcess(2 ** 22 + 1)).toBeNull();
  });
});

describe('dev-cluster record and options', () => {
  it('a port base outside 1024..65443 is refused with the rule', () => {
    expect(parsePortBase('21430', '--port-base')).toBe(21430);
    for (const bad of ['80', '65500', 'x', '5432.5']) {
      expect(() => parsePortBase(bad, '--port-base')).toThrow(expect.objectContaining({ code: 'MANATEE_ERR_DEV_USAGE', message: expect.stringContaining(`--port-base "${bad}"`) }));
    }
  });

  it('a record that is not JSON, or not a dev-cluster record, is refused by name', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'manatee-devrec-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    expect(readRecord(dir)).toBeNull();
    await writeFile(join(dir, 'cluster.json'), '{"peers": [');
    expect(() => readRecord(dir)).toThrow(expect.objectContaining({ code: 'MANATEE_ERR_DEV_RECORD', message: expect.stringContaining('is not valid JSON') }));
    await writeFile(join(dir, 'cluster.json'), '{"peers": []}');
    expect(() => readRecord(dir)).toThrow(expect.objectContaining({ code: 'MANATEE_ERR_DEV_RECORD', message: expect.stringContaining('not a dev-cluster record') }));
  });

  it('a record from before start times keeps only pids that are still its sitters', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'manatee-devrec-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const pid = sleeper(); // alive, but not a sitter of this record: it must not be adopted
    const peer = { id: 'peer1', configPath: join(dir, 'peer1/config.json'), apiUrl: 'http://127.0.0.1:5433', pgPort: 5432, logPath: 'x', dataDir: join(dir, 'peer1') };
    await writeFile(join(dir, 'cluster.json'), JSON.stringify({ backend: 'basebackup', secret: 's', adminToken: 't', superuserPassword: 'p', peers: [peer], sitterPids: { peer1: pid } }));
    const r = readRecord(dir)!;
    expect(r.version).toBe(2);
    expect(r.processes).toEqual([]);
    expect(r.peers[0]).toMatchObject({ id: 'peer1', index: 0, apiPort: 5433, raftPort: 5434 });
  });

  it('an unknown peer is refused with the list of peers', () => {
    const r = { peers: [{ id: 'peer1' }, { id: 'peer2' }] } as unknown as ClusterRecord;
    expect(() => findPeer(r, 'peer9')).toThrow(expect.objectContaining({ code: 'MANATEE_ERR_DEV_UNKNOWN_PEER', message: 'no peer "peer9" in this dev shard: its peers are peer1, peer2' }));
  });
});

describe('dev-cluster status', () => {
  it('keeps the admin token and the superuser password in files (0600) unless --show-secrets', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'manatee-devrec-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const apiPort = await freePort(); // nothing listens there: the peer shows as unknown
    const peer = { id: 'peer1', configPath: join(dir, 'peer1/config.json'), apiUrl: `http://127.0.0.1:${apiPort}`, pgPort: apiPort - 1, logPath: 'x', dataDir: join(dir, 'peer1') };
    await writeFile(join(dir, 'cluster.json'), JSON.stringify({ backend: 'basebackup', secret: 'the-shard-secret', adminToken: 'the-admin-token', superuserPassword: 'the-super-pw', peers: [peer], sitterPids: {} }));
    const run = (args: string[]) => execa('node', ['--import', 'tsx', 'tools/dev-cluster.ts', '--dir', dir, 'status', ...args], { reject: false, timeout: 60_000 });
    const hidden = await run([]);
    expect(hidden.exitCode).toBe(0);
    for (const s of ['the-shard-secret', 'the-admin-token', 'the-super-pw']) expect(hidden.stdout).not.toContain(s);
    expect(hidden.stdout).toContain(`MANATEE_ADMIN_TOKEN_FILE=${join(dir, 'admin-token')}`);
    expect(hidden.stdout).toContain('--show-secrets prints them');
    expect(await readFile(join(dir, 'admin-token'), 'utf8')).toBe('the-admin-token\n');
    expect(await readFile(join(dir, 'pgpass'), 'utf8')).toBe('*:*:*:postgres:the-super-pw\n');
    expect((await stat(join(dir, 'admin-token'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'pgpass'))).mode & 0o777).toBe(0o600);
    const shown = await run(['--show-secrets']);
    expect(shown.exitCode).toBe(0);
    expect(shown.stdout).toContain('MANATEE_ADMIN_TOKEN=the-admin-token');
  });
});

describe('MANATEE_DEV_SITTER_CONFIG', () => {
  it('is merged into a peer\'s configuration section by section, keeping what it does not name', () => {
    const config: Record<string, unknown> = { peerId: 'peer1', raft: { port: 5434, members: [{ id: 'peer1', address: '127.0.0.1:5434' }] }, log: { level: 'info' } };
    mergeConfig(config, extraSitterConfig('{"raft":{"tickMs":50,"electionTicks":10},"timeouts":{"sessionTimeoutMs":3000}}'));
    expect(config).toEqual({
      peerId: 'peer1',
      raft: { port: 5434, members: [{ id: 'peer1', address: '127.0.0.1:5434' }], tickMs: 50, electionTicks: 10 },
      log: { level: 'info' },
      timeouts: { sessionTimeoutMs: 3000 },
    });
    expect(extraSitterConfig(undefined)).toEqual({});
    expect(extraSitterConfig('')).toEqual({});
  });

  it('refuses what is not a JSON object, by name', () => {
    expect(() => extraSitterConfig('{"raft":')).toThrow(/MANATEE_DEV_SITTER_CONFIG is not JSON/);
    expect(() => extraSitterConfig('[1]')).toThrow(/MANATEE_DEV_SITTER_CONFIG must be a JSON object \(got \[1\]\)/);
    let code: unknown = null;
    try {
      extraSitterConfig('3');
    } catch (err) {
      code = (err as { code?: unknown }).code;
    }
    expect(code).toBe('MANATEE_ERR_DEV_SITTER_CONFIG');
  });
});
