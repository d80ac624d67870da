// Shard-wide PostgreSQL settings on a real three-peer shard (issue 15, item 1): manatee-adm
// config set / unset / show / edit. A sighup setting reaches every peer by reload; a postmaster
// setting is shown pending restart per peer in /status, /shard, manatee-adm show and /metrics;
// bad values (wrong type, out of range, unknown name, Manatee-owned) are each refused with
// their code and change nothing; the per-peer overrides file stays the last word.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Shard, httpJson, type ShardPeer } from '../../tools/lib/shard.js';
import type { ShardReport } from '../../src/api/shard.js';

let shard: Shard;
let primary: ShardPeer;
let sync: ShardPeer;
let async0: ShardPeer;

const adm = (args: string[], env: Record<string, string> = {}) => shard.adm(args, shard.peers.map((p) => p.apiUrl).join(','), env);
const show = async (p: ShardPeer, name: string): Promise<string> => (await shard.query<{ v: string }>(p, `SELECT current_setting('${name}') AS v`))[0]!.v;
const configAt = async (p: ShardPeer): Promise<{ settings: Record<string, string>; version: number }> =>
  (await httpJson(`${p.apiUrl}/config`)).body as { settings: Record<string, string>; version: number };

beforeAll(async () => {
  // The third peer is tagged: never sync or primary, and no readers from load balancers.
  // Sessions of 8 s, not the fixture's 2 s: the tests assume the chain found here and time no failover (the killed
  // sync's session still ends at once: its ports refuse); at load 20-40 a sitter waited up to 2.5 s for a CPU.
  shard = await Shard.create({
    prefix: 'cfg', timeouts: { sessionTimeoutMs: 8000, keepaliveIntervalMs: 1000 },
    peerConfig: (i) => (i === 2 ? { tags: { nofailover: true, noloadbalance: true } } : {}),
  });
  ({ primary, sync, async0 } = await shard.waitForChain());
}, 240_000);

afterAll(async () => {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
  await shard?.teardown();
}, 60_000);

describe('manatee-adm config on a real shard', () => {
  it('a sighup setting set once is reloaded on every peer', async () => {
    const r = await adm(['config', 'set', 'work_mem=12MB', 'log_min_duration_statement=2s']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/set log_min_duration_statement=2s, set work_mem=12MB \(shard settings version 1\)/);
    for (const p of shard.peers) {
      await shard.waitFor(`work_mem 12MB on ${p.id}`, async () => (await show(p, 'work_mem')) === '12MB', 60_000);
      expect(await show(p, 'log_min_duration_statement')).toBe('2s');
      // PostgreSQL shows the value as soon as it has reloaded; the sitter's status records the
      // version it applied right after its reload call returns, so wait for that too.
      const settings = await shard.waitFor(`${p.id}'s status: shard settings version 1 applied`, async () => {
        const st = await shard.statusOf(p);
        return st?.settings?.appliedVersion === 1 ? st.settings : null;
      }, 60_000);
      expect(settings).toMatchObject({ version: 1, appliedVersion: 1, pendingRestart: [], error: null });
    }
  }, 180_000);

  it('bad values are refused, each with its code, and nothing changes', async () => {
    const before = await configAt(primary);
    const cases: [string, string, RegExp][] = [
      ['work_mem=lots', 'MANATEE_ERR_PG_SETTING_INVALID', /work_mem = "lots": expected an integer with a memory unit/],
      ['work_mem=1', 'MANATEE_ERR_PG_SETTING_RANGE', /outside the valid range 64 \.\. 2147483647 kB/],
      ['wrok_mem=4MB', 'MANATEE_ERR_PG_SETTING_UNKNOWN', /unknown setting "wrok_mem".*did you mean work_mem/],
      ['synchronous_standby_names=*', 'MANATEE_ERR_PG_SETTING_OWNED', /synchronous_standby_names is set by Manatee and cannot be changed: .*sync of the current generation/],
      ['synchronous_commit=off', 'MANATEE_ERR_PG_SETTING_OWNED', /expected one of on, remote_apply, because a commit is acknowledged only once the sync/],
    ];
    for (const [arg, code, message] of cases) {
      const r = await adm(['config', 'set', 'temp_buffers=16MB', arg]);
      expect({ arg, code: r.code, stdout: r.stdout }).toEqual({ arg, code: 1, stdout: '' });
      expect(r.stderr).toMatch(new RegExp(`^manatee-adm: ${code}: `));
      expect(r.stderr).toMatch(message);
    }
    expect(await configAt(async0)).toEqual(before);
    expect(await show(primary, 'temp_buffers')).toBe('8MB');
    const unset = await adm(['config', 'unset', 'shared_buffers']);
    expect(unset.code).toBe(1);
    expect(unset.stderr).toMatch(/^manatee-adm: MANATEE_ERR_SETTING_NOT_SET: shared_buffers is not a shard setting/);
    const noToken = await shard.adm(['config', 'set', 'work_mem=1MB'], primary.apiUrl, { MANATEE_ADMIN_TOKEN: '' });
    expect(noToken.stderr).toMatch(/^manatee-adm: MANATEE_ERR_NO_TOKEN/);
    expect(await configAt(primary)).toEqual(before);
  }, 240_000);

  it('a postmaster setting is pending restart on every peer: /status, /shard, show and /metrics say so', async () => {
    const r = await adm(['config', 'set', 'shared_buffers=48MB']);
    expect(r.stdout).toMatch(/set shared_buffers=48MB \(shard settings version 2\); waiting for a restart of each peer: shared_buffers \(manatee-adm restart --pending\)/);
    for (const p of shard.peers) {
      await shard.waitFor(`shared_buffers pending on ${p.id}`, async () => (await shard.statusOf(p))?.settings?.pendingRestart.includes('shared_buffers'), 60_000);
    }
    expect(await show(primary, 'shared_buffers')).toBe('128MB');
    const report = (await httpJson(`${primary.apiUrl}/shard`, { timeoutMs: 15_000 })).body as ShardReport;
    for (const p of report.peers) expect({ id: p.id, pending: p.pendingRestart }).toEqual({ id: p.id, pending: ['shared_buffers'] });
    const s = await adm(['show']);
    expect(s.stdout).toMatch(new RegExp(`${async0.id}: pending restart: shared_buffers \\(manatee-adm restart --pending\\)`));
    const metrics = await httpJson(`${async0.apiUrl}/metrics`);
    expect(String(metrics.body)).toMatch(/manatee_postgres_pending_restart\{setting="shared_buffers"\} 1/);
    expect(String(metrics.body)).toMatch(/manatee_shard_settings_applied_version 2/);
  }, 120_000);

  it('config show gives each value and its source per peer; the overrides file of a peer stays the last word', async () => {
    await appendFile(join(async0.dataDir, 'pgdata', 'manatee-overrides.conf'), "work_mem = '20MB'\n");
    // A reload comes with the next settings change; the report reads the files as they are now.
    await adm(['config', 'set', 'maintenance_work_mem=70MB']);
    await shard.waitFor('work_mem 20MB on the async', async () => (await show(async0, 'work_mem')) === '20MB', 60_000);
    expect(await show(primary, 'work_mem')).toBe('12MB');
    const r = await adm(['config', 'show']);
    expect(r.stdout).toMatch(/^shard settings: version 3, 4 set/);
    const line = r.stdout.split('\n').find((l) => l.startsWith('work_mem'));
    expect(line).toMatch(/work_mem\s+12MB\s/);
    expect(line).toMatch(/20MB \(peer overrides file\)/);
    expect(line).toMatch(/12MB \(shard\)/);
    expect(r.stdout.split('\n').find((l) => l.startsWith('shared_buffers'))).toMatch(/48MB \(shard\) PENDING RESTART/);
    await writeFile(join(async0.dataDir, 'pgdata', 'manatee-overrides.conf'), '# none\n');
  }, 120_000);

  it('config unset and config edit (checked before the write; a refused edit writes nothing)', async () => {
    const u = await adm(['config', 'unset', 'work_mem']);
    expect(u.stdout).toMatch(/unset work_mem \(shard settings version 4\)/);
    await shard.waitFor('work_mem back to the default on the primary', async () => (await show(primary, 'work_mem')) === '4MB', 60_000);
    const bad = await adm(['config', 'edit'], { EDITOR: "sed -i -e 's/^maintenance_work_mem: .*/maintenance_work_mem: huge/'" });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^manatee-adm: MANATEE_ERR_PG_SETTING_INVALID: maintenance_work_mem = "huge".*\(your edit is kept in .*shard-settings\.yaml\)/);
    expect((await configAt(primary)).version).toBe(4);
    const good = await adm(['config', 'edit'], { EDITOR: "sed -i -e 's/^maintenance_work_mem: .*/maintenance_work_mem: 80MB/' -e '/^log_min_duration_statement/d'" });
    expect(good.stderr).toBe('');
    expect(good.stdout).toMatch(/^maintenance_work_mem 70MB -> 80MB, unset log_min_duration_statement \(shard settings version 5\)/);
    expect((await configAt(async0)).settings).toEqual({ maintenance_work_mem: '80MB', shared_buffers: '48MB' });
  }, 120_000);

  it('a value that may hold a credential is shown only with the admin token: /config, /status, /shard and the logs redact it', async () => {
    const secret = 'AKIAsecret0123';
    const cmd = `/usr/bin/env AWS_SECRET_ACCESS_KEY=${secret} true`;
    const r = await adm(['config', 'set', `archive_command=${cmd}`]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/set archive_command=.* \(shard settings version 6\)/);
    const pub = await configAt(sync);
    expect(pub).toEqual({ version: 6, settings: { maintenance_work_mem: '80MB', shared_buffers: '48MB', archive_command: '[redacted]' }, redacted: ['archive_command'] });
    const full = await httpJson(`${sync.apiUrl}/admin/config`, { token: shard.adminToken });
    expect(full.body).toMatchObject({ version: 6, settings: { archive_command: cmd } });
    expect((await httpJson(`${sync.apiUrl}/admin/config`)).status).toBe(401);
    for (const p of shard.peers) {
      // (SHOW says "(disabled)" while archive_mode is off: the file is what PostgreSQL read.)
      await shard.waitFor(`archive_command reloaded on ${p.id}`, async () => (await shard.query<{ v: string }>(p,
        "SELECT setting AS v FROM pg_file_settings WHERE name = 'archive_command' AND applied"))[0]?.v === cmd, 60_000);
      const st = await shard.waitFor(`${p.id}'s status: version 6 applied`, async () => {
        const x = await shard.statusOf(p);
        return x?.settings?.appliedVersion === 6 && x.settings.settings.some((e) => e.name === 'archive_command') ? x : null;
      }, 60_000);
      expect(st.settings?.settings.find((e) => e.name === 'archive_command')).toMatchObject({ value: '[redacted]', running: '[redacted]', source: 'shard' });
    }
    expect(JSON.stringify((await httpJson(`${primary.apiUrl}/shard`, { timeoutMs: 15_000 })).body)).not.toContain(secret);
    // With the token, config show has the shard's value whole (the per-peer columns come from /shard).
    expect((await adm(['config', 'show'])).stdout.split('\n').find((l) => l.startsWith('archive_command'))).toContain(cmd);
    const anon = await adm(['config', 'show'], { MANATEE_ADMIN_TOKEN: '' });
    expect(anon.stdout).not.toContain(secret);
    expect(anon.stdout.split('\n').find((l) => l.startsWith('archive_command'))).toMatch(/^archive_command\s+\[redacted\]/);
    const edit = await adm(['config', 'edit'], { MANATEE_ADMIN_TOKEN: '', EDITOR: 'true' });
    expect(edit.stderr).toMatch(/^manatee-adm: MANATEE_ERR_NO_TOKEN: config edit needs the admin token/);
    for (const p of shard.peers) expect(JSON.stringify(await shard.logLines(p))).not.toContain(secret);
    expect((await adm(['config', 'unset', 'archive_command'])).stdout).toMatch(/unset archive_command \(shard settings version 7\)/);
  }, 180_000);
});

describe('a line that PostgreSQL refuses, on a real shard', () => {
  it('an unknown name in one peer\'s overrides file is reported by name and file in /status, /shard, show, config show, /metrics and verify; restart refuses; the shard\'s change reaches that peer once it is fixed', async () => {
    const overrides = join(async0.dataDir, 'pgdata', 'manatee-overrides.conf');
    const version = (await configAt(primary)).version + 1;
    await writeFile(overrides, "wrok_mem = '1MB'\n");
    const pidBefore = (await shard.statusOf(async0))?.postgresPid;
    try {
      expect((await adm(['config', 'set', 'work_mem=15MB'])).stdout).toMatch(new RegExp(`set work_mem=15MB \\(shard settings version ${version}\\)`));
      await shard.waitFor('work_mem 15MB on the primary', async () => (await show(primary, 'work_mem')) === '15MB', 60_000);
      const st = await shard.waitFor(`${async0.id}'s status: the refused line`, async () => {
        const x = (await shard.statusOf(async0))?.settings;
        return x !== undefined && x.rejected.length > 0 && x.error !== null ? x : null;
      }, 60_000);
      expect(st.rejected).toEqual([expect.objectContaining({
        name: 'wrok_mem', file: 'manatee-overrides.conf', source: 'peer overrides file', line: 1, error: 'unrecognized configuration parameter', blocksReload: true,
      })]);
      const reason = st.rejected[0]!.reason;
      expect(reason).toBe('unknown setting "wrok_mem" in manatee-overrides.conf line 1: PostgreSQL applies no change of any configuration file at a reload while it is there, and would not start with it; correct or remove it');
      // The reload applied nothing there: the shard's change waits, and the status says why.
      expect(st.appliedVersion).toBe(version - 1);
      expect(st.error).toBe(`reload: PostgreSQL applied no change: ${reason}`);
      expect(await show(async0, 'work_mem')).toBe('4MB');
      const report = (await httpJson(`${sync.apiUrl}/shard`, { timeoutMs: 15_000 })).body as ShardReport;
      expect(report.peers.map((p) => [p.id, p.rejectedSettings?.map((r) => r.name)])).toEqual([[primary.id, []], [sync.id, []], [async0.id, ['wrok_mem']]]);
      expect((await adm(['show'])).stdout).toContain(`  ${async0.id}: PostgreSQL refuses a setting: ${reason}`);
      const cs = (await adm(['config', 'show'])).stdout;
      expect(cs).toContain(`${async0.id}: PostgreSQL refuses a setting: ${reason}`);
      expect(cs.split('\n').find((l) => l.startsWith('wrok_mem'))).toMatch(/1MB \(peer overrides file\) REJECTED \(runs with -\)/);
      const metrics = String((await httpJson(`${async0.apiUrl}/metrics`)).body);
      expect(metrics).toMatch(/manatee_postgres_rejected_setting\{setting="wrok_mem",file="manatee-overrides.conf",blocks_reload="true"\} 1/);
      expect(metrics).toMatch(/manatee_postgres_rejected_settings 1/);
      const verify = await adm(['verify']);
      expect(verify.code).toBe(1);
      expect(verify.stdout).toContain(`error: SETTING_REJECTED (${async0.id}): ${async0.id}'s PostgreSQL refuses a setting: ${reason}`);
      // Restarted, that PostgreSQL would not come back: the rolling restart refuses to start.
      const restart = await adm(['restart', '--peer', async0.id]);
      expect(restart.code).toBe(1);
      expect(restart.stderr).toMatch(/^manatee-adm: MANATEE_ERR_RESTART_UNHEALTHY: the shard is not healthy; not restarting anything: /);
      expect(restart.stderr).toContain(`${async0.id}: ${async0.id}'s PostgreSQL refuses a setting: unknown setting "wrok_mem"`);
      expect((await shard.statusOf(async0))?.postgresPid).toBe(pidBefore);
    } finally {
      await writeFile(overrides, '# none\n');
    }
    await shard.waitFor(`work_mem 15MB on ${async0.id} once the line is gone`, async () => (await show(async0, 'work_mem')) === '15MB', 60_000);
    await shard.waitFor(`${async0.id}'s status: version ${version} applied, nothing refused`, async () => {
      const x = (await shard.statusOf(async0))?.settings;
      return x?.appliedVersion === version && x.rejected.length === 0 && x.error === null;
    }, 60_000);
    expect((await adm(['config', 'unset', 'work_mem'])).code).toBe(0);
  }, 180_000);
});

describe('peer tags on a real shard', () => {
  it('tags show in /peers, /status, /shard and show; /replica is 503 on a noloadbalance peer; verify reports that no peer may take over', async () => {
    expect(async0.id).toBe(shard.peers[2]!.id);
    const peers = (await httpJson(`${primary.apiUrl}/peers`)).body as { peers: { id: string; tags?: unknown }[] };
    expect(peers.peers.find((p) => p.id === async0.id)?.tags).toEqual({ nofailover: true, noloadbalance: true });
    expect(peers.peers.find((p) => p.id === sync.id)?.tags).toBeUndefined();
    expect((await shard.statusOf(async0))?.tags).toEqual({ nofailover: true, noloadbalance: true });
    const report = (await httpJson(`${sync.apiUrl}/shard`, { timeoutMs: 15_000 })).body as ShardReport;
    expect(report.peers.find((p) => p.id === async0.id)?.tags).toEqual({ nofailover: true, noloadbalance: true });
    const replica = await httpJson(`${async0.apiUrl}/replica`);
    expect(replica.status).toBe(503);
    expect(replica.body).toMatchObject({ ok: false, reason: 'an async standby, but tagged noloadbalance: it takes no readers from load balancers' });
    expect((await httpJson(`${sync.apiUrl}/replica`)).status).toBe(200);
    const shown = await adm(['show']);
    expect(shown.stdout).toContain(`  ${async0.id}: tags: nofailover, noloadbalance`);
    const verify = await adm(['verify']);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toContain(`error: NO_TAKEOVER_POSSIBLE: no peer may take over if the primary fails: every async (${async0.id}) is tagged nofailover`);
  }, 120_000);

  it('a nofailover peer is never made sync, even when it is the only candidate: the primary keeps its dead sync', async () => {
    const before = await shard.stateOf(primary);
    await shard.killPeer(sync);
    const decision = await shard.waitFor('the primary to see the sync gone and keep it', async () => {
      const d = (await shard.statusOf(primary))?.lastDecision;
      return d?.kind === 'waitForAsync' ? d : null;
    }, 60_000);
    expect(decision.reason).toBe(
      `sync "${sync.id}" has no session and no active async may become the sync ([${async0.id}] is tagged nofailover); keeping it as sync until an async can replace it`,
    );
    const after = await shard.stateOf(primary);
    expect({ generation: after.generation, sync: after.sync?.id, async: after.async.map((p) => p.id) })
      .toEqual({ generation: before.generation, sync: sync.id, async: [async0.id] });
    const history = (await httpJson(`${primary.apiUrl}/history`)).body as { history: { summary: string }[] };
    expect(history.history.filter((h) => h.summary.includes('selected new sync'))).toEqual([]);
  }, 120_000);
});
