// The storage under PostgreSQL's data directory: with the zfs backend, a dataset that must exist
// and be mounted before initdb or a restore (with the basebackup backend, a plain directory that
// PostgreSQL creates itself).
import { chmod, chown } from 'node:fs/promises';
import type { Logger } from '../log.js';
import { resolveOsUser } from '../postgres/index.js';
import type { Zfs } from '../zfs/index.js';

export async function prepareZfsStorage(o: {
  readonly zfs: Zfs;
  readonly dataset: string;
  readonly pgDataDir: string;
  /** The OS user PostgreSQL runs as (owns a new dataset's mountpoint). */
  readonly pgUser: string;
  readonly log: Logger;
}): Promise<void> {
  const { zfs, dataset, pgDataDir } = o;
  if (!(await zfs.exists(dataset))) {
    await zfs.createDataset(dataset, { mountpoint: pgDataDir, parents: true });
    const user = await resolveOsUser(o.pgUser);
    if (user.switchUser) await chown(pgDataDir, user.uid, user.gid);
    await chmod(pgDataDir, 0o700);
    o.log.info({ decision: 'createDataset', dataset, mountpoint: pgDataDir }, 'created the dataset for PostgreSQL data');
  } else if (!(await zfs.isMounted(dataset))) {
    // An isolation (a rebuild moving the old data aside) that did not finish leaves the dataset
    // with mountpoint=none: it gets its mountpoint back, or it could never be mounted again.
    if (await zfs.repairHalfIsolated(dataset)) {
      o.log.warn({ decision: 'repairDataset', dataset, mountpoint: pgDataDir }, 'the dataset for PostgreSQL data was left half isolated by an unfinished rebuild; its mountpoint is back');
      return;
    }
    // An unmounted dataset shows its empty mountpoint: mount it before anyone calls the data missing.
    o.log.warn({ decision: 'mountDataset', dataset, mountpoint: pgDataDir }, 'the dataset for PostgreSQL data is not mounted; mounting it');
    await zfs.mount(dataset);
  }
}
