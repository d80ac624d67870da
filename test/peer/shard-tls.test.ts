// A shard of real sitters with TLS everywhere (issue #14): the API over HTTPS, Raft over mutual
// TLS, PostgreSQL replication over TLS 1.3 and no plain connection admitted; a renewed certificate
// taken on SIGHUP without a restart or a failover.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as tlsConnect } from 'node:tls';
import pg from 'pg';
import { issuePeerCertificate } from '../../src/tls/index.js';
import { httpJson, Shard } from '../../tools/lib/shard.js';
import type { ShardReport } from '../../src/api/shard.js';
import { waitFor } from '../../tools/lib/wait.js';

/** The fingerprint of the certificate a TLS server at 127.0.0.1:port presents now. */
function servedFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca }, () => {
      const fp = s.getPeerX509Certificate()?.fingerprint256 ?? '';
      s.destroy();
      resolve(fp);
    });
    s.on('error', reject);
  });
}

describe('a shard with TLS', () => {
  let shard: Shard;

  beforeAll(async () => {
    // Sessions of 8 s, not the fixture's 2 s: the test asserts no failover across the SIGHUP, and at load 30-40 a
    // sitter waited up to 2.5 s for a CPU (loop-stall lines), so a 2 s session failed over with no fault of ours.
    shard = await Shard.create({ tls: true, prefix: 'tls', timeouts: { sessionTimeoutMs: 8000, keepaliveIntervalMs: 1000 } });
  });

  afterAll(async () => {
    await shard.teardown();
  });

  it('replicates over TLS, refuses plain connections, and takes a renewed certificate on SIGHUP with no failover', async () => {
    const { primary, sync } = await shard.waitForChain();
    const st = (await shard.statusOf(primary))!;
    expect(st.peer.apiUrl).toBe(`https://127.0.0.1:${primary.apiPort}`);
    expect(st.tls?.peerId).toBe(primary.id);
    const generation = st.state!.generation;

    // The sync streams from the primary, and the async from the sync, over TLS 1.3.
    for (const upstream of [primary, sync]) {
      await waitFor(`a TLS replication connection on ${upstream.id}`, async () => {
        const rows = await shard.query<{ ssl: boolean; version: string }>(upstream, 'SELECT s.ssl, s.version FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)');
        return rows.length === 1 && rows.every((r) => r.ssl && r.version === 'TLSv1.3');
      }, { timeoutMs: 120_000, intervalMs: 500 });
    }
    await shard.query(primary, 'CREATE TABLE IF NOT EXISTS tls_probe (v int)');
    await shard.query(primary, 'INSERT INTO tls_probe VALUES (1)');
    await waitFor('the row on the sync', async () => (await shard.query<{ n: string }>(sync, 'SELECT count(*) AS n FROM tls_probe'))[0]?.n === '1', { timeoutMs: 60_000 });

    // /shard: the peer asked reaches every other peer's API over TLS, each checked to show its own
    // certificate (bound to the peer asked), and finds each one's status.
    const report = await waitFor('every peer reachable in /shard', async () => {
      const r = await httpJson(`${sync.apiUrl}/shard`, { timeoutMs: 20_000 });
      const body = r.body as ShardReport;
      return r.status === 200 && body.peers.length === 3 && body.peers.every((p) => p.reachable) ? body : null;
    }, { timeoutMs: 60_000, intervalMs: 500 });
    expect(report.peers.map((p) => p.tlsExpiresInSeconds !== null)).toEqual([true, true, true]);

    // A client without TLS is refused (every line of pg_hba.conf is hostssl).
    const plain = new pg.Client({ host: '127.0.0.1', port: primary.pgPort, user: 'postgres', password: 'shard-superuser-pw', database: 'postgres', ssl: false, connectionTimeoutMillis: 5000 });
    plain.on('error', () => undefined);
    await expect(plain.connect()).rejects.toThrow(/no pg_hba.conf entry .* no encryption/);

    // A new certificate for the sync, replaced on disk; SIGHUP; the API serves it, no restart.
    const before = (await shard.statusOf(sync))!.tls!;
    const pid = sync.child!.pid!;
    await issuePeerCertificate({ dir: shard.certsDir!, peerId: sync.id, hosts: ['127.0.0.1', 'localhost'], force: true });
    process.kill(pid, 'SIGHUP');
    const after = await waitFor('the sync reloaded its certificate', async () => {
      const t = (await shard.statusOf(sync))?.tls;
      return t !== undefined && t.fingerprint256 !== before.fingerprint256 ? t : null;
    }, { timeoutMs: 60_000, intervalMs: 200 });
    expect(after.reloadError).toBeNull();
    expect(await servedFingerprint(sync.apiPort, shard.caPem!)).toBe(after.fingerprint256);
    expect(sync.child?.pid).toBe(pid);
    // The status answers from memory; the log lines reach the sitter's log file a moment later.
    const lines = await waitFor('the reload logged by the sync', async () => {
      const l = await shard.logLines(sync);
      return l.some((x) => x['decision'] === 'tls-reloaded') && l.some((x) => x['tls'] === 'reloaded') ? l : null;
    }, { timeoutMs: 30_000, intervalMs: 200 });
    expect(lines.some((l) => l['tls'] === 'reloaded')).toBe(true);
    expect(lines.some((l) => l['decision'] === 'tls-reloaded')).toBe(true);

    // The shard goes on: a write reaches the sync, on the same generation and primary.
    await shard.query(primary, 'INSERT INTO tls_probe VALUES (2)');
    await waitFor('the second row on the sync', async () => (await shard.query<{ n: string }>(sync, 'SELECT count(*) AS n FROM tls_probe'))[0]?.n === '2', { timeoutMs: 60_000 });
    const end = await shard.stateOf(primary);
    expect(end.generation).toBe(generation);
    expect(end.primary.id).toBe(primary.id);
  });
});
