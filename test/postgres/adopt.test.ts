// A sitter that dies (SIGKILL) leaves its PostgreSQL running. The next sitter finds it through
// postmaster.pid and adopts it or stops it; it never starts a second postmaster on the data.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePgSandbox, TEST_REPL_PASSWORD, type PgSandbox } from '../helpers/pg.js';
import { waitFor } from '../../tools/lib/wait.js';
import { PostgresServer, readPostmasterPid, type PgExit } from '../../src/postgres/index.js';
import { processAlive } from '../../src/postgres/postmaster-pid.js';

let sb: PgSandbox;
let first: PostgresServer;
const stubs: ChildProcess[] = [];

beforeAll(async () => {
  sb = await makePgSandbox('pgadopt');
  first = await sb.server('data');
  await first.initdb();
});

afterAll(async () => {
  for (const c of stubs) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await sb.cleanup();
});

/** Start PostgreSQL from a separate sitter process, then SIGKILL that process only. */
async function orphanPostgres(): Promise<number> {
  const opts = { dataDir: first.dataDir, listenAddress: '127.0.0.1', port: first.port, replicationPassword: TEST_REPL_PASSWORD, clientCidrs: ['127.0.0.1/32'] };
  const stub = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'fixtures/sitter-stub.ts'), JSON.stringify(opts)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  stubs.push(stub);
  let out = '';
  stub.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  const pid = await waitFor('the stub sitter to start PostgreSQL', () => {
    const m = /READY (\d+)/.exec(out);
    return m === null ? null : Number(m[1]);
  }, { timeoutMs: 90_000 });
  const gone = new Promise((r) => stub.once('exit', r));
  stub.kill('SIGKILL');
  await gone;
  expect(await processAlive(pid)).toBe(true);
  return pid;
}

async function openSecond(policy: 'adopt' | 'stop'): Promise<PostgresServer> {
  return sb.server('data', { port: first.port, orphanPolicy: policy, adoptedPollMs: 100 });
}

describe('orphaned postmaster', () => {
  it('adopts the running postmaster instead of starting a second one, and reports its death', async () => {
    const orphan = await orphanPostgres();
    const second = await openSecond('adopt');
    const r = await second.configure({ role: 'primary', oneNodeWriteMode: true });
    expect(r.action).toBe('reloaded');
    expect(second.postgresPid).toBe(orphan);
    expect((await readPostmasterPid(second.dataDir))?.pid).toBe(orphan);
    expect((await second.query<{ one: number }>('SELECT 1 AS one'))[0]?.one).toBe(1);
    await second.start(); // no-op: it is running
    expect(second.postgresPid).toBe(orphan);

    // Its death is noticed by polling (it is not our child).
    const exited = new Promise<PgExit>((resolve) => second.once('exit', resolve));
    process.kill(orphan, 'SIGQUIT');
    const e = await exited;
    expect(e).toMatchObject({ pid: orphan, adopted: true, expected: false });
    expect(second.postgresPid).toBeNull();
  });

  it('stops the orphan cleanly with orphanPolicy "stop", then starts its own', async () => {
    const orphan = await orphanPostgres();
    const second = await openSecond('stop');
    await second.start();
    expect(await processAlive(orphan)).toBe(false);
    expect(second.postgresPid).not.toBe(orphan);
    expect((await readPostmasterPid(second.dataDir))?.pid).toBe(second.postgresPid);
    await second.stop('fast');
  });

  it('a stop() finds and stops an orphan even before anything was started', async () => {
    const orphan = await orphanPostgres();
    const second = await openSecond('adopt');
    await second.stop('fast');
    expect(await processAlive(orphan)).toBe(false);
    expect(await readPostmasterPid(second.dataDir)).toBeNull();
  });

  it('ignores a stale postmaster.pid whose pid is another live process, and starts', async () => {
    const second = await openSecond('adopt');
    // Our own pid: alive, but not a postgres in this data directory (as after a reboot).
    await writeFile(join(second.dataDir, 'postmaster.pid'), `${process.pid}\n${second.dataDir}\n0\n${second.port}\n\n`);
    await second.start();
    expect(second.postgresPid).not.toBe(process.pid);
    expect((await readPostmasterPid(second.dataDir))?.pid).toBe(second.postgresPid);
    await second.stop('fast');
  });
});
