import { describe, expect, it } from 'vitest';
import {
  confValue, conninfo, passfileLine, renderEnforcedConf, renderHba, renderIdent, renderPostgresqlConf, validatePeerId, NO_SYNC_PLACEHOLDER,
} from '../../src/postgres/config.js';
import { parseProgressLine, ProgressTracker, lineSplitter } from '../../src/postgres/progress.js';
import { parsePgUrl } from '../../src/postgres/url.js';
import { hasCode } from '../../src/errors.js';
import { peerAddressTable } from '../../src/postgres/server.js';

const base = { listenAddress: '127.0.0.1', port: 6000, runDir: '/run/m', passfile: '/run/m/pgpass', replicationUser: 'replicator', tls: null };
const tls = { caFile: '/run/m/tls/ca.crt', certFile: '/run/m/tls/peer.crt', keyFile: '/run/m/tls/peer.key' };

describe('configuration rendering', () => {
  it('postgresql.conf includes Manatee defaults, then the shard settings, then the operator overrides, then the enforced settings', () => {
    const text = renderPostgresqlConf();
    const order = ['manatee.conf', 'manatee-shard.conf', 'manatee-overrides.conf', 'manatee-enforced.conf'].map((f) => text.indexOf(`'${f}'`));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });

  it('a read-only primary names no real standby, so a commit that bypasses read-only waits', () => {
    const t = renderEnforcedConf({ ...base, role: { role: 'primary', writable: false, syncNames: `"${NO_SYNC_PLACEHOLDER}"`, oneNodeWriteMode: false, syncId: 'b' } });
    expect(t).toContain("default_transaction_read_only = on");
    expect(t).toContain(`synchronous_standby_names = '"${NO_SYNC_PLACEHOLDER}"'`);
  });

  it('a standby points primary_conninfo at its upstream with its id as application_name and a passfile', () => {
    const t = renderEnforcedConf({ ...base, role: { role: 'standby', upstreamHost: '10.0.0.2', upstreamPort: 6010, applicationName: 'peer-b' } });
    expect(t).toContain("primary_conninfo = 'host=''10.0.0.2'' port=''6010'' user=''replicator'' passfile=''/run/m/pgpass'' application_name=''peer-b''");
    expect(t).toContain("default_transaction_read_only = on");
  });

  it('with TLS, PostgreSQL serves TLS 1.3 with the peer certificate, and a standby checks its upstream (verify-full)', () => {
    const t = renderEnforcedConf({ ...base, tls, role: { role: 'standby', upstreamHost: '10.0.0.2', upstreamPort: 6010, applicationName: 'peer-b' } });
    expect(t).toContain('ssl = on');
    expect(t).toContain("ssl_cert_file = '/run/m/tls/peer.crt'");
    expect(t).toContain("ssl_key_file = '/run/m/tls/peer.key'");
    expect(t).toContain("ssl_ca_file = '/run/m/tls/ca.crt'");
    expect(t).toContain("ssl_min_protocol_version = 'TLSv1.3'");
    expect(t).toContain("sslmode=''verify-full'' sslrootcert=''/run/m/tls/ca.crt'' sslcert=''/run/m/tls/peer.crt'' sslkey=''/run/m/tls/peer.key'' ssl_min_protocol_version=''TLSv1.3''");
    expect(renderEnforcedConf({ ...base, role: { role: 'stopped' } })).toContain('ssl = off');
  });

  it('pg_hba.conf never trusts the network; with TLS every network line is hostssl and the replication role logs in with the certificate of a peer at that address', () => {
    const peers = [{ address: '10.0.0.1/32', ids: ['db1'] }, { address: '10.0.0.2/32', ids: ['db2', 'db2b'] }];
    const t = renderHba({ superuser: 'postgres', replicationUser: 'replicator', peers, clientCidrs: ['10.0.0.0/24'], tls: true });
    const network = t.split('\n').filter((l) => /^host/.test(l));
    for (const line of network) expect(line).toMatch(/^hostssl .*(scram-sha-256|cert +map=peers@[^ ]+|reject)$/);
    expect(t).toMatch(/^hostssl replication +replicator +10\.0\.0\.2\/32 +cert +map=peers@10\.0\.0\.2\/32$/m);
    expect(t).toMatch(/^hostssl all +replicator +10\.0\.0\.1\/32 +cert +map=peers@10\.0\.0\.1\/32$/m);
    // The replication role from anywhere else: refused before any client line can admit it.
    const reject = network.findIndex((l) => /^hostssl all +replicator +all +reject$/.test(l));
    const client = network.findIndex((l) => /^hostssl all +all +10\.0\.0\.0\/24 +scram-sha-256$/.test(l));
    expect(reject).toBeGreaterThan(0);
    expect(client).toBeGreaterThan(reject);
    expect(t).not.toContain('0.0.0.0/0');
    // Each address's map admits the certificates (CN) of the peers at it, and only as the replication role.
    const ident = renderIdent({ replicationUser: 'replicator', peers, tls: true });
    expect(ident.split('\n').filter((l) => l !== '' && !l.startsWith('#'))).toEqual([
      'peers@10.0.0.1/32  db1  replicator',
      'peers@10.0.0.2/32  db2  replicator',
      'peers@10.0.0.2/32  db2b  replicator',
    ]);
    const plain = renderHba({ superuser: 'postgres', replicationUser: 'replicator', peers: [{ address: '127.0.0.1/32', ids: [] }], clientCidrs: [], tls: false });
    expect(plain).toMatch(/^host replication +replicator +127\.0\.0\.1\/32 +scram-sha-256$/m);
    expect(renderIdent({ replicationUser: 'replicator', peers, tls: false }).split('\n').filter((l) => l !== '' && !l.startsWith('#'))).toEqual([]);
  });

  it('the peer table: each address once with the ids at it; a bad id or host is refused naming it', () => {
    expect(peerAddressTable([{ id: 'b', host: '10.0.0.2' }, { id: 'a', host: '10.0.0.1' }, { id: 'c', host: '10.0.0.2' }, { id: 'd', host: 'DB4.example.net' }])).toEqual([
      { address: '10.0.0.1/32', ids: ['a'] }, { address: '10.0.0.2/32', ids: ['b', 'c'] }, { address: 'db4.example.net', ids: ['d'] },
    ]);
    let caught: unknown = null;
    try { peerAddressTable([{ id: 'a b', host: '10.0.0.1' }]); } catch (err) { caught = err; }
    expect(hasCode(caught, 'MANATEE_ERR_PG_INVALID_OPTION')).toBe(true);
    expect((caught as Error).message).toMatch(/^peer "10\.0\.0\.1": id "a b" is not a peer id/);
    expect(() => peerAddressTable([{ id: 'a', host: 'not a host' }])).toThrow(/peer host "not a host": expected an IP address or a DNS name/);
  });

  it('quotes values for postgresql.conf, conninfo and passfiles', () => {
    expect(confValue("it's")).toBe("'it''s'");
    expect(confValue(true)).toBe('on');
    expect(conninfo({ password: "a'b\\c", port: 5 })).toBe("password='a\\'b\\\\c' port='5'");
    expect(passfileLine('u', 'p:w\\')).toBe('*:*:*:u:p\\:w\\\\\n');
  });

  it('rejects peer ids that cannot be an application_name, or that break the one peer id rule', () => {
    for (const bad of ['', '!x', 'a b', 'a"b', "a'b", 'x'.repeat(64), 'peer-1.example@2']) {
      let caught: unknown = null;
      try { validatePeerId(bad, 'id'); } catch (err) { caught = err; }
      expect(hasCode(caught, 'MANATEE_ERR_PG_INVALID_OPTION'), bad).toBe(true);
    }
    expect(() => { validatePeerId('peer-1.example_2', 'id'); }).not.toThrow();
  });
});

describe('progress parsing', () => {
  it('reads pg_basebackup and pg_rewind progress lines', () => {
    expect(parseProgressLine('  12345/67890 kB (18%), 0/1 tablespace')).toEqual({ doneKb: 12345, totalKb: 67890, percent: 18 });
    expect(parseProgressLine('1024/2048 kB (50%) copied')).toEqual({ doneKb: 1024, totalKb: 2048, percent: 50 });
    expect(parseProgressLine('pg_basebackup: checkpoint completed')).toBeNull();
  });

  it('computes rate and ETA from successive lines', () => {
    let now = 1000;
    const t = new ProgressTracker(() => now);
    now = 3000;
    const p = t.feed('1000/3000 kB (33%), 0/1 tablespace')!;
    expect(p.bytesDone).toBe(1000 * 1024);
    expect(p.rateBytesPerSec).toBe(512_000);
    expect(p.etaSec).toBe(4);
  });

  it('splits \\r-terminated progress output into lines', () => {
    const lines: string[] = [];
    const feed = lineSplitter((l) => lines.push(l));
    feed('1/2 kB (50%)\r2/2 k');
    feed('B (100%)\n');
    expect(lines).toEqual(['1/2 kB (50%)', '2/2 kB (100%)']);
  });

  it('parses a peer pgUrl, filling the shard credentials', () => {
    expect(parsePgUrl('postgres://replicator@10.0.0.1:6001/postgres', { user: 'x' })).toEqual({
      host: '10.0.0.1', port: 6001, user: 'replicator', password: null, dbname: 'postgres',
    });
    expect(parsePgUrl('postgres://127.0.0.1:7', { user: 'r', password: 'p' })).toMatchObject({ user: 'r', password: 'p', dbname: 'postgres' });
    expect(() => parsePgUrl('http://x:1/', { user: 'r' })).toThrow(/postgres:\/\//);
    expect(() => parsePgUrl('not a url', { user: 'r' })).toThrow(/not a URL/);
  });
});
