// The basebackup backend against real PostgreSQL 15 servers: bootstrap with progress, failed
// restores that leave the old data directory in place, the rewind-or-full-copy rebuild, and
// recovery of a swap interrupted by a crash; a copy that is not a data directory is rejected.
import { chmod, mkdir, readFile, readdir, rename, symlink, writeFile, appendFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePgSandbox, pgUrlOf, waitCaughtUp, type PgSandbox } from '../helpers/pg.js';
import { freePort, waitFor } from '../../tools/lib/wait.js';
import { DEBIAN_BINDIR, PostgresServer } from '../../src/postgres/index.js';
import { RestoreInvalidError } from '../../src/backup/index.js';
import { BasebackupBackend } from '../../src/backup/basebackup.js';
import type { RestoreProgress } from '../../src/model/index.js';
import { hasCode } from '../../src/errors.js';

let sb: PgSandbox;
let a: PostgresServer;
let b: PostgresServer;

beforeAll(async () => {
  sb = await makePgSandbox('bbackup');
  a = await sb.primary('a');
  // About 40 MB, so that a throttled copy takes a few seconds and reports progress along the way.
  await a.query("CREATE TABLE big AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 150000) g");
  b = await sb.server('b');
});

afterAll(async () => {
  await sb.cleanup();
});

function src(pgUrl: string): { peerId: string; pgUrl: string; backupUrl: string } {
  return { peerId: 'peer-a', pgUrl, backupUrl: 'http://unused' };
}

async function siblings(s: PostgresServer): Promise<string[]> {
  const base = basename(s.dataDir);
  return (await readdir(dirname(s.dataDir))).filter((e) => e.startsWith(`${base}.`) && e !== `${base}.run`);
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('basebackup backend', () => {
  it('bootstraps a standby with increasing progress, and it then streams from its source', async () => {
    const progress: RestoreProgress[] = [];
    const backend = new BasebackupBackend({ postgres: b, maxRateKbPerSec: 8192 });
    expect(backend.kind).toBe('basebackup');
    const r = await backend.restore({ source: src(pgUrlOf(a)), reason: 'bootstrap', onProgress: (p) => progress.push(p) });
    expect(r.method).toBe('full');
    expect(r.bytes).toBeGreaterThan(30 * 1024 * 1024);

    const receiving = progress.filter((p) => p.phase === 'receiving' && p.percent !== null);
    const percents = receiving.map((p) => p.percent!);
    expect(new Set(percents).size).toBeGreaterThanOrEqual(3);
    expect([...percents].sort((x, y) => x - y)).toEqual(percents);
    const mid = receiving.find((p) => p.percent! > 0 && p.percent! < 100);
    expect(mid?.rateBytesPerSec).toBeGreaterThan(0);
    expect(mid?.etaSec).not.toBeNull();
    expect(mid?.bytesTotal).toBeGreaterThan(0);
    expect(progress.at(-1)?.phase).toBe('done');
    expect(await siblings(b)).toEqual([]);

    await b.configure({ role: 'standby', upstream: { host: '127.0.0.1', port: a.port }, applicationName: 'peer-b' });
    await waitFor('peer-b streaming', async () => (await a.replicationStatus()).some((row) => row.applicationName === 'peer-b' && row.state === 'streaming'));
    await a.query('INSERT INTO big VALUES (-1, $1)', ['streamed']);
    await waitFor('the new row on b', async () => (await b.query("SELECT 1 FROM big WHERE pad = 'streamed'")).length === 1);
  });

  it('a source that does not admit this peer\'s certificate fails clearly and leaves the old data directory (and the operator overrides) in place', async () => {
    await b.stop('fast');
    await writeFile(join(b.dataDir, 'marker'), 'old data');
    await appendFile(join(b.dataDir, 'manatee-overrides.conf'), "work_mem = '9MB'\n");
    // a no longer counts b among its peers (b was reaped, say): b's certificate is refused there.
    await a.setPeers([{ id: 'a', host: '127.0.0.1' }]);
    try {
      const err = await caught(new BasebackupBackend({ postgres: b }).restore({ source: src(pgUrlOf(a)), reason: 'bootstrap' }));
      expect(hasCode(err, 'MANATEE_ERR_PG_BASEBACKUP_FAILED')).toBe(true);
      expect((err as Error).message).toMatch(/certificate authentication failed for user "replicator"/);
      expect((err as Error).message).toMatch(/old data directory was left in place/);
    } finally {
      await a.setPeers([{ id: 'a', host: '127.0.0.1' }, { id: 'b', host: '127.0.0.1' }]);
    }
    expect(await readFile(join(b.dataDir, 'marker'), 'utf8')).toBe('old data');
    expect(await siblings(b)).toEqual([]);
  });

  it('an unreachable source fails clearly and leaves the old data directory in place', async () => {
    const nobody = await freePort();
    const err = await caught(new BasebackupBackend({ postgres: b }).restore({ source: src(`postgres://replicator@127.0.0.1:${nobody}/postgres`), reason: 'bootstrap' }));
    expect(hasCode(err, 'MANATEE_ERR_PG_BASEBACKUP_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/Connection refused/);
    expect(await readFile(join(b.dataDir, 'marker'), 'utf8')).toBe('old data');
    expect(await siblings(b)).toEqual([]);
  });

  it('puts the old data directory back after a crash in the middle of a swap', async () => {
    // The state a sitter leaves if it dies between its two renames: no data dir, an ".old-" copy.
    const aside = `${b.dataDir}.old-1700000000000`;
    await rename(b.dataDir, aside);
    const nobody = await freePort();
    const err = await caught(new BasebackupBackend({ postgres: b }).restore({ source: src(`postgres://replicator@127.0.0.1:${nobody}/postgres`), reason: 'bootstrap' }));
    expect(hasCode(err, 'MANATEE_ERR_PG_BASEBACKUP_FAILED')).toBe(true);
    expect(await readFile(join(b.dataDir, 'marker'), 'utf8')).toBe('old data');
    expect(await siblings(b)).toEqual([]);
  });

  it('rejects a copy without pg_control (the real pg_basebackup, with pg_control removed after it), keeping the old data directory', async () => {
    // A bindir of links to the real programs, where pg_basebackup removes global/pg_control from
    // the copy after a successful run: an unusable copy made by the real tool.
    const bindir = join(sb.dir, 'bad-bin');
    await mkdir(bindir);
    await chmod(bindir, 0o755);
    for (const prog of ['postgres', 'initdb', 'pg_ctl', 'pg_rewind', 'pg_controldata', 'psql']) await symlink(join(DEBIAN_BINDIR, prog), join(bindir, prog));
    await writeFile(join(bindir, 'pg_basebackup'), [
      '#!/bin/sh',
      `${join(DEBIAN_BINDIR, 'pg_basebackup')} "$@" || exit $?`,
      'while [ $# -gt 0 ]; do if [ "$1" = "-D" ]; then dir="$2"; fi; shift; done',
      'rm -f "$dir/global/pg_control"',
      '',
    ].join('\n'), { mode: 0o755 });
    const d = await sb.server('d', { bindir });
    await d.initdb();
    await writeFile(join(d.dataDir, 'marker'), 'old data of d');
    const phases: string[] = [];
    const err = await caught(new BasebackupBackend({ postgres: d }).restore({
      source: src(pgUrlOf(a)), reason: 'bootstrap', onProgress: (p) => { if (phases.at(-1) !== p.phase) phases.push(p.phase); },
    }));
    expect(err).toBeInstanceOf(RestoreInvalidError);
    const e = err as RestoreInvalidError;
    expect(e.code).toBe('MANATEE_ERR_RESTORE_INVALID');
    expect(e.problems).toEqual(['global/pg_control is missing']);
    expect(e.restoredOld).toBe(true);
    expect(e.path).toBe(`${d.dataDir}.restore`);
    expect(e.message).toContain(`${d.dataDir}.restore`);
    expect(e.message).toMatch(/bad copy was deleted and the old data directory .* was left in place/);
    expect(phases).toEqual(['receiving', 'verifying']);
    expect(await readFile(join(d.dataDir, 'marker'), 'utf8')).toBe('old data of d');
    expect((await readFile(join(d.dataDir, 'PG_VERSION'), 'utf8')).trim()).toBe('15');
    expect(await siblings(d)).toEqual([]);
  });

  it('a full copy replaces the old data, deletes the old copy, and keeps the operator overrides', async () => {
    const r = await new BasebackupBackend({ postgres: b }).restore({ source: src(pgUrlOf(a)), reason: 'bootstrap' });
    expect(r.method).toBe('full');
    await expect(readFile(join(b.dataDir, 'marker'), 'utf8')).rejects.toThrow(/ENOENT/);
    expect(await readFile(join(b.dataDir, 'manatee-overrides.conf'), 'utf8')).toContain("work_mem = '9MB'");
    expect(await siblings(b)).toEqual([]);
    await b.configure({ role: 'standby', upstream: { host: '127.0.0.1', port: a.port }, applicationName: 'peer-b' });
    expect(await b.show('work_mem')).toBe('9MB');
    await b.stop('fast');
  });

  it('a cancelled restore stops pg_basebackup, deletes the partial copy and keeps the old data directory', async () => {
    await writeFile(join(b.dataDir, 'marker'), 'still old');
    const ac = new AbortController();
    const err = await caught(new BasebackupBackend({ postgres: b, maxRateKbPerSec: 4096 }).restore({
      source: src(pgUrlOf(a)), reason: 'bootstrap', signal: ac.signal,
      onProgress: (p) => { if (p.phase === 'receiving' && (p.percent ?? 0) > 0) ac.abort(); },
    }));
    expect(hasCode(err, 'MANATEE_ERR_PG_BASEBACKUP_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/cancelled/);
    expect(await readFile(join(b.dataDir, 'marker'), 'utf8')).toBe('still old');
    expect(await siblings(b)).toEqual([]);
  });

  it('rebuild falls back to a full copy when pg_rewind cannot work (a different cluster)', async () => {
    const c = await sb.server('c');
    await c.initdb(); // an unrelated cluster: pg_rewind refuses it
    const phases: string[] = [];
    const r = await new BasebackupBackend({ postgres: c }).restore({
      source: src(pgUrlOf(a)), reason: 'rebuild', onProgress: (p) => { if (phases.at(-1) !== p.phase) phases.push(p.phase); },
    });
    expect(r.method).toBe('full');
    expect(phases).toEqual(['rewinding', 'receiving', 'verifying', 'swapping', 'done']);
    await c.configure({ role: 'standby', upstream: { host: '127.0.0.1', port: a.port }, applicationName: 'peer-c' });
    expect((await c.query<{ n: string }>('SELECT count(*)::text AS n FROM big'))[0]?.n).toBe('150001');
  });

  it('rebuild of a former primary that pg_rewind finds "no rewind required" for is a full copy', async () => {
    // x is a primary; y its standby on the same timeline (never promoted). pg_rewind of x from y
    // says "no rewind required", which for a former primary may hide diverged WAL: copy it all.
    const x = await sb.server('x');
    await x.initdb();
    await x.configure({ role: 'primary', oneNodeWriteMode: true });
    await x.query('CREATE TABLE small AS SELECT 1 AS id');
    const y = await sb.server('y');
    await new BasebackupBackend({ postgres: y }).restore({ source: src(pgUrlOf(x)), reason: 'bootstrap' });
    await y.configure({ role: 'standby', upstream: { host: '127.0.0.1', port: x.port }, applicationName: 'peer-y' });
    await waitCaughtUp(x, y);
    await x.stop('immediate');
    const phases: string[] = [];
    const logLines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => { logLines.push(line); } });
    const r = await new BasebackupBackend({ postgres: x, logger }).restore({
      source: src(pgUrlOf(y)), reason: 'rebuild', onProgress: (p) => { if (phases.at(-1) !== p.phase) phases.push(p.phase); },
    });
    expect(r.method).toBe('full');
    expect(phases[0]).toBe('rewinding');
    expect(phases).toContain('receiving');
    expect(logLines.filter((l) => l.includes('rewind-fallback')).join('\n')).toMatch(/no rewind required for a former primary/);
    expect(await x.standbyDataDir()).not.toBeNull();
    await y.stop('fast');
  });

  it('rebuild of a standby that has not diverged is a cheap rewind', async () => {
    const c2 = await sb.server('c2');
    await new BasebackupBackend({ postgres: c2 }).restore({ source: src(pgUrlOf(a)), reason: 'bootstrap' });
    await c2.configure({ role: 'standby', upstream: { host: '127.0.0.1', port: a.port }, applicationName: 'peer-c2' });
    // restore() stops the running standby itself before replacing its data.
    const r = await new BasebackupBackend({ postgres: c2 }).restore({ source: src(pgUrlOf(a)), reason: 'rebuild' });
    expect(r.method).toBe('rewind');
    expect(c2.running).toBe(false);
  });

  it('rebuild of a standby that cannot stream is a full copy even when pg_rewind finds nothing to rewind', async () => {
    // A stalled standby (its source no longer has the WAL it needs) sits on the source's
    // timeline: pg_rewind changes nothing, and only a full copy ends the stall.
    const c3 = await sb.server('c3');
    await new BasebackupBackend({ postgres: c3 }).restore({ source: src(pgUrlOf(a)), reason: 'bootstrap' });
    await c3.configure({ role: 'standby', upstream: { host: '127.0.0.1', port: a.port }, applicationName: 'peer-c3' });
    await waitCaughtUp(a, c3);
    const logLines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => { logLines.push(line); } });
    const phases: string[] = [];
    const r = await new BasebackupBackend({ postgres: c3, logger }).restore({
      source: src(pgUrlOf(a)), reason: 'rebuild', cannotStream: true, onProgress: (p) => { if (phases.at(-1) !== p.phase) phases.push(p.phase); },
    });
    expect(r.method).toBe('full');
    expect(phases[0]).toBe('rewinding');
    expect(phases).toContain('receiving');
    expect(logLines.filter((l) => l.includes('rewind-fallback')).join('\n')).toMatch(/cannot stream from its source/);
    await c3.configure({ role: 'standby', upstream: { host: '127.0.0.1', port: a.port }, applicationName: 'peer-c3' });
    expect((await c3.query<{ n: string }>('SELECT count(*)::text AS n FROM big'))[0]?.n).toBe('150001');
  });
});
