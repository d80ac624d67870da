// The restored-copy check (verifyDataDir) on real directories: a real initdb data directory
// passes; a copy without pg_control, with a short or corrupt pg_control, of another major
// version, in a state no standby starts from, or empty fails with MANATEE_ERR_RESTORE_INVALID
// naming the directory and what is wrong.
import { cp, mkdir, open, readFile, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { makeTmpDir } from '../../tools/lib/tmp.js';
import { findPgBinaries, resolveOsUser, type OsUser, type PgBinaries } from '../../src/postgres/index.js';
import { verifyDataDir, RestoreInvalidError, PG_CONTROL_SIZE_BYTES } from '../../src/backup/index.js';
import { hasCode } from '../../src/errors.js';

let tmp: Awaited<ReturnType<typeof makeTmpDir>>;
let bins: PgBinaries;
let user: OsUser;
/** A pristine initdb data directory; every case works on its own copy. */
let pristine: string;
let copies = 0;

beforeAll(async () => {
  tmp = await makeTmpDir('verify');
  bins = await findPgBinaries();
  user = await resolveOsUser(undefined);
  pristine = join(tmp.path, 'pristine');
  await mkdir(pristine, { mode: 0o700 });
  if (user.switchUser) await execa('chown', [`${user.name}:`, pristine]);
  await execa(bins.initdb, ['-D', pristine, '-A', 'trust', '--no-sync'], { uid: user.switchUser ? user.uid : undefined, gid: user.switchUser ? user.gid : undefined, env: { LANG: 'C' }, timeout: 120_000 });
}, 180_000);

afterAll(async () => {
  await tmp.cleanup();
});

// pg_control's layout (PostgreSQL 15, src/include/catalog/pg_control.h): system_identifier
// (uint64), pg_control_version, catalog_version_no (uint32 each), then `state` (DBState) at
// byte 16; a CRC-32C of everything before the crc field follows the struct.
const STATE_OFFSET = 16;
const DB_STARTUP = 0;
const DB_IN_ARCHIVE_RECOVERY = 5;

const CRC32C_TABLE = ((): Uint32Array => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

function crc32c(buf: Buffer, len: number): number {
  let c = 0xffffffff;
  for (let i = 0; i < len; i++) c = CRC32C_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Rewrites the cluster state of a pg_control, with a CRC that still matches (found, not assumed). */
async function setClusterState(file: string, state: number): Promise<void> {
  const buf = await readFile(file);
  let crcAt = -1;
  for (let n = STATE_OFFSET + 4; n + 4 <= 512; n += 4) {
    if (crc32c(buf, n) === buf.readUInt32LE(n)) {
      crcAt = n;
      break;
    }
  }
  expect(crcAt, 'the CRC field of pg_control').toBeGreaterThan(0);
  buf.writeUInt32LE(state, STATE_OFFSET);
  buf.writeUInt32LE(crc32c(buf, crcAt), crcAt);
  await writeFile(file, buf);
}

async function copyOf(): Promise<string> {
  const dir = join(tmp.path, `copy-${++copies}`);
  await cp(pristine, dir, { recursive: true, preserveTimestamps: true });
  if (user.switchUser) await execa('chown', ['-R', `${user.name}:`, dir]);
  return dir;
}

const check = (dir: string, extra: { dataset?: string } = {}): ReturnType<typeof verifyDataDir> =>
  verifyDataDir(dir, { pgControldata: bins.pgControldata, user, ...extra });

async function rejection(dir: string, extra: { dataset?: string } = {}): Promise<RestoreInvalidError> {
  const err = await check(dir, extra).then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(RestoreInvalidError);
  expect(hasCode(err, 'MANATEE_ERR_RESTORE_INVALID')).toBe(true);
  const e = err as RestoreInvalidError;
  expect(e.path).toBe(dir);
  expect(e.message).toContain(dir);
  return e;
}

describe('verifyDataDir', () => {
  it('passes a real initdb data directory and reports its version, state and identity', async () => {
    const r = await check(pristine);
    expect(r).toMatchObject({ path: pristine, pgVersion: '15', clusterState: 'shut down', controlSizeBytes: PG_CONTROL_SIZE_BYTES });
    expect(r.systemIdentifier).toMatch(/^\d{10,}$/);
    expect(r.latestCheckpoint).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
  });

  it('fails a copy whose global/pg_control was removed, naming it (and the dataset)', async () => {
    const dir = await copyOf();
    await unlink(join(dir, 'global', 'pg_control'));
    const e = await rejection(dir, { dataset: 'pool/peers/b' });
    expect(e.problems).toEqual(['global/pg_control is missing']);
    expect(e.dataset).toBe('pool/peers/b');
    expect(e.message).toMatch(/dataset pool\/peers\/b \(mounted at .*\).*global\/pg_control is missing/);
  });

  it('fails a copy whose PG_VERSION says 14, naming it', async () => {
    const dir = await copyOf();
    await writeFile(join(dir, 'PG_VERSION'), '14\n');
    const e = await rejection(dir);
    expect(e.problems).toEqual(['PG_VERSION says "14", but the local PostgreSQL is 15']);
  });

  it('fails a copy with a short pg_control, without running pg_controldata on it', async () => {
    const dir = await copyOf();
    await truncate(join(dir, 'global', 'pg_control'), 4096);
    const e = await rejection(dir);
    expect(e.problems).toEqual([`global/pg_control is 4096 bytes, not ${PG_CONTROL_SIZE_BYTES}`]);
  });

  it('fails a copy whose pg_control does not pass its CRC check', async () => {
    const dir = await copyOf();
    const fh = await open(join(dir, 'global', 'pg_control'), 'r+');
    try {
      // The system identifier (the first 8 bytes): the CRC at the end no longer matches.
      await fh.write(Buffer.from([0xde, 0xad, 0xbe, 0xef]), 0, 4, 0);
    } finally {
      await fh.close();
    }
    const e = await rejection(dir);
    expect(e.problems.join('\n')).toMatch(/fails its CRC check/);
  });

  it('fails a copy whose cluster state is "starting up" (a server that never finished its first start), naming the state', async () => {
    const dir = await copyOf();
    await setClusterState(join(dir, 'global', 'pg_control'), DB_STARTUP);
    const e = await rejection(dir);
    expect(e.problems).toHaveLength(1);
    expect(e.problems[0]).toMatch(/^the cluster state is "starting up", not one a standby starts from/);
  });

  it('passes a copy in archive recovery (a standby\'s snapshot)', async () => {
    const dir = await copyOf();
    await setClusterState(join(dir, 'global', 'pg_control'), DB_IN_ARCHIVE_RECOVERY);
    expect((await check(dir)).clusterState).toBe('in archive recovery');
  });

  it('fails an empty directory (a snapshot of a primary still running initdb), naming everything missing', async () => {
    const dir = join(tmp.path, 'empty');
    await mkdir(dir);
    const e = await rejection(dir);
    expect(e.problems).toEqual(['global/pg_control is missing', 'PG_VERSION is missing']);
    expect(e.restoredOld).toBe(false);
  });

  it('leaves a passing copy as it was', async () => {
    const dir = await copyOf();
    const before = await readFile(join(dir, 'global', 'pg_control'));
    await check(dir);
    expect((await readFile(join(dir, 'global', 'pg_control'))).equals(before)).toBe(true);
  });
});
