// PostgreSQL's listener with TLS, as a peer configures it: TLS 1.3 only, hostssl lines only, the
// replication role only from the peers' addresses and only with a certificate of the shard's CA;
// and libpq's side (sslmode=verify-full, what standbys, pg_basebackup and pg_rewind use) refusing
// a server whose certificate is from another CA, expired, or issued for another host.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFile, readFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { execa } from 'execa';
import type { PostgresServer } from '../../src/postgres/index.js';
import type { TlsFiles } from '../../src/tls/index.js';
import { expiredPeerCert, makeTestCa, type TestCa } from '../helpers/certs.js';
import { makePgSandbox, TEST_REPL_PASSWORD, type PgSandbox } from '../helpers/pg.js';

let sb: PgSandbox;
let ca: TestCa;
let other: TestCa;
let a: PostgresServer;
/** The files server a was opened with: a test replaces them and reloads. */
let served: TlsFiles;
let good: TlsFiles;

beforeAll(async () => {
  sb = await makePgSandbox('pgtls');
  ca = await sb.ca();
  other = await makeTestCa(join(sb.dir, 'other-ca'), 'Another CA');
  good = await ca.peer('a');
  served = { caFile: good.caFile, certFile: join(sb.dir, 'served.crt'), keyFile: join(sb.dir, 'served.key') };
  await serve(good);
  a = await sb.primary('a', { tls: served, clientCidrs: ['127.0.0.1/32'] });
  await a.query("CREATE ROLE app LOGIN PASSWORD 'app-secret'");
});

afterAll(async () => { await sb.cleanup(); });

async function serve(files: TlsFiles): Promise<void> {
  await copyFile(files.certFile, served.certFile);
  await copyFile(files.keyFile, served.keyFile);
}

/** A node-postgres connection to a: resolves with its pg_stat_ssl row, rejects with the server's or TLS's refusal. */
async function nodeConnect(opts: { user: string; password: string; ssl: pg.ClientConfig['ssl']; from?: string }): Promise<{ ssl: boolean; version: string }> {
  const c = new pg.Client({
    host: '127.0.0.1', port: a.port, database: 'postgres', user: opts.user, password: opts.password, ssl: opts.ssl, connectionTimeoutMillis: 10_000,
    ...(opts.from === undefined ? {} : { stream: () => fromAddress(opts.from!) }),
  });
  c.on('error', () => undefined);
  try {
    await c.connect();
    const r = await c.query<{ ssl: boolean; version: string }>('SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    return r.rows[0]!;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** psql (libpq) as the replication role with a peer's TLS settings: what pg_basebackup and pg_rewind do. */
async function libpq(files: TlsFiles, host = '127.0.0.1'): Promise<{ ok: boolean; output: string }> {
  const conninfo = [`host=${host}`, `port=${a.port}`, 'user=replicator', 'dbname=postgres', 'connect_timeout=10', 'sslmode=verify-full',
    `sslrootcert=${files.caFile}`, `sslcert=${files.certFile}`, `sslkey=${files.keyFile}`, 'ssl_min_protocol_version=TLSv1.3'].join(' ');
  const r = await execa(a.binaries.psql, ['-X', '-A', '-t', '-c', 'SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()', conninfo], {
    reject: false, env: { PGPASSWORD: TEST_REPL_PASSWORD }, timeout: 60_000,
  });
  return { ok: r.exitCode === 0, output: `${r.stdout}${r.stderr}` };
}

describe('PostgreSQL with TLS', () => {
  it('accepts the right certificate over TLS 1.3 (libpq verify-full, and node-postgres)', async () => {
    expect(await libpq(good)).toEqual({ ok: true, output: 'TLSv1.3' });
    const row = await nodeConnect({ user: 'app', password: 'app-secret', ssl: { ca: await readCa(), rejectUnauthorized: true } });
    expect(row).toEqual({ ssl: true, version: 'TLSv1.3' });
  });

  it('refuses a connection without TLS', async () => {
    await expect(nodeConnect({ user: 'app', password: 'app-secret', ssl: false })).rejects.toThrow(/no pg_hba.conf entry for host "127.0.0.1", user "app", database "postgres", no encryption/);
  });

  it('refuses the replication role without a peer certificate, or with one from another CA', async () => {
    await expect(nodeConnect({ user: 'replicator', password: TEST_REPL_PASSWORD, ssl: { ca: await readCa() } }))
      .rejects.toThrow(/connection requires a valid client certificate/);
    const stranger = await other.peer('b');
    const r = await libpq({ ...stranger, caFile: good.caFile });
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/certificate verify failed|unknown ca|certificate unknown/i);
  });

  it('a peer refuses a server whose certificate is from another CA, expired, or for another host', async () => {
    try {
      await serve(await other.peer('a'));
      await a.reloadTls();
      const fromOther = await libpq(good);
      expect(fromOther.ok).toBe(false);
      expect(fromOther.output).toMatch(/certificate verify failed/);

      await serve(await expiredPeerCert(ca, 'a', join(sb.dir, 'expired')));
      await a.reloadTls();
      const expired = await libpq(good);
      expect(expired.ok).toBe(false);
      expect(expired.output).toMatch(/certificate verify failed|certificate has expired/);

      await serve(await ca.peer('elsewhere', ['10.99.0.1', 'elsewhere.example.net']));
      await a.reloadTls();
      const wrongHost = await libpq(good);
      expect(wrongHost.ok).toBe(false);
      expect(wrongHost.output).toMatch(/server certificate for "elsewhere.example.net" .*does not match host name "127.0.0.1"|does not match host name/);
    } finally {
      await serve(good);
      await a.reloadTls();
    }
    expect((await libpq(good)).ok).toBe(true);
  });

  it('admits the replication role only from the peers\' addresses, and clients only from their networks', async () => {
    // 127.0.0.1 is no longer a peer's address: the replication role is refused from it, clients are not.
    expect(await a.setPeerHosts(['127.0.0.2'])).toBe(true);
    try {
      const r = await libpq(good);
      expect(r.ok).toBe(false);
      expect(r.output).toMatch(/pg_hba.conf rejects connection for host "127.0.0.1", user "replicator"/);
      expect(await nodeConnect({ user: 'postgres', password: 'super-secret', ssl: { ca: await readCa() } })).toMatchObject({ ssl: true });
      expect(await a.setPeerHosts(['127.0.0.2'])).toBe(false);
    } finally {
      await a.setPeerHosts(['127.0.0.1']);
    }
    expect((await libpq(good)).ok).toBe(true);
    // a's client networks are 127.0.0.1/32: a client calling from 127.0.0.2 matches no line.
    await expect(nodeConnect({ user: 'app', password: 'app-secret', ssl: { ca: await readCa() }, from: '127.0.0.2' }))
      .rejects.toThrow(/no pg_hba.conf entry for host "127.0.0.2", user "app"/);
  });
});

/** A socket that connects from `localAddress` (any 127.x address is this machine's), for node-postgres' `stream`. */
function fromAddress(localAddress: string): Socket {
  const socket = new Socket();
  const connect = socket.connect.bind(socket) as (o: { port: number; host: string; localAddress: string }) => Socket;
  // node-postgres calls connect(port, host): keep its arguments and add the source address.
  Object.assign(socket, { connect: (port: number, host: string) => connect({ port, host, localAddress }) });
  return socket;
}

function readCa(): Promise<string> {
  return readFile(ca.caFile, 'utf8');
}
