// Rotation of the shard secret and the admin token (issue #14 item 5), piece by piece: the
// configuration's accepted values, the credential set a SIGHUP swaps in, the admin token check,
// the backup routes' secret, the Raft hello, PostgreSQL's SCRAM verifiers, and the role passwords
// that the primary sets and the standbys follow.
import { afterEach, describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import { pino } from 'pino';
import { tokenChecker } from '../../src/api/auth.js';
import { backupRoutes, SECRET_HEADER } from '../../src/backup/index.js';
import { ConfigError, derivedPassword, parseConfig } from '../../src/peer/config.js';
import { CREDENTIALS_ERR_DISJOINT, CREDENTIALS_ERR_TOKENS_DISJOINT, ShardCredentials, secretFingerprint } from '../../src/peer/credentials.js';
import { PG_ERR_PASSWORD_UNKNOWN, PgCredentials, type PgCredentialsTarget } from '../../src/peer/pg-credentials.js';
import { scramVerifier, scramVerifierMatches } from '../../src/postgres/scram.js';
import { TcpTransport } from '../../src/raft/transport/index.js';
import type { PeerInfo, PeerRole } from '../../src/model/index.js';
import { silentLogger } from '../../src/log.js';
import { Zfs } from '../../src/zfs/index.js';
import { freePort, waitFor } from '../../tools/lib/wait.js';

const OLD = 'old-shard-secret-0123456789';
const NEW = 'new-shard-secret-9876543210';
const THIRD = 'third-shard-secret-5555555555';

function minimal(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    peerId: 'a', host: '127.0.0.1', dataDir: '/var/lib/manatee/a', postgres: { port: 5432 }, api: { port: 5433 },
    raft: { port: 5434, members: [{ id: 'a', address: '127.0.0.1:5434' }] },
    secret: OLD, adminToken: 'an-admin-token-16+', ...extra,
  };
}

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } });
  return { lines, logger };
}

describe('configuration of a rotation', () => {
  it('takes accepted secrets and admin tokens', () => {
    const c = parseConfig(minimal({ acceptedSecrets: [NEW], acceptedAdminTokens: ['the-new-admin-token-1'] }));
    expect(c.acceptedSecrets).toEqual([NEW]);
    expect(c.acceptedAdminTokens).toEqual(['the-new-admin-token-1']);
  });

  it('refuses a malformed list: short values, the current value again, a value twice, too many', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ acceptedSecrets: ['short'] }, /acceptedSecrets\[0\]: must NOT have fewer than 16 characters/],
      [{ acceptedSecrets: NEW }, /acceptedSecrets: must be array/],
      [{ acceptedSecrets: [OLD] }, /acceptedSecrets: must not repeat the current value \(secret\)/],
      [{ acceptedSecrets: [NEW, NEW] }, /acceptedSecrets: lists the same value twice/],
      [{ acceptedAdminTokens: ['an-admin-token-16+'] }, /acceptedAdminTokens: must not repeat the current value \(adminToken\)/],
      [{ acceptedAdminTokens: ['a', 'b', 'c', 'd', 'e'].map((x) => x.repeat(16)) }, /acceptedAdminTokens: must NOT have more than 4 items/],
    ];
    for (const [extra, message] of bad) {
      let err: unknown = null;
      try {
        parseConfig(minimal(extra));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).code).toBe('MANATEE_ERR_CONFIG');
      expect((err as Error).message).toMatch(message);
    }
  });
});

describe('ShardCredentials', () => {
  it('proves with the current secret, accepts every one, and derives a password per accepted secret (current first)', () => {
    const c = new ShardCredentials(parseConfig(minimal({ acceptedSecrets: [NEW] })));
    expect(c.secret).toBe(OLD);
    expect(c.secrets()).toEqual([OLD, NEW]);
    expect(c.rotating).toBe(true);
    expect(c.rolePasswords('replication')).toEqual([derivedPassword(OLD, 'replication'), derivedPassword(NEW, 'replication')]);
    expect(c.summary()).toEqual({ secret: secretFingerprint(OLD), acceptedSecrets: [secretFingerprint(NEW)], adminToken: secretFingerprint('an-admin-token-16+'), acceptedAdminTokens: [] });
    expect(secretFingerprint(OLD)).not.toContain(OLD.slice(0, 6));
    expect(secretFingerprint(OLD)).toMatch(/^[0-9a-f]{12}$/);
    expect(secretFingerprint(NEW)).not.toBe(secretFingerprint(OLD));
  });

  it('keeps a configured password: it does not rotate with the secret', () => {
    const c = new ShardCredentials(parseConfig(minimal({ acceptedSecrets: [NEW], postgres: { port: 5432, replicationPassword: 'configured-pw' } })));
    expect(c.rolePasswords('replication')).toEqual(['configured-pw']);
    expect(c.derives('replication')).toBe(false);
    expect(c.derives('superuser')).toBe(true);
  });

  it('swaps in a reloaded set that shares a secret with the current one, and tells its listeners', () => {
    const c = new ShardCredentials(parseConfig(minimal()));
    const seen: unknown[] = [];
    c.on('change', (s) => seen.push(s));
    expect(c.update(parseConfig(minimal({ acceptedSecrets: [NEW] })))).toBe(true);
    expect(c.update(parseConfig(minimal({ acceptedSecrets: [NEW] })))).toBe(false);
    expect(c.update(parseConfig(minimal({ secret: NEW, acceptedSecrets: [OLD] })))).toBe(true);
    expect(c.update(parseConfig(minimal({ secret: NEW })))).toBe(true);
    expect(c.secrets()).toEqual([NEW]);
    expect(c.update(parseConfig(minimal({ secret: NEW, acceptedAdminTokens: ['another-admin-token-1'] })))).toBe(true);
    expect(c.adminTokens()).toEqual(['an-admin-token-16+', 'another-admin-token-1']);
    expect(seen).toHaveLength(4);
  });

  it('refuses (MANATEE_ERR_CREDENTIALS_DISJOINT) a set with none of the current secrets, and keeps the current one', () => {
    const c = new ShardCredentials(parseConfig(minimal({ acceptedSecrets: [NEW] })));
    let err: unknown = null;
    try {
      c.update(parseConfig(minimal({ secret: THIRD })));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe(CREDENTIALS_ERR_DISJOINT);
    expect((err as Error).message).toMatch(/cut off from its shard/);
    expect(c.secrets()).toEqual([OLD, NEW]);
  });

  it('refuses (MANATEE_ERR_CREDENTIALS_TOKENS_DISJOINT) admin tokens with none of the current ones, and keeps the current set', () => {
    const c = new ShardCredentials(parseConfig(minimal({ acceptedAdminTokens: ['the-new-admin-token-1'] })));
    let err: unknown = null;
    try {
      c.update(parseConfig(minimal({ adminToken: 'a-third-admin-token-1', acceptedSecrets: [NEW] })));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe(CREDENTIALS_ERR_TOKENS_DISJOINT);
    expect((err as Error).message).toMatch(/admin tokens share no value with the current ones/);
    // Nothing of that file was taken, not even its (valid) secrets.
    expect(c.adminTokens()).toEqual(['an-admin-token-16+', 'the-new-admin-token-1']);
    expect(c.secrets()).toEqual([OLD]);
    // The new token, once accepted, may become the configured one and the old one dropped.
    expect(c.update(parseConfig(minimal({ adminToken: 'the-new-admin-token-1' })))).toBe(true);
    expect(c.adminTokens()).toEqual(['the-new-admin-token-1']);
  });
});

describe('the admin token check with a rotation', () => {
  it('accepts every listed token, read at each check, and refuses the others (403)', () => {
    let tokens: readonly string[] = ['old-admin-token', 'new-admin-token'];
    const check = tokenChecker(() => tokens);
    const codeOf = (t: string): string => {
      try {
        check.check(`Bearer ${t}`);
        return 'passed';
      } catch (err) {
        return (err as { code: string }).code;
      }
    };
    expect(codeOf('old-admin-token')).toBe('passed');
    expect(codeOf('new-admin-token')).toBe('passed');
    expect(codeOf('third-admin-token')).toBe('MANATEE_ERR_FORBIDDEN');
    tokens = ['new-admin-token'];
    expect(codeOf('old-admin-token')).toBe('MANATEE_ERR_FORBIDDEN');
    expect(codeOf('new-admin-token')).toBe('passed');
  });

  it('refuses to be built with an empty list or an empty token', () => {
    expect(() => tokenChecker(() => [])).toThrow(/must not be empty/);
    expect(() => tokenChecker(() => ['ok-token', ''])).toThrow(/must not be empty/);
  });
});

describe('the backup routes with a rotation', () => {
  const apps: { close(): Promise<void> }[] = [];
  afterEach(async () => { for (const a of apps.splice(0)) await a.close(); });

  it('admit every accepted secret, read at each request, and refuse (403 MANATEE_ERR_BACKUP_FORBIDDEN) any other', async () => {
    let secrets: readonly string[] = [OLD, NEW];
    const cap = capture();
    const app = Fastify();
    apps.push(app);
    await app.register(backupRoutes, { zfs: new Zfs({ log: silentLogger() }), dataset: 'none/none', secret: OLD, secrets: () => secrets, log: cap.logger });
    const get = async (secret: string): Promise<{ status: number; code: unknown }> => {
      const r = await app.inject({ method: 'GET', url: '/backup/jobs/00000000-0000-4000-8000-000000000000', headers: { [SECRET_HEADER]: secret } });
      return { status: r.statusCode, code: (r.json<{ code?: string }>()).code };
    };
    // 404: past the secret check, no such job.
    expect((await get(OLD)).status).toBe(404);
    expect((await get(NEW)).status).toBe(404);
    expect(await get(THIRD)).toEqual({ status: 403, code: 'MANATEE_ERR_BACKUP_FORBIDDEN' });
    secrets = [NEW];
    expect(await get(OLD)).toEqual({ status: 403, code: 'MANATEE_ERR_BACKUP_FORBIDDEN' });
    expect((await get(NEW)).status).toBe(404);
    expect(cap.lines.some((l) => l['code'] === 'MANATEE_ERR_BACKUP_FORBIDDEN')).toBe(true);
  });
});

describe('the Raft hello with a rotation', () => {
  const open: TcpTransport[] = [];
  afterEach(async () => { for (const t of open.splice(0)) await t.close(); });

  async function node(id: string, port: number, peers: Record<string, string>, secret: string, accepted: string[] = []) {
    const cap = capture();
    const got: string[] = [];
    const t = new TcpTransport({
      id, secret, acceptedSecrets: accepted, listen: { host: '127.0.0.1', port }, peers, logger: cap.logger,
      handlers: { onMessages: (ms) => { for (const m of ms) got.push(m.from); } }, reconnectMinMs: 20, reconnectMaxMs: 100,
    });
    await t.start();
    open.push(t);
    return { t, got, lines: cap.lines };
  }
  const hb = (from: string, to: string) => ({ type: 'heartbeat' as const, from, to, term: 1, commit: 1 });

  it('admits a peer that proves itself with an accepted secret; after the window, refuses the old one (MANATEE_ERR_RAFT_AUTH)', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    // b has switched (new secret, old accepted); a still proves itself with the old one.
    const b = await node('b', pb, { a: `127.0.0.1:${pa}` }, NEW, [OLD]);
    const a = await node('a', pa, { b: `127.0.0.1:${pb}` }, OLD, [NEW]);
    // Sent again on every try: the transport may drop a message (Raft retransmits), for example one
    // written into a connection that the other side is just refusing or replacing.
    await waitFor('both ways delivered', () => {
      a.t.send([hb('a', 'b')]);
      b.t.send([hb('b', 'a')]);
      return b.got.includes('a') && a.got.includes('b');
    }, { timeoutMs: 20_000, intervalMs: 100 });
    // The window closes on b: a's next connection, made with the old secret, is refused.
    b.t.setSecrets(NEW);
    await a.t.close();
    const a2 = await node('a', pa, { b: `127.0.0.1:${pb}` }, OLD);
    const refusal = await waitFor('the refusal logged', () => {
      a2.t.send([hb('a', 'b')]);
      return b.lines.find((l) => l['code'] === 'MANATEE_ERR_RAFT_AUTH');
    }, { timeoutMs: 20_000, intervalMs: 100 });
    expect(String(refusal['reason'])).toMatch(/wrong secret .* each of the 1 accepted secrets/);
    expect(b.t.stats().authFailures).toBeGreaterThan(0);
    // a switches too: admitted again.
    a2.t.setSecrets(NEW);
    const before = b.got.length;
    await waitFor('delivered with the new secret', () => {
      a2.t.send([hb('a', 'b')]);
      return b.got.length > before;
    }, { timeoutMs: 20_000, intervalMs: 100 });
  });

  it('refuses a short accepted secret', () => {
    expect(() => new TcpTransport({
      id: 'a', secret: NEW, acceptedSecrets: ['short'], listen: { host: '127.0.0.1', port: 0 }, peers: {}, logger: silentLogger(), handlers: { onMessages: () => undefined },
    })).toThrow(/at least 16 characters/);
  });
});

describe('SCRAM-SHA-256 verifiers', () => {
  it('matches its own password only, and nothing that is not a verifier', async () => {
    const v = await scramVerifier('pw-one');
    expect(v).toMatch(/^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
    expect(await scramVerifierMatches(v, 'pw-one')).toBe(true);
    expect(await scramVerifierMatches(v, 'pw-two')).toBe(false);
    expect(await scramVerifierMatches('md5abcdef', 'pw-one')).toBe(false);
    expect(await scramVerifierMatches(v.replace('$4096:', '$99999999:'), 'pw-one')).toBe(false);
  });

  it('is reproducible from its salt and iterations (a verifier PostgreSQL made is matched in shard-rotation.test.ts)', async () => {
    const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
    expect(await scramVerifier('pencil', { salt, iterations: 4096 })).toBe(await scramVerifier('pencil', { salt, iterations: 4096 }));
    expect(await scramVerifier('pencil', { salt, iterations: 4096 })).toMatch(/^SCRAM-SHA-256\$4096:W22ZaJ0SNY7soEsUEjb6gQ==\$/);
  });
});

describe('role passwords through a rotation (PgCredentials)', () => {
  class FakePg implements PgCredentialsTarget {
    running = true;
    readonly superuser = 'postgres';
    readonly replicationUser = 'replicator';
    currentReplicationPassword: string;
    verifiers = new Map<string, string | null>();
    isStreaming = true;
    altered: string[] = [];
    constructor(password: string) {
      this.currentReplicationPassword = password;
    }
    static async of(password: string): Promise<FakePg> {
      const pg = new FakePg(password);
      pg.verifiers.set('replicator', await scramVerifier(password));
      pg.verifiers.set('postgres', await scramVerifier(password));
      return pg;
    }
    roleVerifiers(roles: readonly string[]) { return Promise.resolve(new Map(roles.map((r) => [r, this.verifiers.get(r) ?? null]))); }
    setRoleVerifier(role: string, verifier: string) { this.verifiers.set(role, verifier); this.altered.push(role); return Promise.resolve(); }
    setReplicationPassword(p: string) { const changed = p !== this.currentReplicationPassword; this.currentReplicationPassword = p; return Promise.resolve(changed); }
    streaming() { return Promise.resolve(this.isStreaming); }
  }
  const upstream: PeerInfo = { id: 'up', host: '127.0.0.1', pgUrl: 'postgres://127.0.0.1:1/postgres', apiUrl: 'http://127.0.0.1:2' };

  function job(pg: FakePg, creds: ShardCredentials, role: PeerRole, accepts: (p: string) => boolean | null = () => null, tls = false) {
    const cap = capture();
    const asked: string[] = [];
    const j = new PgCredentials({
      target: pg, credentials: creds, role: () => ({ role, upstream: role === 'primary' ? null : upstream }), writable: () => role === 'primary',
      upstreamAccepts: (_u, p) => { asked.push(p); return Promise.resolve(accepts(p)); }, log: cap.logger, tls,
    });
    return { j, lines: cap.lines, asked };
  }

  it('with TLS the logs say the replication password is unused (certificates), and a standby does not ask its upstream', async () => {
    const primaryPg = await FakePg.of(derivedPassword(OLD, 'replication'));
    const creds = new ShardCredentials(parseConfig(minimal({ secret: NEW, acceptedSecrets: [OLD] })));
    const p = job(primaryPg, creds, 'primary', undefined, true);
    expect(await p.j.sync()).toBe('primary-set');
    const set = p.lines.filter((l) => l['decision'] === 'pg-password-set');
    expect(set.map((l) => [l['role'], l['usedForReplication'], l['msg']])).toEqual([
      ['replicator', false, "role passwords: replicator's password is now the one derived from the current shard secret (unused while TLS is on: the peers replicate with their certificates (pg_hba.conf cert, pg_ident.conf))"],
      // The superuser's password is what clients log in with, TLS or not.
      ['postgres', undefined, "role passwords: postgres's password is now the one derived from the current shard secret"],
    ]);
    // A standby whose stream is down: its upstream admits its certificate whatever the password, so it is not asked.
    const pg = await FakePg.of(derivedPassword(NEW, 'replication'));
    pg.currentReplicationPassword = derivedPassword(OLD, 'replication');
    pg.isStreaming = false;
    const s = job(pg, creds, 'async', () => true, true);
    expect(await s.j.sync()).toBe('standby-followed');
    expect(s.asked).toEqual([]);
    expect(pg.currentReplicationPassword).toBe(derivedPassword(NEW, 'replication'));
    const followed = s.lines.find((l) => l['decision'] === 'pg-password-followed');
    expect(followed).toMatchObject({ usedForReplication: false, reason: 'the role\'s verifier in the local catalog' });
    expect(followed?.['msg']).toMatch(/; unused while TLS is on: the peers replicate with their certificates/);
    // Without TLS the same standby asks (its password is what its stream logs in with).
    const plainPg = await FakePg.of(derivedPassword(NEW, 'replication'));
    plainPg.currentReplicationPassword = derivedPassword(OLD, 'replication');
    plainPg.isStreaming = false;
    const plain = job(plainPg, creds, 'async', () => true);
    await plain.j.sync();
    expect(plain.asked).toEqual([derivedPassword(NEW, 'replication')]);
    expect(plain.lines.find((l) => l['decision'] === 'pg-password-followed')).toMatchObject({ usedForReplication: true, reason: 'up accepted it' });
  });

  it('with TLS a role password that matches no accepted secret is said once, as info: it stops no stream', async () => {
    const pg = await FakePg.of(derivedPassword(THIRD, 'replication'));
    pg.isStreaming = false;
    const creds = new ShardCredentials(parseConfig(minimal({ acceptedSecrets: [NEW] })));
    const { j, lines, asked } = job(pg, creds, 'async', () => true, true);
    expect(await j.sync()).toBe('unknown');
    expect(await j.sync()).toBe('unknown');
    expect(asked).toEqual([]);
    const said = lines.filter((l) => l['code'] === PG_ERR_PASSWORD_UNKNOWN);
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({ level: 30, usedForReplication: false });
  });

  it('the primary sets the passwords of its current secret (as verifiers), once', async () => {
    const pg = await FakePg.of(derivedPassword(OLD, 'replication'));
    const creds = new ShardCredentials(parseConfig(minimal({ secret: NEW, acceptedSecrets: [OLD] })));
    const { j, lines } = job(pg, creds, 'primary');
    expect(await j.sync()).toBe('primary-set');
    expect(pg.altered.sort()).toEqual(['postgres', 'replicator']);
    expect(await scramVerifierMatches(pg.verifiers.get('replicator')!, derivedPassword(NEW, 'replication'))).toBe(true);
    expect(await scramVerifierMatches(pg.verifiers.get('postgres')!, derivedPassword(NEW, 'superuser'))).toBe(true);
    expect(pg.currentReplicationPassword).toBe(derivedPassword(NEW, 'replication'));
    expect(lines.filter((l) => l['decision'] === 'pg-password-set')).toHaveLength(2);
    expect(await j.sync()).toBe('primary-current');
    expect(pg.altered).toHaveLength(2);
  });

  it('a streaming standby follows the verifier in its own catalog, before and after the primary switches', async () => {
    const pg = await FakePg.of(derivedPassword(OLD, 'replication'));
    // This standby switched first: it proves itself with the new secret, but the role still has the old password.
    const creds = new ShardCredentials(parseConfig(minimal({ secret: NEW, acceptedSecrets: [OLD] })));
    const { j, lines } = job(pg, creds, 'sync');
    expect(await j.sync()).toBe('standby-followed');
    expect(pg.currentReplicationPassword).toBe(derivedPassword(OLD, 'replication'));
    // The primary's ALTER ROLE replays here.
    pg.verifiers.set('replicator', await scramVerifier(derivedPassword(NEW, 'replication')));
    await j.sync();
    expect(pg.currentReplicationPassword).toBe(derivedPassword(NEW, 'replication'));
    expect(lines.some((l) => l['decision'] === 'pg-password-followed' && l['current'] === true)).toBe(true);
    expect(pg.altered).toEqual([]);
  });

  it('a standby that does not stream asks its upstream which accepted password it takes', async () => {
    const pg = await FakePg.of(derivedPassword(OLD, 'replication'));
    pg.isStreaming = false;
    const creds = new ShardCredentials(parseConfig(minimal({ acceptedSecrets: [NEW] })));
    const { j } = job(pg, creds, 'async', (p) => p === derivedPassword(NEW, 'replication'));
    await j.sync();
    expect(pg.currentReplicationPassword).toBe(derivedPassword(NEW, 'replication'));
  });

  it('warns once (MANATEE_ERR_PG_PASSWORD_UNKNOWN) when the role has no accepted password, and keeps the current one', async () => {
    const pg = await FakePg.of(derivedPassword(THIRD, 'replication'));
    pg.isStreaming = false;
    const creds = new ShardCredentials(parseConfig(minimal({ acceptedSecrets: [NEW] })));
    const { j, lines } = job(pg, creds, 'async', () => false);
    expect(await j.sync()).toBe('unknown');
    expect(await j.sync()).toBe('unknown');
    expect(pg.currentReplicationPassword).toBe(derivedPassword(THIRD, 'replication'));
    expect(lines.filter((l) => l['code'] === PG_ERR_PASSWORD_UNKNOWN)).toHaveLength(1);
  });

  it('with PostgreSQL stopped, drops a password no longer accepted from the passfile', async () => {
    const pg = await FakePg.of(derivedPassword(OLD, 'replication'));
    pg.running = false;
    const creds = new ShardCredentials(parseConfig(minimal({ secret: NEW })));
    const { j } = job(pg, creds, 'async');
    expect(await j.sync()).toBe('not-running');
    expect(pg.currentReplicationPassword).toBe(derivedPassword(NEW, 'replication'));
  });
});
