// Real PostgreSQL 15 clusters for tests: a temp directory (traversable by the postgres OS user),
// a free port, a PostgresServer on it, and cleanup that stops every server it made (by pid) and
// removes the directory, even when the test failed. Every server has TLS, as in a shard: a
// certificate for its name from the sandbox's own CA (made on first use).
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { makeTmpDir } from '../../tools/lib/tmp.js';
import { freePort, waitFor } from '../../tools/lib/wait.js';
import { PostgresServer, type PostgresServerOptions } from '../../src/postgres/index.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { makeTestCa, type TestCa } from './certs.js';

export const TEST_REPL_PASSWORD = 'repl-secret';
export const TEST_SUPER_PASSWORD = 'super-secret';

export interface PgSandbox {
  readonly dir: string;
  /** The CA that issued the servers' certificates. */
  ca(): Promise<TestCa>;
  /** node-postgres `ssl` for a client over TCP: TLS, the server checked against the sandbox's CA. */
  clientSsl(): Promise<{ ca: string; rejectUnauthorized: true }>;
  /** A PostgresServer on a fresh port with data in `<dir>/<name>`; not initialized. */
  server(name: string, extra?: Partial<PostgresServerOptions>): Promise<PostgresServer>;
  /** initdb + start as an ONWM (writable) primary. */
  primary(name: string, extra?: Partial<PostgresServerOptions>): Promise<PostgresServer>;
  cleanup(): Promise<void>;
}

export async function makePgSandbox(prefix: string, logger: Logger = silentLogger()): Promise<PgSandbox> {
  const tmp = await makeTmpDir(prefix);
  /** Each server made, and whether the test gave its peers (then they are its own to keep). */
  const servers = new Map<PostgresServer, boolean>();
  const names = new Set<string>();
  let ca: Promise<TestCa> | null = null;
  const sandbox: PgSandbox = {
    dir: tmp.path,
    ca: () => (ca ??= makeTestCa(`${tmp.path}/certs`)),
    clientSsl: async () => ({ ca: await readFile((await sandbox.ca()).caFile, 'utf8'), rejectUnauthorized: true }),
    async server(name, extra = {}) {
      const tls = extra.tls ?? await (await sandbox.ca()).peer(name);
      // Every server of the sandbox is a peer of every other, on 127.0.0.1: each admits the
      // others' certificates (CN = name) as the replication role, as a shard's peers do.
      names.add(name);
      const peers = [...names].map((id) => ({ id, host: '127.0.0.1' }));
      for (const [other, own] of servers.entries()) if (!own) await other.setPeers(peers);
      const s = await PostgresServer.open({
        tls,
        peers,
        dataDir: `${tmp.path}/${name}`,
        listenAddress: '127.0.0.1',
        port: await freePort(),
        replicationPassword: TEST_REPL_PASSWORD,
        superuserPassword: TEST_SUPER_PASSWORD,
        clientCidrs: ['127.0.0.1/32'],
        walKeepSize: '256MB',
        stopTimeoutMs: 30_000,
        logger,
        ...extra,
      });
      servers.set(s, extra.peers !== undefined);
      return s;
    },
    async primary(name, extra = {}) {
      const s = await sandbox.server(name, extra);
      await s.initdb();
      await s.configure({ role: 'primary', oneNodeWriteMode: true });
      return s;
    },
    async cleanup() {
      for (const s of servers.keys()) {
        try {
          await s.stop('immediate');
        } catch {
          // best effort: keep stopping the others
        }
        s.detach();
      }
      await tmp.cleanup();
    },
  };
  return sandbox;
}

/** A client of `server` as the superuser over its unix socket. Caller ends it. */
export async function connect(server: PostgresServer): Promise<pg.Client> {
  const c = new pg.Client({ ...server.clientConfig(), statement_timeout: 0, query_timeout: undefined });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

export function pgUrlOf(server: PostgresServer): string {
  return `postgres://${server.replicationUser}@127.0.0.1:${server.port}/postgres`;
}

/** Wait until `standby` has replayed everything `primary` had flushed when called. */
export async function waitCaughtUp(primary: PostgresServer, standby: PostgresServer, timeoutMs = 60_000): Promise<void> {
  const p = await primary.walPositions();
  const target = p.flushLsn!;
  const { lsnAtLeast } = await import('../../src/model/index.js');
  await waitFor(`standby to replay ${target}`, async () => {
    const s = await standby.walPositions();
    return s.replayLsn !== null && lsnAtLeast(s.replayLsn, target);
  }, { timeoutMs });
}
