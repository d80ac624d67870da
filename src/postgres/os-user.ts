// PostgreSQL refuses to run as root. When the sitter runs as root, every PostgreSQL program runs
// as an unprivileged OS user (default `postgres`), and the data directory belongs to that user.
// When the sitter is not root, programs run as the sitter's own user and no switch happens.
import { mkdir, stat, chown, chmod } from 'node:fs/promises';
import { execa } from 'execa';
import { PgError } from './errors.js';
import { errorLine } from '../errors.js';

export interface OsUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** Whether child processes must switch to uid/gid (true only when we run as root). */
  readonly switchUser: boolean;
}

export async function resolveOsUser(name: string | undefined): Promise<OsUser> {
  const myUid = process.getuid?.() ?? 0;
  if (myUid !== 0) {
    const { stdout } = await execa('id', ['-un']);
    return { name: stdout.trim(), uid: myUid, gid: process.getgid?.() ?? 0, switchUser: false };
  }
  const userName = name ?? 'postgres';
  if (userName === 'root') {
    throw new PgError('MANATEE_ERR_PG_OS_USER', 'PostgreSQL cannot run as root: configure an unprivileged OS user (osUser)');
  }
  try {
    const uid = Number((await execa('id', ['-u', userName])).stdout.trim());
    const gid = Number((await execa('id', ['-g', userName])).stdout.trim());
    if (!Number.isInteger(uid) || !Number.isInteger(gid) || uid === 0) throw new PgError('MANATEE_ERR_PG_OS_USER', `id printed uid ${uid} gid ${gid}`);
    return { name: userName, uid, gid, switchUser: true };
  } catch (err) {
    throw new PgError('MANATEE_ERR_PG_OS_USER', `OS user ${JSON.stringify(userName)} to run PostgreSQL is unusable: ${errorLine(err)}`, { cause: err });
  }
}

/** Options for execa/spawn that run a child as `user`. */
export function spawnIdentity(user: OsUser): { uid?: number; gid?: number } {
  return user.switchUser ? { uid: user.uid, gid: user.gid } : {};
}

/**
 * Create `dir` (mode 0700, owned by `user`) if it is missing; if it exists, it must already be
 * owned by `user`, and its mode is tightened to 0700. Never deletes anything.
 * Throws MANATEE_ERR_PG_DATADIR_OWNER for a directory that belongs to someone else.
 */
export async function ensureOwnedDir(dir: string, user: OsUser, what: string): Promise<{ created: boolean }> {
  let st;
  try {
    st = await stat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await mkdir(dir, { mode: 0o700 });
    if (user.switchUser) await chown(dir, user.uid, user.gid);
    await chmod(dir, 0o700);
    return { created: true };
  }
  if (!st.isDirectory()) {
    throw new PgError('MANATEE_ERR_PG_DATADIR_OWNER', `${what} ${dir} exists and is not a directory`);
  }
  if (st.uid !== user.uid) {
    throw new PgError('MANATEE_ERR_PG_DATADIR_OWNER',
      `${what} ${dir} is owned by uid ${st.uid}, but PostgreSQL runs as ${user.name} (uid ${user.uid}); ` +
      `fix it with: chown -R ${user.name} ${dir} (nothing was changed or deleted)`);
  }
  if ((st.mode & 0o777) !== 0o700) await chmod(dir, 0o700);
  return { created: false };
}
