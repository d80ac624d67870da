// A rotation of the admin token and of the shard secret on a live three-peer shard with TLS
// (issue #14 item 5), as README "Security" tells an operator: the new value added as an accepted
// one on every peer + SIGHUP, then made current (the old one accepted) + SIGHUP, then the old one
// dropped + SIGHUP. Writes go on throughout, nothing fails over (same generation and primary), the
// replication role's password moves with the secret (the standbys' walsenders are cut after each
// step and reconnect), and the old values are refused at the end.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { ShardReport } from '../../src/api/shard.js';
import { verifyShard } from '../../src/cli/adm/views.js';
import { derivedPassword } from '../../src/peer/config.js';
import { secretFingerprint } from '../../src/peer/credentials.js';
import { scramVerifierMatches } from '../../src/postgres/scram.js';
import { encodeFrame, FrameDecoder, FRAME_CHALLENGE, FRAME_HELLO, helloMac } from '../../src/raft/transport/index.js';
import { CA_CERT_FILE, peerCertFile, peerKeyFile } from '../../src/tls/index.js';
import { httpJson, Shard, type ShardPeer } from '../../tools/lib/shard.js';

async function editConfig(peer: ShardPeer, edit: (c: Record<string, unknown>) => void): Promise<void> {
  const c = JSON.parse(await readFile(peer.configPath, 'utf8')) as Record<string, unknown>;
  edit(c);
  await writeFile(peer.configPath, JSON.stringify(c, null, 2), { mode: 0o600 });
}

describe('rotation of the admin token and the shard secret', () => {
  let shard: Shard;

  beforeAll(async () => {
    // 8 s sessions: the test asserts that a rotation causes no failover, and on the loaded 2-core
    // test machine a sitter's event loop stalls for 4 to 6 s at times (load 38: two runs of 9 failed
    // over so, before the rotation began or in its middle), which with 2 s sessions is a failover of its own.
    shard = await Shard.create({ tls: true, prefix: 'rot', timeouts: { sessionTimeoutMs: 8000, keepaliveIntervalMs: 1000 } });
  });

  afterAll(async () => {
    await shard.teardown();
  });

  /** SIGHUPs `peer` and waits for its log to say the credentials were reloaded (the nth time). */
  async function hup(peer: ShardPeer): Promise<void> {
    const count = async (): Promise<number> => (await shard.logLines(peer)).filter((l) => l['decision'] === 'credentials-reload' && l['outcome'] === 'reloaded').length;
    const before = await count();
    process.kill(shard.sitterPid(peer)!, 'SIGHUP');
    await shard.waitFor(`${peer.id} to reload its credentials`, async () => (await count()) > before, 60_000);
  }

  /** Status of POST /admin/clear-promote with `token` (anything but 401/403 got past the token check). */
  async function adminStatus(peer: ShardPeer, token: string): Promise<number> {
    return (await httpJson(`${peer.apiUrl}/admin/clear-promote`, { method: 'POST', body: {}, token, timeoutMs: 10_000 })).status;
  }

  /**
   * Whether `to`'s Raft transport admits a hello made with `secret` (as peer `from`, with its
   * certificate): its log names the connection when it refuses it. (An admitted one replaces the
   * real peer's, which takes its place back at once: the socket alone cannot tell.)
   */
  async function raftHelloAccepted(from: ShardPeer, to: ShardPeer, secret: string): Promise<boolean> {
    const certs = shard.certsDir!;
    const [ca, cert, key] = await Promise.all([
      readFile(join(certs, CA_CERT_FILE), 'utf8'), readFile(peerCertFile(certs, from.id), 'utf8'), readFile(peerKeyFile(certs, from.id), 'utf8'),
    ]);
    const sock = tlsConnect({ host: '127.0.0.1', port: to.raftPort, ca, cert, key });
    sock.on('error', () => undefined);
    const dec = new FrameDecoder(1024);
    const challenge = await new Promise<Buffer>((resolve, reject) => {
      sock.on('data', (c: Buffer) => {
        const f = dec.push(c)[0];
        if (f?.kind === FRAME_CHALLENGE) resolve(f.payload);
      });
      setTimeout(() => { reject(new Error('no challenge')); }, 10_000);
    });
    const remote = `127.0.0.1:${sock.localPort ?? 0}`;
    sock.write(encodeFrame(FRAME_HELLO, JSON.stringify({ from: from.id, to: to.id, mac: helloMac(secret, challenge, from.id, to.id).toString('hex') })));
    const verdict = await shard.waitFor(`${to.id} to admit or refuse the hello from ${remote}`, async () => {
      const lines = await shard.logLines(to);
      if (lines.some((l) => l['remote'] === remote && l['code'] === 'MANATEE_ERR_RAFT_AUTH' && /wrong secret/.test(String(l['reason'])))) return 'refused';
      // Admitted: it replaced the peer's connection, and the peer's own took it back (logged as replaced).
      return lines.some((l) => JSON.stringify(l).includes(remote) && l['code'] !== 'MANATEE_ERR_RAFT_AUTH') ? 'admitted' : null;
    }, 30_000);
    sock.destroy();
    return verdict === 'admitted';
  }

  /**
   * What GET /shard (asked of `asked`) shows of the peers' credentials: each peer's fingerprints,
   * and the codes that verify gives for them.
   */
  async function rotationView(asked: ShardPeer): Promise<{ creds: Record<string, unknown>; codes: string[] }> {
    const r = await httpJson(`${asked.apiUrl}/shard`, { timeoutMs: 10_000 });
    expect(r.status).toBe(200);
    const report = r.body as ShardReport;
    const codes = verifyShard(report).map((i) => i.code).filter((c) => /SECRET|TOKEN|ROTATION/.test(c));
    return { creds: Object.fromEntries(report.peers.map((p) => [p.id, p.credentials])), codes };
  }

  /**
   * A rebuild in the middle of the window (issue #14): `peer` (switched to the new secret, its
   * upstream not yet) copies its data afresh from its upstream: the backup request carries its new
   * secret, which the upstream accepts, and pg_basebackup logs in with the replication password
   * that the upstream's catalog takes. It must finish, and the peer stream again.
   */
  async function rebuildInWindow(peer: ShardPeer): Promise<void> {
    const before = await shard.statusOf(peer);
    const r = await httpJson(`${peer.apiUrl}/admin/rebuild`, { method: 'POST', body: {}, token: shard.adminToken, timeoutMs: 10_000 });
    expect(r.status).toBe(200);
    const done = await shard.waitFor(`${peer.id}'s rebuild to finish`, async () => {
      const s = await shard.statusOf(peer);
      return s !== null && !s.rebuild.running && s.rebuild.lastResult !== null && s.rebuild.lastResult !== before?.rebuild.lastResult ? s : null;
    }, 240_000);
    expect(done.rebuild.lastError).toBeNull();
  }

  /** 'ok' when `peer`'s PostgreSQL admits the replication role with `password` (over TLS, with a peer certificate), else the error's code. */
  /** Cuts every walsender on `upstream` and waits until the standbys stream again (they log in anew). */
  async function reconnectStandbys(chain: { primary: ShardPeer; sync: ShardPeer; async0: ShardPeer }): Promise<void> {
    for (const upstream of [chain.primary, chain.sync]) {
      await shard.query(upstream, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'walsender'");
    }
    await shard.waitForTopology({ primary: chain.primary.id, sync: chain.sync.id, async: [chain.async0.id] }, 120_000);
  }

  it('accepts both values for a window, switches with no failover while writes go on, then refuses the old ones', async () => {
    const chain = await shard.waitForChain();
    const { primary } = chain;
    const generation = (await shard.stateOf(primary)).generation;
    const writer = shard.writer({ intervalMs: 20, table: 'rotation' });
    await writer.start();
    await writer.waitForAckAfter(Date.now());

    const oldToken = shard.adminToken;
    const newToken = randomBytes(16).toString('hex');
    const oldSecret = shard.secret;
    const newSecret = randomBytes(16).toString('hex');
    const oldReplPw = derivedPassword(oldSecret, 'replication');
    const newReplPw = derivedPassword(newSecret, 'replication');
    expect(await adminStatus(primary, newToken)).toBe(403);
    // The verifier PostgreSQL made at initdb (CREATE ROLE ... PASSWORD) is matched by src/postgres/scram.ts.
    const initial = await shard.query<{ v: string }>(primary, "SELECT rolpassword AS v FROM pg_authid WHERE rolname = 'replicator'");
    expect(await scramVerifierMatches(initial[0]!.v, oldReplPw)).toBe(true);
    expect(await scramVerifierMatches(initial[0]!.v, newReplPw)).toBe(false);

    // 1. The new values accepted everywhere (still proving with the old secret).
    for (const p of shard.peers) {
      await editConfig(p, (c) => { c['acceptedAdminTokens'] = [newToken]; c['acceptedSecrets'] = [newSecret]; });
      await hup(p);
    }
    for (const p of shard.peers) {
      expect([401, 403]).not.toContain(await adminStatus(p, newToken));
      expect([401, 403]).not.toContain(await adminStatus(p, oldToken));
    }
    const fp = secretFingerprint;
    const added = { secret: fp(oldSecret), acceptedSecrets: [fp(newSecret)], adminToken: fp(oldToken), acceptedAdminTokens: [fp(newToken)] };
    expect(await rotationView(primary)).toEqual({ creds: Object.fromEntries(shard.peers.map((p) => [p.id, added])), codes: ['ROTATION_WINDOW_OPEN'] });

    // 2. The switch, one peer at a time (the primary in the middle): each proves itself with the
    // new secret; the primary moves the role passwords, the standbys follow. The walsenders are cut
    // after the primary's switch (one standby has switched, one has not) and after the last one:
    // the standbys log in again with whichever password they follow.
    for (const p of [chain.async0, primary, chain.sync]) {
      await editConfig(p, (c) => {
        c['adminToken'] = newToken; c['acceptedAdminTokens'] = [oldToken];
        c['secret'] = newSecret; c['acceptedSecrets'] = [oldSecret];
      });
      await hup(p);
      if (p === primary) {
        await shard.waitFor('the primary to set the new replication password', async () => {
          const rows = await shard.query<{ v: string }>(primary, "SELECT rolpassword AS v FROM pg_authid WHERE rolname = 'replicator'");
          return await scramVerifierMatches(rows[0]!.v, newReplPw);
        }, 60_000);
      }
      if (p !== chain.async0) await reconnectStandbys(chain);
      else expect((await rotationView(chain.sync)).codes).toEqual(['SECRETS_DIFFER', 'ADMIN_TOKENS_DIFFER']);
      if (p === primary) await rebuildInWindow(chain.async0);
    }
    const switched = { secret: fp(newSecret), acceptedSecrets: [fp(oldSecret)], adminToken: fp(newToken), acceptedAdminTokens: [fp(oldToken)] };
    expect(await rotationView(chain.async0)).toEqual({ creds: Object.fromEntries(shard.peers.map((p) => [p.id, switched])), codes: ['ROTATION_WINDOW_OPEN'] });
    for (const p of shard.peers) {
      await shard.waitFor(`${p.id}'s passfile to hold the new replication password`, async () => {
        const text = await readFile(join(p.dataDir, 'pgrun', 'pgpass'), 'utf8');
        return text.endsWith(`:${newReplPw}\n`);
      }, 60_000);
    }

    // 3. The old values dropped.
    for (const p of shard.peers) {
      await editConfig(p, (c) => { delete c['acceptedAdminTokens']; delete c['acceptedSecrets']; });
      await hup(p);
    }
    await reconnectStandbys(chain);
    const done = { secret: fp(newSecret), acceptedSecrets: [], adminToken: fp(newToken), acceptedAdminTokens: [] };
    expect(await rotationView(primary)).toEqual({ creds: Object.fromEntries(shard.peers.map((p) => [p.id, done])), codes: [] });
    // The reload's log line names the fingerprints (under names that the log's redaction leaves alone).
    const reloads = (await shard.logLines(primary)).filter((l) => l['decision'] === 'credentials-reload' && l['outcome'] === 'reloaded');
    expect(reloads.at(-1)?.['credentials']).toEqual({ secretFingerprint: fp(newSecret), acceptedSecretFingerprints: [], adminTokenFingerprint: fp(newToken), acceptedAdminTokenFingerprints: [] });
    const before = writer.acked.length;
    await writer.waitForAckAfter(Date.now());

    for (const p of shard.peers) {
      expect(await adminStatus(p, oldToken)).toBe(403);
      expect([401, 403]).not.toContain(await adminStatus(p, newToken));
    }
    expect(await raftHelloAccepted(chain.async0, chain.sync, oldSecret)).toBe(false);
    const refusal = (await shard.logLines(chain.sync)).find((l) => l['code'] === 'MANATEE_ERR_RAFT_AUTH' && /wrong secret/.test(String(l['reason'])));
    expect(refusal).toBeDefined();
    expect(await raftHelloAccepted(chain.async0, chain.sync, newSecret)).toBe(true);
    // The replication role's password is the new secret's everywhere (the primary set it, the
    // standbys replayed it). Over TLS the peers replicate with their certificates, not with it
    // (pg_hba's cert map=, test/postgres/tls.test.ts), so no login is tried with it here.
    for (const p of [primary, chain.async0]) {
      const [row] = await shard.query<{ v: string }>(p, "SELECT rolpassword AS v FROM pg_authid WHERE rolname = 'replicator'");
      expect(await scramVerifierMatches(row!.v, newReplPw)).toBe(true);
      expect(await scramVerifierMatches(row!.v, oldReplPw)).toBe(false);
    }

    // A file that does not load, or that would cut the peer off, is refused on SIGHUP with its
    // code; the current credentials stay.
    const refusals = async (code: string): Promise<number> =>
      (await shard.logLines(chain.async0)).filter((l) => l['decision'] === 'config-reload' && l['outcome'] === 'refused' && l['code'] === code).length;
    const good = await readFile(chain.async0.configPath, 'utf8');
    await writeFile(chain.async0.configPath, '{ "peerId": ');
    process.kill(shard.sitterPid(chain.async0)!, 'SIGHUP');
    await shard.waitFor('the malformed file refused', async () => (await refusals('MANATEE_ERR_CONFIG')) === 1, 60_000);
    await writeFile(chain.async0.configPath, good);
    await editConfig(chain.async0, (c) => { c['secret'] = randomBytes(16).toString('hex'); });
    process.kill(shard.sitterPid(chain.async0)!, 'SIGHUP');
    await shard.waitFor('the disjoint secret refused', async () => (await refusals('MANATEE_ERR_CREDENTIALS_DISJOINT')) === 1, 60_000);
    await writeFile(chain.async0.configPath, good);
    await editConfig(chain.async0, (c) => { c['adminToken'] = randomBytes(16).toString('hex'); });
    process.kill(shard.sitterPid(chain.async0)!, 'SIGHUP');
    await shard.waitFor('the disjoint admin token refused', async () => (await refusals('MANATEE_ERR_CREDENTIALS_TOKENS_DISJOINT')) === 1, 60_000);
    await writeFile(chain.async0.configPath, good);
    expect([401, 403]).not.toContain(await adminStatus(chain.async0, newToken));
    expect(await raftHelloAccepted(chain.sync, chain.async0, newSecret)).toBe(true);

    // No failover, and every acknowledged write is on the standbys.
    const end = await shard.stateOf(primary);
    expect(end.generation).toBe(generation);
    expect(end.primary.id).toBe(primary.id);
    expect(writer.acked.length).toBeGreaterThan(before);
    await writer.stop();
    await writer.waitReplicatedTo(chain.sync);
    await writer.waitReplicatedTo(chain.async0);
  }, 600_000);
});
