// The evaluation's probe of this peer's PostgreSQL (postgres-effects.ts standbyProbeOf) on a real
// PostgreSQL 15 whose postmaster and backends are SIGSTOPped: it is answered within its own short
// timeout even while another job's query (the server's long query timeout) holds the held
// connection; it logs the server as unresponsive with the reason, sends nothing more until the
// health check sees the server answer again, and then probes again (logged once more).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresServer } from '../../src/postgres/index.js';
import { PG_ERR_UNRESPONSIVE, standbyProbeOf } from '../../src/peer/postgres-effects.js';
import { capturingLogger } from '../../tools/lib/memory-peer.js';
import { makePgSandbox, type PgSandbox } from '../helpers/pg.js';
import { postgresProcesses, signalPids } from '../../tools/lib/processes.js';

let sandbox: PgSandbox;
let server: PostgresServer;
/** Processes this file stopped: continued in afterAll whatever happens. */
let stopped: number[] = [];


beforeAll(async () => {
  sandbox = await makePgSandbox('pg-unresp');
  // A long query timeout: another job's query on the hung server stays pending for the whole test.
  server = await sandbox.primary('p1', { queryTimeoutMs: 120_000 });
}, 120_000);

afterAll(async () => {
  signalPids(stopped, 'SIGCONT');
  await sandbox.cleanup();
}, 60_000);

describe('the evaluation\'s probe of a hung local PostgreSQL', () => {
  it('gives up after its own timeout while another query holds the connection, says why, waits for the health check, then probes again', async () => {
    const { logger, lines } = capturingLogger();
    let healthy = true;
    const probe = standbyProbeOf(server, { timeoutMs: 500, log: logger, healthy: () => healthy });
    expect(await probe.receiver()).toMatchObject({ streaming: false });

    stopped = postgresProcesses(server.postgresPid!);
    signalPids(stopped, 'SIGSTOP');
    // Another job's query (the shard settings', the heartbeat's) on the held connection, hung with the server.
    let earlierSettled = false;
    const earlier = server.query('SELECT 1').finally(() => { earlierSettled = true; });
    earlier.catch(() => undefined);

    expect(await probe.receiver()).toBeNull();
    // Answered at its own deadline, not after the earlier query's.
    expect(earlierSettled).toBe(false);
    const unresponsive = lines().filter((l) => l['decision'] === 'pg-unresponsive');
    expect(unresponsive).toHaveLength(1);
    expect(unresponsive[0]).toMatchObject({ probe: 'stream-stall', timeoutMs: 500, reason: expect.stringMatching(/no answer within \d+ ms/) });

    // The health check says unhealthy too: nothing is sent until it sees the server answer.
    healthy = false;
    expect(await probe.receiver()).toBeNull();
    await expect(probe.ownWal()).rejects.toMatchObject({ code: PG_ERR_UNRESPONSIVE, message: /did not answer within 500 ms .*health check has not seen it answer since/ });
    expect(earlierSettled).toBe(false);
    expect(lines().filter((l) => l['decision'] === 'pg-unresponsive')).toHaveLength(1);

    signalPids(stopped, 'SIGCONT');
    stopped = [];
    await earlier.catch(() => undefined);
    healthy = true;
    expect(await probe.receiver()).toMatchObject({ streaming: false });
    const responsive = lines().filter((l) => l['decision'] === 'pg-responsive');
    expect(responsive).toHaveLength(1);
    expect(responsive[0]!['reason']).toMatch(/it answered again after: .*no answer within/);
    expect(await probe.ownWal()).toEqual({ replayLsn: null, receiveLsn: null, history: null });
  }, 120_000);
});
