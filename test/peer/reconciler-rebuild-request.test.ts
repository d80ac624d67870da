// An operator's rebuild request is honoured by an async (or a deposed peer) only: as the sync, a
// full copy would stop PostgreSQL and with it the primary's commits (safety review, finding 4).
// Real PostgresServer with data, a backend that records restores.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reconciler } from '../../src/peer/reconciler.js';
import type { Decision } from '../../src/peer/rules/index.js';
import type { BackupBackend, RestoreOptions, RestoreResult } from '../../src/backup/types.js';
import type { PeerInfo } from '../../src/store/types.js';
import type { PostgresServer } from '../../src/postgres/index.js';
import { silentLogger } from '../../src/log.js';
import { makePgSandbox, type PgSandbox } from '../helpers/pg.js';

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

  it('is carried out by an async', async () => {
    const r = reconciler();
    r.requestRebuild();
    await r.reconcile(standby('async'));
    expect(restores.map((o) => [o.source.peerId, o.reason])).toEqual([['b', 'rebuild']]);
  });
});
