// An operator's rebuild request is honoured by an async (or a deposed peer) only: as the sync, a
// full copy would stop PostgreSQL and with it the primary's commits (safety review, finding 4).
// The sync's own rebuild (asked for by its sitter once it is stalled below initWal) is honoured by
// the sync of the generation and upstream it was checked for, and by nothing else.
// Real PostgresServer with data, a backend that records restores.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { INITDB_REFUSED, Reconciler } from '../../src/peer/reconciler.js';
import { hasCode } from '../../src/errors.js';
import type { Decision } from '../../src/peer/rules/index.js';
import type { BackupBackend, RestoreOptions, RestoreResult } from '../../src/backup/types.js';
import { RestoreBusyError } from '../../src/backup/errors.js';
import { ZfsBusyError } from '../../src/zfs/errors.js';
import type { PeerInfo } from '../../src/model/index.js';
import type { PostgresServer } from '../../src/postgres/index.js';
import { silentLogger } from '../../src/log.js';
import { makePgSandbox, type PgSandbox } from '../helpers/pg.js';
import { waitFor } from '../../tools/lib/wait.js';

const self: PeerInfo = { id: 'a', host: '127.0.0.1', pgUrl: 'postgres://127.0.0.1:1/postgres', apiUrl: 'http://127.0.0.1:2' };
const up: PeerInfo = { id: 'b', host: '127.0.0.1', pgUrl: 'postgres://127.0.0.1:3/postgres', apiUrl: 'http://127.0.0.1:4' };

function standby(role: 'sync' | 'async'): Decision {
  return { kind: 'none', reason: 'test', position: role, role, upstream: up, downstream: null, writableWithoutSync: false, needsRebuild: false, generation: 3, write: null };
}

describe('Reconciler: a requested rebuild', () => {
  let sandbox: PgSandbox;
  let server: PostgresServer;
  const restores: RestoreOptions[] = [];
  const backend = {
    kind: 'basebackup',
    restore: (o: RestoreOptions): Promise<RestoreResult> => {
      restores.push(o);
      return Promise.resolve({ method: 'rewind', bytes: 0, durationMs: 1 });
    },
  } as unknown as BackupBackend;

  beforeEach(async () => {
    sandbox = await makePgSandbox('reconreq');
    server = await sandbox.server('a');
    await server.initdb();
    restores.length = 0;
  });
  afterEach(async () => {
    await sandbox.cleanup();
  });

  function reconciler(): Reconciler {
    return new Reconciler({
      self, postgres: server, backend, log: silentLogger(),
      prepareStorage: () => Promise.resolve(),
      onRebuilt: () => Promise.resolve(),
      sourcePromoted: () => Promise.resolve(true),
    });
  }

  it('is dropped when this peer is the sync, and not carried over to a later async role', async () => {
    const r = reconciler();
    r.requestRebuild();
    await r.reconcile(standby('sync'));
    expect(restores).toHaveLength(0);
    expect(server.running).toBe(true);
    await r.reconcile(standby('async'));
    expect(restores).toHaveLength(0);
  });

  // A sync request checked against initWal 1/0: far past the replay position of a fresh initdb.
  const asSync = { generation: 3, upstreamId: 'b', initWal: '1/0', reason: 'below initWal' };

  /** Runs the sandbox server as the sync (a standby of an upstream that never answers): in recovery, replaying nothing more. */
  async function runningSync(r: Reconciler): Promise<void> {
    await r.reconcile(standby('sync'));
    expect(server.running).toBe(true);
    expect(await server.inRecovery()).toBe(true);
  }

  it("a sync's own rebuild is carried out by the sync, while an ordinary request is still dropped", async () => {
    const r = reconciler();
    await runningSync(r);
    r.requestRebuild();
    r.requestRebuild({ asSync });
    await r.reconcile(standby('sync'));
    expect(restores.map((o) => [o.source.peerId, o.reason])).toEqual([['b', 'rebuild']]);
    expect(r.pendingSyncRebuild()).toBeNull();
    expect(server.running).toBe(true);
    // The ordinary request was dropped (as the sync), and the sync's one was done: nothing more.
    await r.reconcile(standby('async'));
    await r.reconcile(standby('sync'));
    expect(restores).toHaveLength(1);
  });

  it("is dropped at the last check when the sync's WAL reaches initWal, and the sync attaches again", async () => {
    const r = reconciler();
    await runningSync(r);
    const [pos] = await server.query<{ lsn: string }>('SELECT pg_last_wal_replay_lsn()::text AS lsn');
    r.requestRebuild({ asSync: { ...asSync, initWal: pos!.lsn } });
    await r.reconcile(standby('sync'));
    expect(restores).toHaveLength(0);
    expect(r.pendingSyncRebuild()).toBeNull();
    // Detached for the check, then configured as a standby of b again.
    expect(server.running).toBe(true);
    const [conninfo] = await server.query<{ c: string }>("SELECT current_setting('primary_conninfo') AS c");
    expect(conninfo!.c).toMatch(/port='3'/);
  });

  it("a diverged sync past initWal is rebuilt when, cut off, its WAL still reaches past the fork; dropped when it does not", async () => {
    const r = reconciler();
    await runningSync(r);
    const [pos] = await server.query<{ lsn: string }>('SELECT pg_last_wal_replay_lsn()::text AS lsn');
    // Its WAL ends at pos: at initWal (it could take over), and on a fork at pos it holds nothing past it.
    r.requestRebuild({ asSync: { ...asSync, initWal: pos!.lsn, forkLsn: pos!.lsn, reason: 'diverged' } });
    await r.reconcile(standby('sync'));
    expect(restores).toHaveLength(0);
    expect(r.pendingSyncRebuild()).toBeNull();
    // A fork before its WAL ends: the WAL past it was never acknowledged, so it is rebuilt.
    r.requestRebuild({ asSync: { ...asSync, initWal: pos!.lsn, forkLsn: '0/1', reason: 'diverged' } });
    await r.reconcile(standby('sync'));
    expect(restores.map((o) => [o.source.peerId, o.reason, o.cannotStream])).toEqual([['b', 'rebuild', true]]);
  });

  it("a sync past initWal whose primary was read-only, waiting for it, is rebuilt once cut off", async () => {
    const r = reconciler();
    await runningSync(r);
    const [pos] = await server.query<{ lsn: string }>('SELECT pg_last_wal_replay_lsn()::text AS lsn');
    r.requestRebuild({ asSync: { ...asSync, initWal: pos!.lsn, primaryReadOnly: true, reason: 'primary read-only' } });
    await r.reconcile(standby('sync'));
    expect(restores.map((o) => [o.source.peerId, o.reason, o.cannotStream])).toEqual([['b', 'rebuild', true]]);
  });

  it('is dropped when PostgreSQL is not running (its position cannot be checked)', async () => {
    const r = reconciler();
    r.requestRebuild({ asSync });
    await r.reconcile(standby('sync'));
    expect(restores).toHaveLength(0);
    expect(r.pendingSyncRebuild()).toBeNull();
  });

  it("a sync's own rebuild is dropped for another role, generation or upstream", async () => {
    const other: Decision[] = [
      standby('async'),
      { ...standby('sync'), generation: 4 },
      { ...standby('sync'), upstream: { ...up, id: 'c' } },
      { ...standby('sync'), kind: 'none', role: 'none', position: 'unassigned', upstream: null },
    ];
    for (const d of other) {
      const r = reconciler();
      r.requestRebuild({ asSync });
      await r.reconcile(d);
      expect(r.pendingSyncRebuild()).toBeNull();
      // Not carried over to the sync of the generation it was checked for.
      await r.reconcile(standby('sync'));
    }
    expect(restores).toHaveLength(0);
  });

  it('a failed sync rebuild waits for the backoff and is retried without a new check', async () => {
    let fail = true;
    const failing = {
      kind: 'basebackup',
      restore: (o: RestoreOptions): Promise<RestoreResult> => {
        restores.push(o);
        return fail ? Promise.reject(new Error('source refused')) : Promise.resolve({ method: 'rewind', bytes: 0, durationMs: 1 });
      },
    } as unknown as BackupBackend;
    const make = (initialMs: number): Reconciler => new Reconciler({
      self, postgres: server, backend: failing, log: silentLogger(),
      prepareStorage: () => Promise.resolve(),
      onRebuilt: () => Promise.resolve(),
      sourcePromoted: () => Promise.resolve(true),
      restoreBackoff: { initialMs, maxMs: initialMs },
    });
    const slow = make(60_000);
    await runningSync(slow);
    slow.requestRebuild({ asSync });
    await expect(slow.reconcile(standby('sync'))).rejects.toThrow(/source refused/);
    const waiting = await slow.reconcile(standby('sync'));
    expect(waiting.action).toMatch(/waiting until .* before copying from b again \(1 failed in a row\)/);
    expect(slow.rebuildStatus().lastError).toMatch(/source refused/);
    expect(slow.pendingSyncRebuild()).toEqual(asSync);
    expect(restores).toHaveLength(1);

    const quick = make(1);
    await runningSync(quick);
    quick.requestRebuild({ asSync });
    await expect(quick.reconcile(standby('sync'))).rejects.toThrow(/source refused/);
    expect(server.running).toBe(false); // stopped for the copy: the retry cannot check again, and needs not
    fail = false;
    await waitFor('the retry after the backoff', async () => {
      await quick.reconcile(standby('sync'));
      return restores.length === 3 || null;
    }, { timeoutMs: 30_000 });
    expect(quick.pendingSyncRebuild()).toBeNull();
    expect(server.running).toBe(true);
  });

  it('the backoff after failures from one source does not hold up a copy from another; each source keeps its own', async () => {
    const failing = {
      kind: 'basebackup',
      restore: (o: RestoreOptions): Promise<RestoreResult> => {
        restores.push(o);
        return Promise.reject(new Error(`${o.source.peerId} refused`));
      },
    } as unknown as BackupBackend;
    const r = new Reconciler({
      self, postgres: server, backend: failing, log: silentLogger(),
      prepareStorage: () => Promise.resolve(),
      onRebuilt: () => Promise.resolve(),
      sourcePromoted: () => Promise.resolve(true),
      restoreBackoff: { initialMs: 600_000, maxMs: 600_000 },
    });
    r.requestRebuild();
    const t0 = Date.now();
    expect(r.lastActivityMs()).toBe(0);
    await expect(r.reconcile(standby('async'))).rejects.toThrow(/b refused/);
    // The restore's start and end are activity (the sitter's /liveness measures from it).
    expect(r.lastActivityMs()).toBeGreaterThanOrEqual(t0);
    expect((await r.reconcile(standby('async'))).action).toMatch(/waiting until .* before copying from b again/);
    // The chain changed: the async now replicates from c, which it may copy from at once.
    const c: PeerInfo = { id: 'c', host: '127.0.0.1', pgUrl: 'postgres://127.0.0.1:5/postgres', apiUrl: 'http://127.0.0.1:6' };
    const fromC = { ...standby('async'), upstream: c };
    await expect(r.reconcile(fromC)).rejects.toThrow(/c refused/);
    expect(restores.map((o) => o.source.peerId)).toEqual(['b', 'c']);
    // Back to b, then to c: two failing sources in turn do not cancel each other's backoff.
    expect((await r.reconcile(standby('async'))).action).toMatch(/waiting until .* before copying from b again \(1 failed in a row\)/);
    expect((await r.reconcile(fromC)).action).toMatch(/waiting until .* before copying from c again \(1 failed in a row\)/);
    expect(restores).toHaveLength(2);
    expect(r.rebuildStatus().lastError).toMatch(/c refused \[failure 1 in a row from c; next attempt from it not before /);
  });

  it('a restore that found its own dataset busy is retried after busyRetryMs, not after the source\'s backoff, which it leaves alone', async () => {
    let busyLeft = 3;
    const busyOnce = {
      kind: 'zfs',
      restore: (o: RestoreOptions): Promise<RestoreResult> => {
        restores.push(o);
        if (busyLeft > 0) {
          busyLeft--;
          return Promise.reject(new RestoreBusyError('the local dataset p/a could not be moved aside: it is busy', { dataset: 'p/a' }));
        }
        return Promise.resolve({ method: 'full', bytes: 1, durationMs: 1 });
      },
    } as unknown as BackupBackend;
    let nowMs = 1_000_000;
    const r = new Reconciler({
      self, postgres: server, backend: busyOnce, log: silentLogger(),
      prepareStorage: () => Promise.resolve(),
      onRebuilt: () => Promise.resolve(),
      sourcePromoted: () => Promise.resolve(true),
      restoreBackoff: { initialMs: 600_000, maxMs: 600_000 },
      busyRetryMs: 2000,
      now: () => nowMs,
    });
    r.requestRebuild();
    for (let i = 1; i <= 3; i++) {
      await expect(r.reconcile(standby('async'))).rejects.toMatchObject({ code: 'MANATEE_ERR_BACKUP_LOCAL_BUSY' });
      expect(r.rebuildStatus().lastError).toMatch(new RegExp(`^MANATEE_ERR_BACKUP_LOCAL_BUSY: .*busy ${i} times in a row since 1970-01-01T00:16:40.000Z; next attempt not before `));
      nowMs += 1000;
      expect((await r.reconcile(standby('async'))).action).toBe(`rebuild: my dataset was busy (${i} times in a row since 1970-01-01T00:16:40.000Z); trying again soon`);
      nowMs += 1000;
    }
    // The fourth attempt, 2 s after the third (the source's backoff would have said 10 minutes).
    await r.reconcile(standby('async'));
    expect(restores).toHaveLength(4);
    expect(r.rebuildStatus().lastResult).toMatch(/full copy of 1 bytes from b/);
  });

  it('a dataset still busy when the storage is made ready for the copy counts as busy too, not as a failure of the source', async () => {
    let busyLeft = 2;
    let nowMs = 1_000_000;
    const r = new Reconciler({
      self, postgres: server, backend, log: silentLogger(),
      prepareStorage: () => {
        if (busyLeft === 0) return Promise.resolve();
        busyLeft--;
        return Promise.reject(new ZfsBusyError('MANATEE_ERR_ZFS_BUSY', "zfs mount p/a failed (exit 1): cannot mount 'p/a': mountpoint or dataset is busy", { args: ['mount', 'p/a'] }));
      },
      onRebuilt: () => Promise.resolve(),
      sourcePromoted: () => Promise.resolve(true),
      restoreBackoff: { initialMs: 600_000, maxMs: 600_000 },
      busyRetryMs: 2000,
      now: () => nowMs,
    });
    r.requestRebuild();
    await expect(r.reconcile(standby('async'))).rejects.toMatchObject({ code: 'MANATEE_ERR_BACKUP_LOCAL_BUSY', dataset: 'p/a', message: expect.stringMatching(/my dataset p\/a could not be made ready for the copy: it is busy/) });
    nowMs += 2000;
    await expect(r.reconcile(standby('async'))).rejects.toMatchObject({ code: 'MANATEE_ERR_BACKUP_LOCAL_BUSY' });
    expect(r.rebuildStatus().lastError).toMatch(/busy 2 times in a row/);
    nowMs += 2000;
    await r.reconcile(standby('async'));
    expect(restores.map((o) => o.source.peerId)).toEqual(['b']);
  });

  it('is carried out by an async', async () => {
    const r = reconciler();
    r.requestRebuild();
    await r.reconcile(standby('async'));
    expect(restores.map((o) => [o.source.peerId, o.reason])).toEqual([['b', 'rebuild']]);
  });
});

describe('Reconciler: a primary without data', () => {
  let sandbox: PgSandbox;
  const primaryDecision: Decision = {
    kind: 'none', reason: 'test', position: 'primary', role: 'primary', upstream: null, downstream: null,
    writableWithoutSync: true, needsRebuild: false, generation: 4, write: null,
  };
  const backend = { kind: 'basebackup', restore: () => Promise.reject(new Error('unused')) } as unknown as BackupBackend;

  beforeEach(async () => {
    sandbox = await makePgSandbox('reconinit');
  });
  afterEach(async () => {
    await sandbox.cleanup();
  });

  async function reconciler(mayInitdb: (() => true | string) | undefined, inits: string[]): Promise<{ r: Reconciler; pg: PostgresServer }> {
    const pg = await sandbox.server('p');
    const r = new Reconciler({
      self, postgres: pg, backend, log: silentLogger(),
      prepareStorage: () => Promise.resolve(),
      onRebuilt: () => Promise.resolve(),
      sourcePromoted: () => Promise.resolve(true),
      ...(mayInitdb === undefined ? {} : { mayInitdb }),
      onInitdb: () => { inits.push('initdb'); return Promise.resolve(); },
    });
    return { r, pg };
  }

  it('refuses initdb unless told it is the setup, with a stable code and the reason', async () => {
    const inits: string[] = [];
    for (const may of [undefined, (): string => 'generation 4 is not the setup']) {
      const { r, pg } = await reconciler(may, inits);
      const err = await r.reconcile(primaryDecision).then(() => null, (e: unknown) => e);
      expect(hasCode(err, INITDB_REFUSED)).toBe(true);
      expect((err as Error).message).toMatch(may === undefined ? /no initdb policy/ : /generation 4 is not the setup/);
      expect(await pg.hasData()).toBe(false);
      expect(pg.running).toBe(false);
    }
    expect(inits).toEqual([]);
  });

  it('runs initdb at setup and records it', async () => {
    const inits: string[] = [];
    const { r, pg } = await reconciler(() => true, inits);
    expect(r.lastActivityMs()).toBe(0);
    const before = Date.now();
    await r.reconcile(primaryDecision);
    expect(inits).toEqual(['initdb']);
    // The end of initdb counts as activity: the unhealthy-time rule starts no earlier.
    expect(r.lastActivityMs()).toBeGreaterThanOrEqual(before);
    expect(await pg.hasData()).toBe(true);
    expect(await pg.inRecovery()).toBe(false);
  });
});
