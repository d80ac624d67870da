// manatee-adm as operators run it: a child process (node --import tsx) against real API servers
// of three peers on 127.0.0.1, over one in-memory cluster state. The remaining subcommands run
// in-process through runAdm(), the same code without the process start-up cost.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { createServer, type Server } from 'node:http';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { FastifyInstance } from 'fastify';
import { createApi } from '../../src/api/server.js';
import { runAdm } from '../../src/cli/adm/program.js';
import type { PeerInfo } from '../../src/model/index.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';
import { pino } from 'pino';
import { ReloadableTls } from '../../src/tls/index.js';
import { makeTestCa } from '../helpers/certs.js';
import { freePort } from '../../tools/lib/wait.js';
import { ADMIN_TOKEN, MemoryStore, memoryDeps, peer, threePeerState } from '../../tools/lib/memory-peer.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let servers: FastifyInstance[] = [];
let store: MemoryStore;
let peers: PeerInfo[];
let deadUrl: string;

beforeAll(async () => {
  const ports = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  peers = ['a', 'b', 'c'].map((id, i) => peer(id, `http://127.0.0.1:${ports[i]!}`));
  // z is deposed and its machine is gone: nothing listens on its port.
  deadUrl = `http://127.0.0.1:${ports[3]}`;
  const z = peer('z', deadUrl);
  store = new MemoryStore(threePeerState(peers, [z]), peers);
  for (const [i, self] of peers.entries()) {
    // The asked peer fetches the others' /status with a deadline (1.5 s by default). These servers share the
    // test's event loop with the child processes' start-up on a loaded machine, so they get a long one.
    const app = await createApi(memoryDeps({ self, store, limits: { peerStatusTimeoutMs: 20_000 } }));
    servers.push(app);
    await app.listen({ host: '127.0.0.1', port: ports[i]! });
  }
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

async function adm(args: string[], env: Record<string, string> = {}) {
  const r = await execa('node', ['--import', 'tsx', 'src/cli/manatee-adm.ts', ...args], {
    cwd: ROOT,
    reject: false,
    timeout: 60_000,
    env: { MANATEE_URL: '', MANATEE_ADMIN_TOKEN: '', ...env },
  });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

/** The same commands in this process, for the subcommands that the child-process tests do not cover. */
async function admInProcess(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runAdm(args, {
    out: (t) => { stdout += t; },
    err: (t) => { stderr += t; },
    env: { MANATEE_URL: peers[0]!.apiUrl, MANATEE_ADMIN_TOKEN: ADMIN_TOKEN },
    now: () => new Date(),
  });
  return { code, stdout, stderr };
}

const url = () => peers[2]!.apiUrl; // ask the async: any peer's API answers for the shard

describe('manatee-adm (child process)', () => {
  it('status prints the table of every peer, from any peer', async () => {
    const r = await adm(['status', '--url', url()]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('shard: generation 3, initWal 0/3000060');
    expect(r.stdout).toContain('freeze: not frozen');
    expect(r.stdout).toMatch(/^primary\s+a\s+127\.0\.0\.1\s+ok\s+yes\s+-/m);
    expect(r.stdout).toMatch(/^sync\s+b\s+127\.0\.0\.1\s+ok\s+no\s+72 B/m);
    expect(r.stdout).toMatch(/^async\s+c\s+127\.0\.0\.1\s+ok\s+no\s+72 B/m);
    expect(r.stdout).toMatch(/^deposed\s+z\s+127\.0\.0\.1\s+\?/m);
    expect(r.stdout).toContain(`z: sitter unreachable at ${deadUrl}`);
    expect(r.stdout).toContain('a: last decision none');
  });

  it('status --json prints the same view for scripts (URL and token from the environment)', async () => {
    const r = await adm(['status', '--json'], { MANATEE_URL: peers[1]!.apiUrl });
    expect(r.code).toBe(0);
    const view = JSON.parse(r.stdout);
    expect(view.answeredBy).toBe('b');
    expect(view.generation).toBe(3);
    expect(view.peers.map((p: { id: string; role: string }) => `${p.role}:${p.id}`)).toEqual(['primary:a', 'sync:b', 'async:c', 'deposed:z']);
    expect(view.peers[0]).toMatchObject({ reachable: true, pgOnline: true, writable: true });
    expect(view.peers[3]).toMatchObject({ reachable: false, pgOnline: null });
  });

  it('freeze, then status shows the shard frozen with the reason', async () => {
    const f = await adm(['freeze', '-r', 'kernel upgrade', '--url', url()], { MANATEE_ADMIN_TOKEN: ADMIN_TOKEN });
    expect(f.stderr).toBe('');
    expect(f.code).toBe(0);
    expect(f.stdout).toMatch(/^frozen by operator: kernel upgrade \(generation 3, state version \d+\)$/m);
    const s = await adm(['status', '--url', url()]);
    expect(s.stdout).toMatch(/^freeze: FROZEN since \S+: kernel upgrade$/m);
  });

  it('promote refused: prints the code and the reason on stderr and exits 1', async () => {
    const r = await adm(['promote', '-p', 'a', '--url', url()], { MANATEE_ADMIN_TOKEN: ADMIN_TOKEN });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toBe('manatee-adm: MANATEE_ERR_BAD_PROMOTE: cannot promote a: it is already the primary');
  });

  it('a wrong token exits 1 with MANATEE_ERR_FORBIDDEN, and changes nothing', async () => {
    const before = store.version;
    const r = await adm(['unfreeze', '--url', url()], { MANATEE_ADMIN_TOKEN: 'not-the-token' });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('manatee-adm: MANATEE_ERR_FORBIDDEN: the admin token is wrong');
    expect(store.version).toBe(before);
  });

  it('reads the token from --token-file or MANATEE_ADMIN_TOKEN_FILE; --token works but warns that argv is visible', async () => {
    if (store.state!.freeze !== undefined) await admInProcess(['unfreeze']);
    const dir = await makeTmpDir('adm-token');
    try {
      const file = join(dir.path, 'token');
      await writeFile(file, `${ADMIN_TOKEN}\n`, { mode: 0o600 });
      const f = await adm(['freeze', '-r', 'token file', '--url', url(), '--token-file', file]);
      expect(f.stderr).toBe('');
      expect(f.code).toBe(0);
      const u = await adm(['unfreeze', '--url', url()], { MANATEE_ADMIN_TOKEN_FILE: file });
      expect(u.stderr).toBe('');
      expect(u.code).toBe(0);
      const argv = await adm(['freeze', '-r', 'argv', '--url', url(), '--token', ADMIN_TOKEN]);
      expect(argv.code).toBe(0);
      expect(argv.stderr).toBe('manatee-adm: warning: --token puts the admin token where every user of this machine can read it (ps) and in shell history; use MANATEE_ADMIN_TOKEN or --token-file');
      await chmod(file, 0o644);
      const loose = await adm(['unfreeze', '--url', url(), '--token-file', file]);
      expect(loose.code).toBe(0);
      expect(loose.stderr).toBe(`manatee-adm: warning: the token file ${file} is readable by group or others (chmod 600 ${file})`);
    } finally {
      await dir.cleanup();
    }
  });

  it('a token file that cannot be read, or is empty, fails before calling the API; so do --token and --token-file together', async () => {
    const dir = await makeTmpDir('adm-token');
    try {
      const missing = join(dir.path, 'missing');
      const r = await admInProcess(['unfreeze', '--token-file', missing]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^manatee-adm: MANATEE_ERR_TOKEN_FILE: cannot read the token file ${missing}: ENOENT`));
      const empty = join(dir.path, 'empty');
      await writeFile(empty, '\n', { mode: 0o600 });
      const e = await admInProcess(['unfreeze', '--token-file', empty]);
      expect(e.stderr).toBe(`manatee-adm: MANATEE_ERR_TOKEN_FILE: the token file ${empty} is empty\n`);
      const both = await admInProcess(['unfreeze', '--token-file', empty, '--token', 'x']);
      expect(both.stderr).toBe('manatee-adm: MANATEE_ERR_USAGE: give the admin token once: --token-file or --token, not both\n');
    } finally {
      await dir.cleanup();
    }
  });

  it('with several URLs, a peer that cannot be reached is skipped for the next', async () => {
    if (store.state!.freeze !== undefined) await admInProcess(['unfreeze']);
    const r = await adm(['freeze', '-r', 'via the second url', '--url', `${deadUrl},${url()}`], { MANATEE_ADMIN_TOKEN: ADMIN_TOKEN });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(store.state!.freeze?.reason).toBe('via the second url');
    await admInProcess(['unfreeze']);
  });

  it('an unreachable peer is a clear error naming the URL', async () => {
    const r = await adm(['status', '--url', deadUrl]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`manatee-adm: MANATEE_ERR_UNREACHABLE: cannot reach the Manatee API at ${deadUrl}: ECONNREFUSED`);
  });

  it('history prints the changes as a table and as JSON', async () => {
    const t = await adm(['history', '--url', url()]);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/^TIME\s+G#\s+VER\s+MODE\s+FRZ\s+PRIMARY\s+SYNC\s+ASYNC\s+DEPOSED\s+SUMMARY$/m);
    expect(t.stdout).toMatch(/\s3\s+1\s+multi\s+-\s+a\s+b\s+c\s+z\s+cluster setup for normal \(multi-peer\) mode$/m);
    const j = await adm(['history', '--json', '-n', '1', '--url', url()]);
    const entries = JSON.parse(j.stdout);
    expect(entries).toHaveLength(1);
    expect(entries[0].version).toBe(store.version);
  });

  it('a usage error exits 1 with MANATEE_ERR_USAGE', async () => {
    const r = await adm(['set-onwm', 'maybe']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^manatee-adm: MANATEE_ERR_USAGE: .*must be "on", "off" or "config"/);
  });
});

describe('manatee-adm (in process)', () => {
  it('unfreeze, promote and clear-promote change the state and say so', async () => {
    if (store.state!.freeze === undefined) await admInProcess(['freeze', '-r', 'x']);
    const u = await admInProcess(['unfreeze']);
    expect(u).toMatchObject({ code: 0, stderr: '' });
    expect(u.stdout).toMatch(/^unfrozen by operator/);

    const p = await admInProcess(['promote', '-p', 'c', '--expire', '30', '--json']);
    expect(p.code).toBe(0);
    expect(JSON.parse(p.stdout).state.promote).toMatchObject({ id: 'c', role: 'async', asyncIndex: 0, generation: 3 });
    expect(store.state!.promote?.id).toBe('c');

    const again = await admInProcess(['promote', '-p', 'b']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^manatee-adm: MANATEE_ERR_PROMOTE_PENDING: /);

    const c = await admInProcess(['clear-promote']);
    expect(c.code).toBe(0);
    expect(store.state!.promote).toBeUndefined();
  });

  it('reap forgets the gone deposed peer, and refuses a peer in the chain', async () => {
    const refused = await admInProcess(['reap', '-p', 'b']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^manatee-adm: MANATEE_ERR_PEER_IN_CHAIN: cannot reap b: it is the sync/);
    const r = await admInProcess(['reap', '-p', 'z']);
    expect(r).toMatchObject({ code: 0, stdout: expect.stringMatching(/^operator reaped deposed peer z/) });
    expect(store.state!.deposed).toEqual([]);
  });

  it('rebuild asks the peer at --url, and is refused on the primary', async () => {
    const ok = await admInProcess(['rebuild', '--url', peers[2]!.apiUrl]);
    expect(ok).toMatchObject({ code: 0, stdout: 'rebuild of c started (follow it with manatee-adm status)\n' });
    const refused = await admInProcess(['rebuild']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^manatee-adm: MANATEE_ERR_BAD_REBUILD: will not rebuild a: it is the primary/);
  });

  it("set-onwm sets the operator's override (Joyent's -m form too), refuses it unchanged, and --clear removes it", async () => {
    const on = await admInProcess(['set-onwm', '-m', 'on', '-y']);
    expect(on).toMatchObject({ code: 0, stderr: '' });
    expect(on.stdout).toMatch(/^operator turned one-node-write mode on: the primary drops its sync and asyncs at the next generation/);
    expect(store.state!.onwmOverride).toBe(true);
    const again = await admInProcess(['set-onwm', 'on']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^manatee-adm: MANATEE_ERR_ONWM_UNCHANGED: one-node-write mode is already set on by operator/);
    const off = await admInProcess(['set-onwm', 'off', '--json']);
    expect(off.code).toBe(0);
    expect(JSON.parse(off.stdout).state.onwmOverride).toBe(false);
    const clear = await admInProcess(['set-onwm', '--clear']);
    expect(clear).toMatchObject({ code: 0, stdout: expect.stringMatching(/^operator cleared the one-node-write mode override \(was off\)/) });
    expect(store.state!.onwmOverride).toBeUndefined();
  });

  it('set-onwm needs exactly one mode', async () => {
    for (const args of [['set-onwm'], ['set-onwm', 'on', '-m', 'off'], ['set-onwm', 'off', '--clear']]) {
      const r = await admInProcess(args);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^manatee-adm: MANATEE_ERR_USAGE: set-onwm needs one mode/);
    }
  });

  it('an admin command without any token fails before calling the API', async () => {
    let stderr = '';
    const code = await runAdm(['unfreeze'], { out: () => undefined, err: (t) => { stderr += t; }, env: { MANATEE_URL: url() }, now: () => new Date() });
    expect(code).toBe(1);
    expect(stderr).toMatch(/^manatee-adm: MANATEE_ERR_NO_TOKEN: /);
  });

  it('a bad --url is a usage error', async () => {
    const r = await admInProcess(['status', '--url', 'ftp://x']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^manatee-adm: MANATEE_ERR_USAGE: bad URL "ftp:\/\/x"/);
  });

  it('a peer that never answers is MANATEE_ERR_TIMEOUT after --timeout', async () => {
    const silent: Server = createServer(() => { /* never answers */ });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const addr = silent.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      const r = await admInProcess(['status', '--url', `http://127.0.0.1:${port}`, '--timeout', '1']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^manatee-adm: MANATEE_ERR_TIMEOUT: no answer from http:\/\/127\.0\.0\.1:\d+ within 1000 ms/);
    } finally {
      silent.closeAllConnections();
      await new Promise((r) => silent.close(r));
    }
  });

  it('checks an https peer against --ca or MANATEE_CA: the shard CA works; another CA, none, or a file that is not a CA is refused, naming the problem', async () => {
    const tmp = await makeTmpDir('adm-tls');
    let app: FastifyInstance | null = null;
    try {
      const shardCa = await makeTestCa(join(tmp.path, 'shard'));
      const otherCa = await makeTestCa(join(tmp.path, 'other'), 'Another CA');
      const files = await shardCa.peer('a', ['127.0.0.1']);
      const tls = await ReloadableTls.open(files, { expectedPeerId: 'a', log: pino({ level: 'silent' }) });
      const port = await freePort();
      app = await createApi({ ...memoryDeps({ self: peers[0]!, store }), tls });
      await app.listen({ host: '127.0.0.1', port });
      const https = `https://127.0.0.1:${port}`;
      const run = async (args: string[], env: Record<string, string> = {}) => {
        let stdout = '';
        let stderr = '';
        const code = await runAdm(args, { out: (t) => { stdout += t; }, err: (t) => { stderr += t; }, env: { MANATEE_URL: https, ...env }, now: () => new Date() });
        return { code, stdout, stderr };
      };
      const right = await run(['state', '--ca', shardCa.caFile]);
      expect({ code: right.code, stderr: right.stderr }).toEqual({ code: 0, stderr: '' });
      expect(JSON.parse(right.stdout)).toMatchObject({ state: { primary: { id: 'a' } } });
      expect((await run(['state'], { MANATEE_CA: shardCa.caFile })).code).toBe(0);

      const wrong = await run(['state', '--ca', otherCa.caFile]);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toContain(`manatee-adm: MANATEE_ERR_TLS_UNTRUSTED: refused the certificate of ${https}: its certificate is not signed by a trusted CA`);
      expect(wrong.stderr).toContain(`checked against the CA in ${otherCa.caFile}`);
      const none = await run(['state']);
      expect(none.stderr).toMatch(/^manatee-adm: MANATEE_ERR_TLS_UNTRUSTED: .*give the shard's CA certificate with --ca FILE \(or MANATEE_CA=FILE\)/);
      const missing = await run(['state', '--ca', join(tmp.path, 'nope.crt')]);
      expect(missing.stderr).toMatch(/^manatee-adm: MANATEE_ERR_CA_FILE: cannot read the CA file .*nope\.crt/);
      const leaf = await run(['state'], { MANATEE_CA: files.certFile });
      expect(leaf.stderr).toMatch(/^manatee-adm: MANATEE_ERR_CA_FILE: the CA file .*a\.crt is not usable: it is a certificate, but not a CA/);
      const key = await run(['state'], { MANATEE_CA: files.keyFile });
      expect(key.stderr).toMatch(/^manatee-adm: MANATEE_ERR_CA_FILE: the CA file .*a\.key is not usable/);
    } finally {
      await app?.close();
      await tmp.cleanup();
    }
  });

  it('something that is not a Manatee API is MANATEE_ERR_BAD_RESPONSE', async () => {
    const other: Server = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/html' }).end('<html>hi</html>'); });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    try {
      const addr = other.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      const r = await admInProcess(['history', '--url', `http://127.0.0.1:${port}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^manatee-adm: MANATEE_ERR_BAD_RESPONSE: .* is not JSON: is this a Manatee API\?/);
    } finally {
      await new Promise((r) => other.close(r));
    }
  });
});

describe('manatee-adm: show -v, peers, pg-status, verify, state, active, add-peer, remove-peer (in process)', () => {
  it('show -v adds the links table and per-peer upstream, replication state, LSN and decision', async () => {
    const r = await admInProcess(['show', '-v']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^ROLE\s+PEER\s+HOST\s+PG\s+WRITABLE\s+LAG\s+LAG_S\s+SITTER\s+POSTGRES\s+UPSTREAM\s+REPL\s+LSN\s+DECISION\s+TAGS$/m);
    expect(r.stdout).toMatch(/^async\s+c\s+127\.0\.0\.1\s+ok\s+no\s+72 B\s+0\.5s\s+\d+\s+4242\s+b\s+streaming\s+0\/3000148\s+none\s+-$/m);
    expect(r.stdout).toMatch(/^UPSTREAM\s+DOWNSTREAM\s+EXPECTED\s+STATE\s+SYNC_STATE\s+LAG\s+LAG_S$/m);
    expect(r.stdout).toMatch(/^a\s+b\s+sync\s+streaming\s+sync\s+72 B\s+0\.5s$/m);
  });

  it('-o picks the columns, and an unknown column is a usage error naming the valid ones', async () => {
    const r = await admInProcess(['show', '-o', 'peer,role,lag_s']);
    expect(r.stdout).toMatch(/^PEER\s+ROLE\s+LAG_S\n/m);
    expect(r.stdout).toMatch(/^c\s+async\s+0\.5s$/m);
    const bad = await admInProcess(['show', '-o', 'peer,colour']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^manatee-adm: MANATEE_ERR_USAGE: -o: unknown column "colour"; columns: role,peer,/);
    const h = await admInProcess(['history', '-o', 'g#,primary,summary', '-n', '1']);
    expect(h.stdout).toMatch(/^G#\s+PRIMARY\s+SUMMARY\n\d+\s+a\s+/);
  });

  it('peers lists every peer with its session and Raft membership', async () => {
    // An earlier test reaped z: put it back as deposed.
    if (store.state!.deposed.length === 0) store.commit({ ...store.state!, deposed: [peer('z', deadUrl)] }, 'z deposed again for peers');
    const r = await admInProcess(['peers']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ROLE\s+PEER\s+HOST\s+ACTIVE\s+RAFT\s+PGURL\s+APIURL$/m);
    expect(r.stdout).toMatch(/^sync\s+b\s+127\.0\.0\.1\s+yes\s+voter\s+/m);
    expect(r.stdout).toMatch(/^deposed\s+z\s+127\.0\.0\.1\s+no\s+-\s+/m);
    const j = JSON.parse((await admInProcess(['peers', '--json'])).stdout);
    expect(j.members.voters).toEqual(['a', 'b', 'c']);
    expect(j.peers.map((p: { id: string }) => p.id)).toEqual(['a', 'b', 'c', 'z']);
  });

  it('pg-status prints the links, and with PERIOD COUNT repeats COUNT times', async () => {
    const once = await admInProcess(['pg-status']);
    expect(once.stdout).toMatch(/^primary a at 0\/3000148 \(generation \d+\)$/m);
    expect(once.stdout).toMatch(/^b\s+c\s+async\s+streaming\s+async\s+72 B\s+0\.5s$/m);
    const rep = await admInProcess(['pg-status', '0.05', '3', '--json']);
    expect(rep.code).toBe(0);
    const lines = rep.stdout.trim().split('\n').map((l) => JSON.parse(l) as { links: { downstream: string }[] });
    expect(lines).toHaveLength(3);
    expect(lines[2]!.links.map((l) => l.downstream)).toEqual(['b', 'c']);
    const bad = await admInProcess(['pg-status', '0']);
    expect(bad.stderr).toMatch(/^manatee-adm: MANATEE_ERR_USAGE: .*PERIOD must be a number of seconds above 0/);
  });

  it('verify reports the deposed peer, that nothing listens at its address, and that it is no Raft member, and exits 1; --json says the same for scripts', async () => {
    if (store.state!.deposed.length === 0) store.commit({ ...store.state!, deposed: [peer('z', deadUrl)] }, 'z deposed again for verify');
    const r = await admInProcess(['verify']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^error: DEPOSED \(z\): z is deposed/m);
    expect(r.stdout).toContain(`error: PEER_UNREACHABLE (z): the deposed peer z (${deadUrl}) is unreachable: `);
    expect(r.stdout).toMatch(/ECONNREFUSED.*: nothing of it was checked$/m);
    expect(r.stderr).toBe('manatee-adm: MANATEE_ERR_VERIFY_FAILED: 2 problems found\n');
    const j = await admInProcess(['verify', '--json']);
    expect(JSON.parse(j.stdout)).toEqual({
      ok: false,
      issues: [
        expect.objectContaining({ severity: 'error', code: 'DEPOSED', peer: 'z' }),
        expect.objectContaining({ severity: 'error', code: 'PEER_UNREACHABLE', peer: 'z', message: expect.stringContaining(deadUrl) }),
        // verify asks GET /members too: z was never a member of the Raft group (a, b, c).
        expect.objectContaining({ severity: 'warning', code: 'STATE_PEER_NOT_RAFT_MEMBER', peer: 'z', message: expect.stringMatching(/^the deposed peer z is no Raft member: reap it/) }),
      ],
    });
  });

  it('state and active print JSON', async () => {
    const s = JSON.parse((await admInProcess(['state'])).stdout);
    expect(s.version).toBe(store.version);
    expect(s.state.primary.id).toBe('a');
    const a = JSON.parse((await admInProcess(['active'])).stdout);
    expect(a.map((p: { id: string }) => p.id)).toEqual(['a', 'b', 'c']);
  });

  it('add-peer and remove-peer change the Raft membership, with clear errors', async () => {
    const add = await admInProcess(['add-peer', 'd', '127.0.0.1:7103']);
    expect(add).toMatchObject({ code: 0, stderr: '' });
    expect(add.stdout).toBe('added d (127.0.0.1:7103) to the Raft group as a voter (voters: a, b, c, d; learners: -)\n');
    const again = await admInProcess(['add-peer', 'd', '127.0.0.1:7103']);
    expect(again.stderr).toMatch(/^manatee-adm: MANATEE_ERR_PEER_ALREADY_MEMBER: d is already a voting member/);
    const bad = await admInProcess(['add-peer', 'e', 'nowhere']);
    expect(bad.stderr).toMatch(/^manatee-adm: MANATEE_ERR_BAD_REQUEST: body\.address: has a bad format/);
    const rm = await admInProcess(['remove-peer', 'd', '--json']);
    expect(JSON.parse(rm.stdout).members.voters).toEqual(['a', 'b', 'c']);
    const gone = await admInProcess(['remove-peer', 'd']);
    expect(gone.stderr).toMatch(/^manatee-adm: MANATEE_ERR_PEER_NOT_FOUND: d is not a member/);
  });
});
