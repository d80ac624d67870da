// Where the PostgreSQL 15 programs are. Order: the configured directory (taken as given: no
// fallback, so a typo is an error rather than a silent switch to another installation), then
// `pg_config --bindir` if that installation is version 15, then Debian's /usr/lib/postgresql/15/bin.
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Logger } from '../log.js';
import { PgError } from './errors.js';
import { errorLine } from '../errors.js';

export const PG_MAJOR = 15;
export const DEBIAN_BINDIR = `/usr/lib/postgresql/${PG_MAJOR}/bin`;

/** The programs that Manatee runs. Every path was checked to be executable. */
export interface PgBinaries {
  readonly bindir: string;
  readonly postgres: string;
  readonly initdb: string;
  readonly pgCtl: string;
  readonly pgBasebackup: string;
  readonly pgRewind: string;
  readonly pgControldata: string;
  readonly psql: string;
}

const PROGRAMS = {
  postgres: 'postgres',
  initdb: 'initdb',
  pgCtl: 'pg_ctl',
  pgBasebackup: 'pg_basebackup',
  pgRewind: 'pg_rewind',
  pgControldata: 'pg_controldata',
  psql: 'psql',
} as const;

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function checkDir(bindir: string): Promise<{ ok: true; bins: PgBinaries } | { ok: false; why: string }> {
  const entries = Object.entries(PROGRAMS).map(([k, prog]) => [k, join(bindir, prog)] as const);
  for (const [, path] of entries) {
    if (!(await isExecutable(path))) return { ok: false, why: `${path} is missing or not executable` };
  }
  return { ok: true, bins: { bindir, ...(Object.fromEntries(entries) as Record<keyof typeof PROGRAMS, string>) } };
}

async function pgConfigBindir(): Promise<{ bindir: string | null; why: string }> {
  try {
    const { stdout } = await execa('pg_config', ['--bindir', '--version'], { timeout: 10_000 });
    const [bindir, version] = stdout.split('\n');
    const major = /PostgreSQL (\d+)/.exec(version ?? '')?.[1];
    if (bindir === undefined || major === undefined) return { bindir: null, why: `pg_config printed ${JSON.stringify(stdout)}` };
    if (Number(major) !== PG_MAJOR) return { bindir: null, why: `pg_config points at PostgreSQL ${major} (${bindir}), not ${PG_MAJOR}` };
    return { bindir, why: '' };
  } catch (err) {
    return { bindir: null, why: `pg_config failed: ${errorLine(err)}` };
  }
}

/**
 * Find the PostgreSQL 15 binaries. Throws MANATEE_ERR_PG_BINARIES_NOT_FOUND naming every
 * directory tried and why each was rejected.
 */
export async function findPgBinaries(opts: { bindir?: string; logger?: Logger } = {}): Promise<PgBinaries> {
  const tried: string[] = [];
  if (opts.bindir !== undefined) {
    const r = await checkDir(opts.bindir);
    if (r.ok) {
      opts.logger?.info({ bindir: opts.bindir, source: 'configured' }, 'using configured PostgreSQL binaries');
      return r.bins;
    }
    throw new PgError('MANATEE_ERR_PG_BINARIES_NOT_FOUND', `PostgreSQL binaries not found in the configured bindir: ${r.why}`);
  }
  const fromPgConfig = await pgConfigBindir();
  if (fromPgConfig.bindir !== null) {
    const r = await checkDir(fromPgConfig.bindir);
    if (r.ok) {
      opts.logger?.info({ bindir: fromPgConfig.bindir, source: 'pg_config' }, 'using PostgreSQL binaries from pg_config');
      return r.bins;
    }
    tried.push(`pg_config --bindir: ${r.why}`);
  } else {
    tried.push(fromPgConfig.why);
  }
  const r = await checkDir(DEBIAN_BINDIR);
  if (r.ok) {
    opts.logger?.info({ bindir: DEBIAN_BINDIR, source: 'default', tried }, 'using Debian PostgreSQL binaries');
    return r.bins;
  }
  tried.push(`${DEBIAN_BINDIR}: ${r.why}`);
  throw new PgError('MANATEE_ERR_PG_BINARIES_NOT_FOUND', `PostgreSQL ${PG_MAJOR} binaries not found; tried: ${tried.join('; ')}`);
}
