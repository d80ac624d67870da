// The reconciler of a deposed peer rebuilds only from a new primary that is out of recovery:
// pg_rewind against a standby still promoting answers "no rewind required" and leaves the
// deposed peer on the old timeline (found by tools/bench/failover.ts). Real PostgresServer (no
// data), a backend that records restores.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reconciler } from '../../src/peer/reconciler.js';
import type { Decision } from '../../src/peer/rules/index.js';
import type { BackupBackend, RestoreOptions, RestoreResult } from '../../src/backup/types.js';
import type { PeerInfo } from '../../src/model/index.js';
import { silentLogger } from '../../src/log.js';
import { makePgSandbox, type PgSandbox } from '../helpers/pg.js';

const self: PeerInfo = { id: 'a', host: '127.0.0.1', pgUrl: 'postgres://127.0.0.1:1/postgres', apiUrl: 'http://127.0.0.1:2' };
const primary: PeerInfo = { id: 'b', host: '127.0.0.1', pgUrl: 'postgres://127.0.0.1:3/postgres', apiUrl: 'http://127.0.0.1:4' };

const deposed: Decision = {
  kind: 'deposed',
  reason: 'test',
  position: 'deposed',
  role: 'deposed',
  upstream: primary,
  downstream: null,
  writableWithoutSync: false,
  needsRebuild: true,
  generation: 5,
  write: null,
};

describe('Reconciler: a deposed peer', () => {
  let sandbox: PgSandbox;
  const restores: RestoreOptions[] = [];
  const backend: BackupBackend = {
    kind: 'basebackup',
    restore: (o: RestoreOptions): Promise<RestoreResult> => {
      restores.push(o);
      return Promise.resolve({ method: 'rewind', bytes: 0, durationMs: 1 });
    },
  } as unknown as BackupBackend;

  beforeEach(async () => {
    sandbox = await makePgSandbox('reconciler');
    restores.length = 0;
  });
  afterEach(async () => {
    await sandbox.cleanup();
  });

  async function reconcilerWith(sourcePromoted: (p: PeerInfo) => Promise<true | string>): Promise<{ r: Reconciler; rebuilt: string[] }> {
    const rebuilt: string[] = [];
    const r = new Reconciler({
      self,
      postgres: await sandbox.server('a'),
      backend,
      log: silentLogger(),
      prepareStorage: () => Promise.resolve(),
      onRebuilt: (from) => {
        rebuilt.push(from.id);
        return Promise.resolve();
      },
      sourcePromoted,
    });
    return { r, rebuilt };
  }

  it('waits while the new primary is still in recovery, and says so', async () => {
    const { r, rebuilt } = await reconcilerWith(() => Promise.resolve('b is still in recovery'));
    const out = await r.reconcile(deposed);
    expect(out.action).toMatch(/waiting for b to finish its promotion.*still in recovery/);
    expect(out.retrySoon).toBe(true);
    expect(restores).toHaveLength(0);
    expect(rebuilt).toEqual([]);
  });

  it('waits when the new primary cannot be asked', async () => {
    const { r } = await reconcilerWith(() => Promise.reject(new Error('connection refused')));
    const out = await r.reconcile(deposed);
    expect(out.action).toMatch(/cannot ask it: connection refused/);
    expect(out.retrySoon).toBe(true);
    expect(restores).toHaveLength(0);
  });

  it('rebuilds from the new primary once it is promoted', async () => {
    const { r, rebuilt } = await reconcilerWith(() => Promise.resolve(true));
    const out = await r.reconcile(deposed);
    expect(out.action).toBe('rebuilt from b');
    expect(restores.map((o) => [o.source.peerId, o.reason])).toEqual([['b', 'rebuild']]);
    expect(rebuilt).toEqual(['b']);
  });
});
