// Bad input gets a clear, typed error, and nothing on disk is changed or deleted.
import { chown, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTmpDir } from '../../tools/lib/tmp.js';
import { freePort } from '../../tools/lib/wait.js';
import { findPgBinaries, PostgresServer, type PostgresServerOptions } from '../../src/postgres/index.js';
import { resolveOsUser } from '../../src/postgres/os-user.js';
import { hasCode } from '../../src/errors.js';

let tmp: { path: string; cleanup: () => Promise<void> };
const opened: PostgresServer[] = [];

beforeAll(async () => {
  tmp = await makeTmpDir('pgbad');
});

afterAll(async () => {
  for (const s of opened) await s.stop('immediate').catch(() => undefined);
  await tmp.cleanup();
});

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

async function open(extra: Partial<PostgresServerOptions>): Promise<PostgresServer> {
  const s = await PostgresServer.open({
    dataDir: join(tmp.path, 'data'), listenAddress: '127.0.0.1', port: await freePort(), replicationPassword: 'pw', ...extra,
  });
  opened.push(s);
  return s;
}

describe('bad input', () => {
  it('a missing binary directory is MANATEE_ERR_PG_BINARIES_NOT_FOUND naming what was tried', async () => {
    const err = await caught(findPgBinaries({ bindir: '/nonexistent/pg/bin' }));
    expect(hasCode(err, 'MANATEE_ERR_PG_BINARIES_NOT_FOUND')).toBe(true);
    expect((err as Error).message).toContain('/nonexistent/pg/bin/');
    const err2 = await caught(open({ bindir: join(tmp.path, 'no-such-bin') }));
    expect(hasCode(err2, 'MANATEE_ERR_PG_BINARIES_NOT_FOUND')).toBe(true);
  });

  it('a directory with only some of the programs is rejected too', async () => {
    const partial = join(tmp.path, 'partial-bin');
    await mkdir(partial);
    await writeFile(join(partial, 'postgres'), '#!/bin/sh\n', { mode: 0o755 });
    const err = await caught(findPgBinaries({ bindir: partial }));
    expect(hasCode(err, 'MANATEE_ERR_PG_BINARIES_NOT_FOUND')).toBe(true);
    expect((err as Error).message).toMatch(/initdb is missing/);
  });

  it('finds the PostgreSQL 15 binaries by default', async () => {
    const b = await findPgBinaries();
    expect(b.postgres).toMatch(/\/postgres$/);
    expect(b.bindir).toContain('15');
  });

  it('a data directory owned by the wrong user is MANATEE_ERR_PG_DATADIR_OWNER and nothing is deleted', async () => {
    // A root-owned directory: only root can make one that belongs to someone else.
    if (process.getuid?.() !== 0) return;
    const dir = join(tmp.path, 'rootowned');
    await mkdir(dir, { mode: 0o700 });
    await writeFile(join(dir, 'PG_VERSION'), '15\n');
    await writeFile(join(dir, 'precious'), 'do not delete');
    await chown(dir, 0, 0);
    const s = await open({ dataDir: dir });
    for (const attempt of [() => s.start(), () => s.initdb(), () => s.configure({ role: 'primary', oneNodeWriteMode: true })]) {
      const err = await caught(attempt());
      expect(hasCode(err, 'MANATEE_ERR_PG_DATADIR_OWNER')).toBe(true);
      expect((err as Error).message).toMatch(/owned by uid 0, but PostgreSQL runs as postgres/);
    }
    expect((await readdir(dir)).sort()).toEqual(['PG_VERSION', 'precious']);
    expect((await stat(dir)).uid).toBe(0);
  });

  it('starting without a cluster is MANATEE_ERR_PG_NO_DATA', async () => {
    const s = await open({ dataDir: join(tmp.path, 'missing') });
    expect(hasCode(await caught(s.start()), 'MANATEE_ERR_PG_NO_DATA')).toBe(true);
    const empty = join(tmp.path, 'empty');
    const s2 = await open({ dataDir: empty });
    await mkdir(empty, { mode: 0o700 });
    const user = await resolveOsUser(undefined);
    if (user.switchUser) await chown(empty, user.uid, user.gid);
    expect(hasCode(await caught(s2.configure({ role: 'primary', oneNodeWriteMode: true })), 'MANATEE_ERR_PG_NO_DATA')).toBe(true);
  });

  it('invalid options are MANATEE_ERR_PG_INVALID_OPTION', async () => {
    const bad: Partial<PostgresServerOptions>[] = [
      { port: 0 },
      { port: 70000 },
      { replicationPassword: '' },
      { replicationPassword: 'a\nb' },
      { superuser: 'Robert"); DROP' },
      { replicationUser: 'has space' },
      { runDir: `/tmp/${'x'.repeat(120)}` },
    ];
    for (const b of bad) {
      expect(hasCode(await caught(open(b)), 'MANATEE_ERR_PG_INVALID_OPTION'), JSON.stringify(b)).toBe(true);
    }
  });

  it('an unknown OS user is MANATEE_ERR_PG_OS_USER (when running as root)', async () => {
    if (process.getuid?.() !== 0) return;
    expect(hasCode(await caught(open({ osUser: 'no-such-user-xyz' })), 'MANATEE_ERR_PG_OS_USER')).toBe(true);
    expect(hasCode(await caught(open({ osUser: 'root' })), 'MANATEE_ERR_PG_OS_USER')).toBe(true);
  });

  it('role input is validated before anything changes', async () => {
    const s = await open({ dataDir: join(tmp.path, 'missing') });
    expect(hasCode(await caught(s.syncCaughtUp('bad id')), 'MANATEE_ERR_PG_INVALID_OPTION')).toBe(true);
    expect(hasCode(await caught(s.enableWrites('x')), 'MANATEE_ERR_PG_WRONG_ROLE')).toBe(true);
    expect(hasCode(await caught(s.promote()), 'MANATEE_ERR_PG_NOT_RUNNING')).toBe(true);
    expect(hasCode(await caught(s.reload()), 'MANATEE_ERR_PG_NOT_RUNNING')).toBe(true);
  });
});
