// A sitter restarted while a fenced write of its had no answer (issue #13): the write may still
// commit, so the restarted sitter keeps the fence (it does nothing else, and says why in /status)
// until the committed state shows the outcome, as it would have without the restart. The record
// lives in its facts file (src/peer/facts.ts); a garbled one stops the sitter with an error naming
// the file, and leaves the file as it is. Three real sitters with PostgreSQL 15.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Shard } from '../../tools/lib/shard.js';
import { sitterBundle } from '../../tools/lib/sitter-bundle.js';
import type { ClusterState } from '../../src/model/index.js';

/** Runs manatee-sitter (the shard's bundle) on `configPath` in the foreground: for a sitter that must refuse to start. */
async function runSitter(configPath: string): Promise<{ code: number | null; stderr: string }> {
  const script = await sitterBundle();
  return new Promise((done) => {
    const child = spawn(process.execPath, [script, '-f', configPath], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString('utf8'); });
    const timer = setTimeout(() => { child.kill('SIGKILL'); }, 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      done({ code, stderr });
    });
  });
}

describe('a sitter restarted with an unsettled fenced write in its facts file', () => {
  let shard: Shard;

  beforeAll(async () => {
    shard = await Shard.create({ peers: 3, prefix: 'unset', timeouts: { sessionTimeoutMs: 2000, keepaliveIntervalMs: 400 } });
  });

  afterAll(async () => {
    await shard.teardown();
  });

  it('keeps the fence and says why until the store shows the outcome; a garbled record stops it, naming the file', async () => {
    const { primary, sync, async0 } = await shard.waitForChain();
    const before = await shard.statusOf(primary);
    const state = before!.state!;
    const version = before!.stateVersion;
    // The sync's takeover, as its evaluation recorded it when the proposal timed out: based on the
    // version before the current one, so that once the store is reachable it is settled at once.
    const takeover: ClusterState = { generation: state.generation + 1, primary: state.sync!, sync: state.async[0]!, async: [], deposed: [state.primary], initWal: state.initWal };
    const record = { kind: 'takeover', write: { expectVersion: version - 1, newState: takeover, summary: `sync (${sync.id}) took over as primary (from ${primary.id})` } };

    // The sync's sitter dies (its PostgreSQL runs on); the other two stop, so that no quorum can settle the write.
    await shard.killSitter(sync);
    await shard.stopPeer(primary);
    await shard.stopPeer(async0);
    const factsPath = join(sync.dataDir, 'sitter-facts.json');
    const facts = JSON.parse(await readFile(factsPath, 'utf8')) as Record<string, unknown>;
    expect(facts['unsettledWrite'] ?? null).toBeNull();

    // A garbled record: the sitter does not start, and the file (with its other facts) is left as it is.
    const garbled = JSON.stringify({ ...facts, unsettledWrite: { ...record, write: { ...record.write, expectVersion: 'seven' } } });
    await writeFile(factsPath, garbled);
    const refused = await runSitter(sync.configPath);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`manatee-sitter: MANATEE_ERR_FACTS_INVALID: ${factsPath}: unsettledWrite .write.expectVersion must be an integer >= 0 (got "seven")`);
    expect(await readFile(factsPath, 'utf8')).toBe(garbled);

    // The record as the evaluation writes it: the restarted sitter keeps the fence and says why.
    await writeFile(factsPath, JSON.stringify({ ...facts, unsettledWrite: record }));
    const startedAtMs = Date.now();
    shard.startSitter(sync);
    const why = `restarted with the takeover write of generation ${takeover.generation} unsettled (recorded in ${factsPath}): it may still commit, so the fence holds and nothing else is done until the store shows its outcome`;
    const st = await shard.waitFor('the restarted sync\'s /status', async () => {
      const s = await shard.statusOf(sync);
      return s?.lastDecision?.kind === 'fencedWriteUnknown' ? s : null;
    }, 60_000);
    expect(st.lastDecision?.reason).toBe(why);
    // A few evaluations later (no Raft leader: none can settle it), still so, and nothing was reconciled.
    await new Promise((r) => setTimeout(r, 3000));
    expect((await shard.statusOf(sync))?.lastDecision).toMatchObject({ kind: 'fencedWriteUnknown', reason: why });
    const sinceStart = (await shard.logLines(sync)).filter((l) => typeof l['time'] === 'number' && l['time'] >= startedAtMs);
    expect(sinceStart.find((l) => l['decision'] === 'takeover-unknown-at-start')?.['reason']).toBe(why);
    expect(sinceStart.filter((l) => l['decision'] === 'reconcile')).toEqual([]);

    // The others come back: the store shows the version moved past the write's base without it.
    shard.startSitter(primary);
    shard.startSitter(async0);
    // (Superseded when the store is one write past its base, settled when more; never committed.)
    const settled = await shard.waitFor('the record settled', async () => (await shard.logLines(sync))
      .find((l) => /^takeover-(superseded|settled|committed)$/.test(String(l['decision'])) && (l['time'] as number) >= startedAtMs), 180_000);
    expect(settled['decision']).not.toBe('takeover-committed');
    expect(String(settled['reason'])).toMatch(/can no longer commit|is settled/);
    expect((JSON.parse(await readFile(factsPath, 'utf8')) as Record<string, unknown>)['unsettledWrite']).toBeNull();
    // The fence gives way to the role in the state, and the rules go on from there (the sync may
    // well take over now, if it runs before the old primary's session is back): the shard is whole again.
    await shard.waitForChain(240_000);
  }, 600_000);
});
