// PostgreSQL's listener with TLS, as a peer configures it: TLS 1.3 only, hostssl lines only, the
// replication role only from the peers' addresses and only with the certificate (shard CA, CN = the
// peer id) of a peer at that address (pg_ident.conf);
// and libpq's side (sslmode=verify-full, what standbys, pg_basebackup and pg_rewind use) refusing
// a server whose certificate is from another CA, expired, or issued for another host.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFile, readFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { execa } from 'execa';
import { closeClient, type PostgresServer } from '../../src/postgres/index.js';
import type { TlsFiles } from '../../src/tls/index.js';
import { HeldSourcePostgres } from '../../src/peer/source-postgres.js';
import { waitFor } from '../../tools/lib/wait.js';
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

/**
 * Ends a client. end() of one whose connection the server refused after the TLS 1.3 handshake (an
 * expired client certificate) sometimes never settles (seen: a 180 s test timeout): closeClient.
 */
const endBounded = (c: pg.Client): Promise<void> => closeClient(c);

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
    await endBounded(c);
  }
}

/**
 * A physical replication connection (what a standby's walreceiver and pg_basebackup open) as the
 * replication role, from `from`, presenting `files` (or no certificate, or no TLS with `ssl: false`):
 * resolves with IDENTIFY_SYSTEM's system id, rejects with the server's refusal.
 */
async function replicationConnect(files: TlsFiles | null, opts: { from?: string; ssl?: false } = {}): Promise<string> {
  const ssl = opts.ssl === false ? false : {
    ca: await readCa(), ...(files === null ? {} : { cert: await readFile(files.certFile, 'utf8'), key: await readFile(files.keyFile, 'utf8') }),
  };
  // node-postgres sends `replication` as a start-up parameter; its types do not list it.
  const config: pg.ClientConfig & { replication: string } = {
    host: '127.0.0.1', port: a.port, user: 'replicator', password: TEST_REPL_PASSWORD, ssl, replication: 'true', connectionTimeoutMillis: 10_000,
    ...(opts.from === undefined ? {} : { stream: () => fromAddress(opts.from!) }),
  };
  const c = new pg.Client(config);
  c.on('error', () => undefined);
  try {
    await c.connect();
    const r = await c.query<{ systemid: string }>('IDENTIFY_SYSTEM');
    return r.rows[0]!.systemid;
  } finally {
    await endBounded(c);
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

  it('refuses a connection without TLS, the replication role\'s too', async () => {
    await expect(nodeConnect({ user: 'app', password: 'app-secret', ssl: false })).rejects.toThrow(/no pg_hba.conf entry for host "127.0.0.1", user "app", database "postgres", no encryption/);
    await expect(replicationConnect(null, { ssl: false }))
      .rejects.toThrow(/no pg_hba.conf entry for replication connection from host "127.0.0.1", user "replicator", no encryption/);
    // The same connection over TLS with a's certificate: admitted (the control).
    expect(await replicationConnect(good)).toMatch(/^\d+$/);
  });

  it('binds the replication role to the peers\' certificates: one of the CA for an id that is no peer is refused, and so is a peer\'s from another peer\'s address', async () => {
    // Issued by the shard's CA (manatee-adm certs issue), for an id that is not in the shard.
    const stranger = await libpq(await ca.peer('stranger'));
    expect(stranger.ok).toBe(false);
    expect(stranger.output).toMatch(/certificate authentication failed for user "replicator"/);
    expect(await serverLogSays(/provided user name \(replicator\) and authenticated user name \(stranger\) do not match|no match in usermap "peers@127\.0\.0\.1\/32" for user "replicator" authenticated as "stranger"/)).toBe(true);
    // b is a peer, at 127.0.0.2: its certificate is taken from there, and from nowhere else.
    const b = await ca.peer('b');
    const ssl = async (f: TlsFiles) => ({ ca: await readCa(), cert: await readFile(f.certFile, 'utf8'), key: await readFile(f.keyFile, 'utf8') });
    await expect(replicationConnect(await ca.peer('stranger'))).rejects.toThrow(/certificate authentication failed for user "replicator"/);
    expect(await a.setPeers([{ id: 'a', host: '127.0.0.1' }, { id: 'b', host: '127.0.0.2' }])).toBe(true);
    try {
      expect(await replicationConnect(b, { from: '127.0.0.2' })).toMatch(/^\d+$/);
      expect(await nodeConnect({ user: 'replicator', password: '', ssl: await ssl(b), from: '127.0.0.2' })).toEqual({ ssl: true, version: 'TLSv1.3' });
      await expect(replicationConnect(b)).rejects.toThrow(/certificate authentication failed for user "replicator"/);
      expect((await libpq(b)).ok).toBe(false);
      // a's own certificate from b's address: refused too.
      await expect(replicationConnect(good, { from: '127.0.0.2' })).rejects.toThrow(/certificate authentication failed for user "replicator"/);
      // The certificate is the replication role's only: an application role presenting it still needs its password.
      await expect(nodeConnect({ user: 'app', password: 'wrong', ssl: await ssl(good) })).rejects.toThrow(/password authentication failed for user "app"/);
    } finally {
      await a.setPeers([{ id: 'a', host: '127.0.0.1' }]);
    }
    expect((await libpq(good)).ok).toBe(true);
  });

  it('refuses the replication role with an expired certificate of a peer (the shard\'s CA, the right CN)', async () => {
    const expired = await expiredPeerCert(ca, 'a', join(sb.dir, 'expired-client'));
    await expect(replicationConnect(expired)).rejects.toThrow(/certificate|expired|SSL/i);
    expect(await serverLogSays(/could not accept SSL connection: certificate verify failed|certificate has expired/)).toBe(true);
    const r = await libpq(expired);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/certificate (has )?expired|certificate verify failed|sslv3 alert/i);
    expect(await replicationConnect(good)).toMatch(/^\d+$/);
  });

  it('refuses the replication role without a peer certificate, or with one from another CA', async () => {
    await expect(nodeConnect({ user: 'replicator', password: TEST_REPL_PASSWORD, ssl: { ca: await readCa() } }))
      .rejects.toThrow(/connection requires a valid client certificate/);
    const stranger = await other.peer('b');
    const r = await libpq({ ...stranger, caFile: good.caFile });
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/certificate verify failed|unknown ca|certificate unknown/i);
  });

  it('a peer whose certificate the server refuses after the TLS 1.3 handshake is not hung by it: acceptsPassword says null at once and keeps no socket (closeClient)', async () => {
    const files = [await other.peer('b'), await expiredPeerCert(ca, 'b', join(sb.dir, 'expired-b'))];
    for (const f of files) {
      const ssl = { ca: await readCa(), cert: await readFile(f.certFile, 'utf8'), key: await readFile(f.keyFile, 'utf8') };
      const sources = new HeldSourcePostgres({ selfId: 'b', replicationUser: 'replicator', replicationPassword: TEST_REPL_PASSWORD, timeoutMs: 10_000, ssl: () => ssl });
      const source = { id: 'a', host: '127.0.0.1', pgUrl: `postgres://127.0.0.1:${a.port}/postgres`, apiUrl: 'https://127.0.0.1:1' };
      // pg's end() after such a refusal waited for good, once in a few tries: several tries, each bounded by the test's timeout.
      for (let i = 0; i < 5; i++) {
        const sockets = openSockets();
        expect(await sources.acceptsPassword(source, TEST_REPL_PASSWORD)).toBeNull();
        await waitFor('the refused connection\'s socket closed', () => (openSockets() <= sockets ? true : null), { timeoutMs: 10_000 });
      }
    }
  }, 120_000);

  it('a peer asking another peer\'s PostgreSQL (before a copy) checks that its certificate is bound to that peer: another peer\'s found at its address is refused (MANATEE_ERR_TLS_PEER_ID)', async () => {
    const ssl = { ca: await readCa(), cert: await readFile(good.certFile, 'utf8'), key: await readFile(good.keyFile, 'utf8') };
    const sources = new HeldSourcePostgres({ selfId: 'a', replicationUser: 'replicator', replicationPassword: TEST_REPL_PASSWORD, timeoutMs: 10_000, ssl: () => ssl });
    const at = (id: string) => ({ id, host: '127.0.0.1', pgUrl: `postgres://127.0.0.1:${a.port}/postgres`, apiUrl: 'https://127.0.0.1:1' });
    try {
      expect(await sources.online(at('a'))).toBe(true);
      const err = await sources.online(at('z')).catch((e: unknown) => e);
      expect(err).toMatchObject({ message: expect.stringMatching(/the server's certificate is bound to peer "a", not to "z", the peer dialled/) });
      expect(((err as Error).cause as { code?: string }).code).toBe('MANATEE_ERR_TLS_PEER_ID');
      expect(await sources.acceptsPassword(at('z'), TEST_REPL_PASSWORD)).toBeNull();
      expect(await sources.acceptsPassword(at('a'), TEST_REPL_PASSWORD)).toBe(true);
      expect(await sources.online(at('a'))).toBe(true);
    } finally {
      sources.close('test done');
    }
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
    expect(await a.setPeers([{ id: 'a', host: '127.0.0.2' }])).toBe(true);
    try {
      const r = await libpq(good);
      expect(r.ok).toBe(false);
      expect(r.output).toMatch(/pg_hba.conf rejects connection for host "127.0.0.1", user "replicator"/);
      expect(await nodeConnect({ user: 'postgres', password: 'super-secret', ssl: { ca: await readCa() } })).toMatchObject({ ssl: true });
      expect(await a.setPeers([{ id: 'a', host: '127.0.0.2' }])).toBe(false);
    } finally {
      await a.setPeers([{ id: 'a', host: '127.0.0.1' }]);
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

/** Whether a's server log (the newest file) has a line matching `re`: why PostgreSQL refused, which it tells no client. */
async function serverLogSays(re: RegExp): Promise<boolean> {
  const { readdir } = await import('node:fs/promises');
  const files = (await readdir(a.logDir)).sort();
  const text = await Promise.all(files.map((f) => readFile(join(a.logDir, f), 'utf8').catch(() => '')));
  return text.some((t) => re.test(t));
}

/** This process's open TCP sockets (their handles). */
function openSockets(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TLSWrap').length;
}

function readCa(): Promise<string> {
  return readFile(ca.caFile, 'utf8');
}
