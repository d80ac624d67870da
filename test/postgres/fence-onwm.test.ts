// The fence of an upgrade out of one-node-write mode, on a real PostgreSQL 15 whose checkpointer
// is slow (paused): whether a commit waits for a standby is a shared flag that only the
// checkpointer sets when it processes a reload. The position recorded after the fence (the new
// generation's initWal) must still bound every commit that was acknowledged without a standby.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePgSandbox, connect, type PgSandbox } from '../helpers/pg.js';
import { waitFor } from '../../tools/lib/wait.js';
import { NO_SYNC_PLACEHOLDER, type PostgresServer } from '../../src/postgres/index.js';
import { lsnAtLeast } from '../../src/model/index.js';

let sb: PgSandbox;
let a: PostgresServer;

beforeAll(async () => {
  sb = await makePgSandbox('fenceonwm');
  a = await sb.server('a');
  await a.initdb();
  await a.configure({ role: 'primary', oneNodeWriteMode: true });
  await a.query('CREATE TABLE t (id int PRIMARY KEY)');
});

afterAll(async () => {
  await sb.cleanup();
});

async function checkpointerPid(): Promise<number> {
  const [r] = await a.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'");
  if (r === undefined) throw new Error('no checkpointer in pg_stat_activity');
  return r.pid;
}

describe('fenceWrites out of one-node-write mode', () => {
  it('bounds a commit acknowledged while the checkpointer had not applied the reload, and later commits wait', async () => {
    const ckpt = await checkpointerPid();
    const open = await connect(a);
    const late = await connect(a);
    open.on('error', () => undefined);
    late.on('error', () => undefined);
    let resumed = false;
    const resume = (): void => {
      if (!resumed) process.kill(ckpt, 'SIGCONT');
      resumed = true;
    };
    try {
      // A transaction opened in one-node-write mode: default_transaction_read_only cannot stop it.
      await open.query('BEGIN');
      await open.query('INSERT INTO t VALUES (1)');

      process.kill(ckpt, 'SIGSTOP');
      // As the sitter does: fence, then read the position that becomes the new initWal.
      const fenced = a.fenceWrites().then(async () => (await a.walPositions()).currentLsn);
      fenced.catch(() => undefined);
      const placeholder = `"${NO_SYNC_PLACEHOLDER}"`;
      await waitFor('new sessions to see the fenced configuration', async () => {
        const c = await connect(a);
        try {
          const [r] = (await c.query<{ s: string }>('SELECT current_setting($1) AS s', ['synchronous_standby_names'])).rows;
          return r?.s === placeholder || r?.s === NO_SYNC_PLACEHOLDER;
        } finally {
          await c.end();
        }
      }, { timeoutMs: 60_000 });

      // The checkpointer has not applied the reload: this commit returns without a standby.
      await open.query('COMMIT');
      const [after] = (await open.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows;
      const ackedUpTo = after!.lsn;

      resume();
      const initWal = await fenced;
      expect(initWal).not.toBeNull();
      // Every commit acknowledged on this primary alone lies at or before the recorded position.
      expect(lsnAtLeast(initWal!, ackedUpTo)).toBe(true);

      // From now on a commit waits (for the placeholder: nobody), even from a session that
      // turns read-only off.
      const latePid = (await late.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      const commit = late.query('BEGIN READ WRITE; INSERT INTO t VALUES (2); COMMIT').then(() => 'committed', () => 'failed');
      await waitFor('the late commit to wait for a synchronous standby', async () => {
        const [w] = await a.query<{ wait_event: string | null }>('SELECT wait_event FROM pg_stat_activity WHERE pid = $1', [latePid]);
        return w?.wait_event === 'SyncRep';
      }, { timeoutMs: 30_000 });
      await a.query('SELECT pg_terminate_backend($1)', [latePid]);
      expect(await commit).toBe('failed');
    } finally {
      resume();
      await Promise.allSettled([open.end(), late.end()]);
    }
  });
});
