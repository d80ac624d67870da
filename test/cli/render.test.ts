// manatee-adm's output as pure functions: the shard report (GET /shard) and tables, pinned exactly.
import { describe, expect, it } from 'vitest';
import { buildShardReport, peersInOrder, type PeerStatusResult } from '../../src/api/shard.js';
import { cell, formatBytes, renderTable } from '../../src/cli/adm/render.js';
import { historyColumns, HISTORY_COLUMNS, pickColumns, renderShow, table } from '../../src/cli/adm/views.js';
import type { SitterStatus, HistoryEntry } from '../../src/model/index.js';
import { MemoryStore, peer, statusOf, threePeerState } from '../../tools/lib/memory-peer.js';

const NOW = new Date('2026-11-24T07:00:00.000Z');
const A = peer('a');
const B = peer('b');
const C = peer('c');
const Z = peer('z');
const U = peer('u');

const buildShardView = (asked: SitterStatus, others: ReadonlyMap<string, PeerStatusResult>) => buildShardReport(asked, others);
const renderStatus = (view: ReturnType<typeof buildShardReport>, now: Date) => renderShow(view, now, { verbose: false });
const renderHistory = (entries: readonly HistoryEntry[]) => (entries.length === 0 ? 'no history yet' : table(pickColumns(historyColumns(), HISTORY_COLUMNS, undefined), entries));

function fixture() {
  const store = new MemoryStore(threePeerState([A, B, C], [Z]), [A, B, C, U]);
  return { store, a: statusOf(A, store), b: statusOf(B, store), c: statusOf(C, store) };
}

describe('renderTable', () => {
  it('pads columns to the widest cell and trims trailing blanks', () => {
    expect(renderTable(['A', 'LONG'], [['xxx', 'y'], ['z', '']])).toBe('A    LONG\nxxx  y\nz');
  });
});

describe('cell and formatBytes', () => {
  it('replaces control characters and bounds the length', () => {
    expect(cell('a\u001b[31mred\nb')).toBe('a?[31mred?b');
    expect(cell('x'.repeat(10), 5)).toBe('xxxx…');
  });

  it('prints bytes in binary units', () => {
    expect(formatBytes(72)).toBe('72 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(5 * 1024 * 1024 * 1024)).toBe('5.0 GiB');
  });
});

describe('buildShardReport', () => {
  it('orders peers primary, sync, asyncs, deposed, then unassigned active peers', () => {
    const { store } = fixture();
    expect(peersInOrder(store.state, store.active).map((p) => p.id)).toEqual(['a', 'b', 'c', 'z', 'u']);
  });

  it("takes each peer's health from its own status and its lag from its upstream's replication rows", () => {
    const { a, b, c } = fixture();
    const view = buildShardView(c, new Map([
      ['a', { ok: true, status: a }],
      ['b', { ok: true, status: b }],
      ['z', { ok: false, error: 'cannot reach the Manatee API at http://z: ECONNREFUSED' }],
    ] as const));
    const byId = new Map(view.peers.map((r) => [r.id, r]));
    expect(byId.get('a')).toMatchObject({ role: 'primary', reachable: true, pgOnline: true, writable: true, upstream: null });
    expect(byId.get('b')).toMatchObject({ role: 'sync', writable: false, upstream: 'a', lagSeconds: 0.5 });
    expect(byId.get('c')).toMatchObject({ role: 'async', upstream: 'b' });
    expect(view.links.map((l) => [l.upstream, l.downstream, l.lagBytes])).toEqual([['a', 'b', 72], ['b', 'c', 72]]);
    expect(byId.get('z')).toMatchObject({ role: 'deposed', reachable: false, pgOnline: null, error: expect.stringContaining('ECONNREFUSED') });
    expect(byId.get('u')).toMatchObject({ role: 'unassigned', reachable: false, error: 'not asked' });
    expect(view).toMatchObject({ answeredBy: 'c', generation: 3, freeze: null, promote: null, raftLeader: 'a' });
  });
});

describe('renderShow', () => {
  it('prints the shard header, one row per peer and the notes', () => {
    const { store, a, b, c } = fixture();
    store.state = { ...store.state!, freeze: { date: '2026-11-24T06:00:00.000Z', reason: 'upgrade' } };
    const asked = { ...a, state: store.state };
    const view = buildShardView(asked, new Map([
      ['b', { ok: true, status: b }],
      ['c', { ok: true, status: { ...c, lastDecision: { kind: 'none', reason: 'no action: I am an async', generation: 3, at: '2026-11-24T06:59:00.000Z' } } }],
      ['z', { ok: false, error: 'ECONNREFUSED' }],
      ['u', { ok: false, error: 'ECONNREFUSED' }],
    ] as const));
    const text = renderStatus(view, NOW);
    const lines = text.split('\n');
    expect(lines[0]).toBe('shard: generation 3, initWal 0/3000060, state version 1, mode normal');
    expect(lines[1]).toBe('freeze: FROZEN since 2026-11-24T06:00:00.000Z: upgrade');
    expect(lines[2]).toBe('raft: leader a, term 2 (answered by a)');
    expect(lines[4]).toMatch(/^ROLE\s+PEER\s+HOST\s+PG\s+WRITABLE\s+LAG\s+LAG_S\s+SITTER\s+POSTGRES$/);
    expect(lines[5]).toMatch(/^primary\s+a\s+127\.0\.0\.1\s+ok\s+yes\s+-\s+-\s+\d+\s+4242$/);
    expect(lines[6]).toMatch(/^sync\s+b\s+127\.0\.0\.1\s+ok\s+no\s+72 B\s+0\.5s\s+\d+\s+4242$/);
    expect(lines[7]).toMatch(/^async\s+c\s+127\.0\.0\.1\s+ok\s+no\s+72 B/);
    expect(lines[8]).toMatch(/^deposed\s+z\s+127\.0\.0\.1\s+\?\s+-\s+-\s+-\s+-\s+-$/);
    expect(lines[9]).toMatch(/^unassigned\s+u\s/);
    expect(text).toContain('  z: sitter unreachable at http://127.0.0.1:1/z: ECONNREFUSED');
    expect(text).toContain('  c: last decision none at 2026-11-24T06:59:00.000Z: no action: I am an async');
  });

  it("shows the operator's one-node-write mode override, and whether the primary acted on it", () => {
    const { store, a } = fixture();
    const pending = buildShardView({ ...a, state: { ...store.state!, onwmOverride: true } }, new Map());
    expect(renderStatus(pending, NOW).split('\n')[0]).toBe(
      'shard: generation 3, initWal 0/3000060, state version 1, mode normal (set on by operator, not acted on yet: the primary changes the mode at the next generation)',
    );
    const onwm = { ...store.state!, generation: 4, sync: null, async: [], oneNodeWriteMode: true, onwmOverride: true };
    const done = buildShardView({ ...a, state: onwm }, new Map());
    expect(renderStatus(done, NOW).split('\n')[0]).toBe('shard: generation 4, initWal 0/3000060, state version 1, mode one-node-write (set on by operator)');
  });

  it("shows each peer's tags as its session carries them: a note, and the TAGS column with -v", () => {
    const { a, b } = fixture();
    const asked = { ...a, peerTags: { c: { nofailover: true, priority: 3 }, b: { noloadbalance: true } } };
    const view = buildShardView(asked, new Map([['b', { ok: true, status: b }]] as const));
    expect(view.peers.find((p) => p.id === 'c')?.tags).toEqual({ nofailover: true, priority: 3 });
    expect(view.peers.find((p) => p.id === 'a')?.tags).toEqual({});
    const text = renderStatus(view, NOW);
    expect(text).toContain('  c: tags: nofailover, priority=3');
    expect(text).toContain('  b: tags: noloadbalance');
    const verbose = renderShow(view, NOW, { verbose: true }).split('\n');
    expect(verbose[4]).toMatch(/\sTAGS$/);
    expect(verbose[5]).toMatch(/^primary\s.*\s-$/);
    expect(verbose[7]).toMatch(/^async\s.*\snofailover, priority=3$/);
  });

  it("shows each peer's credential fingerprints: a note while it accepts old values, and the SECRET and TOKEN columns", () => {
    const { a, b, c } = fixture();
    const creds = (secret: string, acceptedSecrets: string[], adminToken: string, acceptedAdminTokens: string[]) => ({ credentials: { secret, acceptedSecrets, adminToken, acceptedAdminTokens } });
    const view = buildShardView({ ...a, ...creds('5ec2', ['5ec1'], '70c2', ['70c1']) }, new Map([
      ['b', { ok: true, status: { ...b, ...creds('5ec2', [], '70c2', []) } }],
      ['c', { ok: true, status: c }],
    ] as const));
    const text = renderStatus(view, NOW);
    expect(text).toContain('  a: rotation: shard secret 5ec2 (also accepts 5ec1), admin token 70c2 (also accepts 70c1)');
    expect(text).not.toContain('  b: rotation');
    const cols = renderShow(view, NOW, { verbose: false, columns: 'peer,secret,token' }).split('\n');
    expect(cols[4]).toMatch(/^PEER\s+SECRET\s+TOKEN$/);
    expect(cols[5]).toMatch(/^a\s+5ec2\+5ec1\s+70c2\+70c1$/);
    expect(cols[6]).toMatch(/^b\s+5ec2\s+70c2$/);
    expect(cols[7]).toMatch(/^c\s+\?\s+\?$/);
  });

  it('notes each setting that a peer\'s PostgreSQL refuses, with the reason', () => {
    const { a, b } = fixture();
    const rejected = { name: 'wrok_mem', value: '1MB', file: 'manatee-overrides.conf', source: 'peer overrides file' as const, line: 2, error: 'unrecognized configuration parameter', blocksReload: true, reason: 'unknown setting "wrok_mem" in manatee-overrides.conf line 2: PostgreSQL applies no change of any configuration file at a reload while it is there, and would not start with it; correct or remove it' };
    const bad = { ...b, settings: { version: 1, appliedVersion: 1, pendingRestart: [], settings: [], rejected: [rejected], error: null } };
    const view = buildShardView(a, new Map([['b', { ok: true, status: bad }]] as const));
    expect(renderStatus(view, NOW)).toContain(`  b: PostgreSQL refuses a setting: ${rejected.reason}`);
  });

  it('shows a promotion request and whether it is still pending', () => {
    const { store, a } = fixture();
    const promote = { id: 'b', role: 'sync' as const, generation: 3, expireTime: '2026-11-24T07:01:00.000Z' };
    const view = buildShardView({ ...a, state: { ...store.state!, promote } }, new Map());
    expect(renderStatus(view, NOW)).toContain('promote: b (sync) for generation 3, expires 2026-11-24T07:01:00.000Z: pending');
    expect(renderStatus(view, new Date('2026-11-24T07:02:00.000Z'))).toContain(': expired');
  });

  it('says when there is no state yet', () => {
    const store = new MemoryStore(null, [A]);
    const text = renderStatus(buildShardView(statusOf(A, store), new Map()), NOW);
    expect(text.split('\n')[0]).toBe('shard: no cluster state yet (initial setup has not happened)');
    expect(text).toMatch(/unassigned\s+a/);
  });
});

describe('the history table', () => {
  it('prints one row per change with the chain and the summary', () => {
    const state = threePeerState([A, B, C], [Z]);
    const entries: HistoryEntry[] = [
      { version: 1, time: '2026-11-24T06:00:00.000Z', generation: 1, summary: 'cluster setup', state: { ...state, generation: 1, deposed: [] } },
      { version: 2, time: '2026-11-24T06:10:00.000Z', generation: 3, summary: 'frozen by operator: x', state: { ...state, freeze: { date: 'd', reason: 'x' } } },
    ];
    const lines = renderHistory(entries).split('\n');
    expect(lines[0]).toMatch(/^TIME\s+G#\s+VER\s+MODE\s+FRZ\s+PRIMARY\s+SYNC\s+ASYNC\s+DEPOSED\s+SUMMARY$/);
    expect(lines[1]).toMatch(/^2026-11-24T06:00:00\.000Z\s+1\s+1\s+multi\s+-\s+a\s+b\s+c\s+-\s+cluster setup$/);
    expect(lines[2]).toMatch(/^2026-11-24T06:10:00\.000Z\s+3\s+2\s+multi\s+frozen\s+a\s+b\s+c\s+z\s+frozen by operator: x$/);
    expect(renderHistory([])).toBe('no history yet');
  });
});
