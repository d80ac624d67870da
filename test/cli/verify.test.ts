// `manatee-adm verify`'s rules (Joyent's) on /shard reports built from sitter statuses: each rule
// on a shard that breaks it, and a healthy shard that passes. Pure: no servers.
import { describe, expect, it } from 'vitest';
import { buildShardReport, type PeerStatusResult } from '../../src/api/shard.js';
import type { SitterStatus, ClusterState } from '../../src/model/index.js';
import { verifyShard } from '../../src/cli/adm/views.js';
import { shardProblems } from '../../src/cli/adm/restart.js';
import { MemoryStore, peer, statusOf, threePeerState } from '../../tools/lib/memory-peer.js';

const A = peer('a');
const B = peer('b');
const C = peer('c');
const Z = peer('z');

/** The report that peer `asked` would give, with `unreachable` peers not answering. */
function report(state: ClusterState, opts: { unreachable?: string[]; edit?: (id: string, s: SitterStatus) => SitterStatus; active?: string[] } = {}) {
  const all = [A, B, C, Z];
  const active = all.filter((p) => (opts.active ?? ['a', 'b', 'c']).includes(p.id));
  const store = new MemoryStore(state, active);
  const edit = opts.edit ?? ((_id: string, s: SitterStatus) => s);
  const asked = edit('a', statusOf(A, store));
  const others = new Map<string, PeerStatusResult>();
  for (const p of all.slice(1)) {
    others.set(p.id, (opts.unreachable ?? []).includes(p.id) ? { ok: false, error: 'ECONNREFUSED' } : { ok: true, status: edit(p.id, statusOf(p, store)) });
  }
  return buildShardReport(asked, others);
}

const codes = (r: ReturnType<typeof report>) => verifyShard(r).map((i) => `${i.severity}:${i.code}:${i.peer ?? '-'}`);

describe('verify', () => {
  it('warns about a certificate that expires within 30 days, and errs on an expired one', () => {
    const tls = (expiresInSeconds: number): NonNullable<SitterStatus['tls']> => ({
      certFile: '/x.crt', subject: 'CN=x', peerId: 'x', fingerprint256: 'AA', notAfter: '2030-01-01T00:00:00.000Z', expiresInSeconds,
      caNotAfter: '2030-01-01T00:00:00.000Z', caExpiresInSeconds: 10 ** 8, loadedAt: '2026-01-01T00:00:00.000Z', reloadError: null,
    });
    const left: Record<string, number> = { a: 400 * 86_400, b: 29 * 86_400, c: -5 };
    const r = report(threePeerState([A, B, C]), { edit: (id, s) => ({ ...s, tls: tls(left[id] ?? 400 * 86_400) }) });
    expect(codes(r)).toEqual(['warning:CERT_EXPIRES_SOON:b', 'error:CERT_EXPIRED:c']);
    expect(verifyShard(r).find((i) => i.code === 'CERT_EXPIRES_SOON')?.message).toContain('expires in 29 days');
  });

  describe('a rotation of the shard secret and the admin token (fingerprints from each /status)', () => {
    const creds = (secret: string, acceptedSecrets: string[] = [], adminToken = 't1', acceptedAdminTokens: string[] = []) => ({ secret, acceptedSecrets, adminToken, acceptedAdminTokens });
    const rotation = (byPeer: Record<string, ReturnType<typeof creds>>) => report(threePeerState([A, B, C]), { edit: (id, s) => ({ ...s, credentials: byPeer[id]! }) });

    it('finds nothing when every peer holds the same values and accepts no other', () => {
      expect(codes(rotation({ a: creds('s1'), b: creds('s1'), c: creds('s1') }))).toEqual([]);
    });

    it('warns while the peers disagree (a rotation half done) and names who holds what', () => {
      // Step 1 done on a and b only: c does not accept s2 yet; nobody proves with it, so nothing is refused.
      const r = rotation({ a: creds('s1', ['s2']), b: creds('s1', ['s2']), c: creds('s1') });
      expect(codes(r)).toEqual(['warning:SECRETS_DIFFER:-']);
      expect(verifyShard(r)[0]?.message).toContain('a, b: s1+s2; c: s1');
      // Switched a and b (step 2); c still on s1 but accepting s2: nothing refused, still differing.
      const mid = rotation({ a: creds('s2', ['s1'], 't2', ['t1']), b: creds('s2', ['s1'], 't2', ['t1']), c: creds('s1', ['s2'], 't1', ['t2']) });
      expect(codes(mid)).toEqual(['warning:SECRETS_DIFFER:-', 'warning:ADMIN_TOKENS_DIFFER:-']);
      expect(verifyShard(mid)[1]?.message).toContain('a, b: t2+t1; c: t1+t2');
    });

    it('errs when a peer proves itself with a secret that another does not accept', () => {
      // a switched to s2 before c had added it (step 2 before step 1 was done everywhere).
      const r = rotation({ a: creds('s2', ['s1']), b: creds('s1', ['s2']), c: creds('s1') });
      expect(codes(r)).toEqual(['error:SECRET_NOT_ACCEPTED:a', 'warning:SECRETS_DIFFER:-']);
      expect(verifyShard(r)[0]?.message).toMatch(/^a proves itself with shard secret s2, which c does not accept: its Raft connections/);
      // a dropped s1 (step 3) while c is still on it.
      const dropped = rotation({ a: creds('s2'), b: creds('s2', ['s1']), c: creds('s1', ['s2']) });
      expect(codes(dropped)).toEqual(['error:SECRET_NOT_ACCEPTED:c', 'warning:SECRETS_DIFFER:-']);
      expect(verifyShard(dropped)[0]?.message).toContain('which a does not accept');
    });

    it('says when every peer has switched and the old values may be dropped', () => {
      const r = rotation({ a: creds('s2', ['s1'], 't2', ['t1']), b: creds('s2', ['s1'], 't2', ['t1']), c: creds('s2', ['s1'], 't2', ['t1']) });
      expect(codes(r)).toEqual(['warning:ROTATION_WINDOW_OPEN:-']);
      expect(verifyShard(r)[0]?.message).toBe(
        "a rotation's window is open: every peer uses shard secret s2 and also accepts s1 (acceptedSecrets), and admin token t2 and also accepts t1 (acceptedAdminTokens). " +
          "If the accepted values are the old ones, every peer has switched: once no caller uses them, drop them from every peer's configuration and SIGHUP its sitter; if they are the new ones, switch each peer to them next",
      );
    });

    it('leaves out peers that do not answer or report no credentials (older sitters)', () => {
      const r = report(threePeerState([A, B, C]), {
        edit: (id, s) => (id === 'a' ? { ...s, credentials: creds('s2') } : id === 'b' ? { ...s, credentials: creds('s2') } : s),
      });
      expect(codes(r)).toEqual([]);
      expect(r.peers.find((p) => p.id === 'c')?.credentials).toBeNull();
    });
  });

  it('a shard in which no peer may take over (the sync, or every async, tagged nofailover) is an error', () => {
    const tagged = (ids: string[]) => ({ edit: (id: string, s: SitterStatus) => (id === 'a' ? { ...s, peerTags: Object.fromEntries(ids.map((t) => [t, { nofailover: true }])) } : s) });
    expect(codes(report(threePeerState([A, B, C]), tagged(['c'])))).toEqual(['error:NO_TAKEOVER_POSSIBLE:-']);
    expect(verifyShard(report(threePeerState([A, B, C]), tagged(['c'])))[0]?.message).toBe(
      'no peer may take over if the primary fails: every async (c) is tagged nofailover, so the sync would have no sync after a takeover',
    );
    expect(verifyShard(report(threePeerState([A, B, C]), tagged(['b'])))[0]?.message).toMatch(/^no peer may take over if the primary fails: the sync b is tagged nofailover \(the primary replaces it/);
    // The primary's own tag does not matter, and a tag on another peer is no problem.
    expect(codes(report(threePeerState([A, B, C]), tagged(['a'])))).toEqual([]);
  });

  it('a peer whose PostgreSQL refuses a line of its configuration files is an error (it would not start again): restart refuses the shard', () => {
    const rejected = { name: 'wrok_mem', value: '1MB', file: 'manatee-overrides.conf', source: 'peer overrides file' as const, line: 2, error: 'unrecognized configuration parameter', blocksReload: true, reason: 'unknown setting "wrok_mem" in manatee-overrides.conf line 2: PostgreSQL applies no change of any configuration file at a reload while it is there, and would not start with it; correct or remove it' };
    const r = report(threePeerState([A, B, C]), { edit: (id, s) => (id === 'c' ? { ...s, settings: { version: 1, appliedVersion: 1, pendingRestart: [], settings: [], rejected: [rejected], error: null } } : s) });
    expect(r.peers.find((p) => p.id === 'c')?.rejectedSettings).toEqual([rejected]);
    expect(codes(r)).toEqual(['error:SETTING_REJECTED:c']);
    expect(verifyShard(r)[0]?.message).toBe(`c's PostgreSQL refuses a setting: ${rejected.reason}`);
    expect(shardProblems(r)).toEqual([`c: c's PostgreSQL refuses a setting: ${rejected.reason}`]);
  });

  it('a healthy chain has no problems', () => {
    expect(codes(report(threePeerState([A, B, C])))).toEqual([]);
  });

  it('the sync unreachable is an error, and so is its link not streaming', () => {
    expect(codes(report(threePeerState([A, B, C]), { unreachable: ['b'] }))).toEqual([
      'error:SYNC_UNREACHABLE:b',
      'error:NOT_STREAMING:c',
    ]);
    expect(verifyShard(report(threePeerState([A, B, C]), { unreachable: ['b'] }))[0]?.message).toBe(`the sync b (${B.apiUrl}) is unreachable: ECONNREFUSED`);
  });

  it('the primary\'s PostgreSQL down is an error', () => {
    const r = report(threePeerState([A, B, C]), {
      edit: (id, s) => (id === 'a' ? { ...s, postgres: { ...s.postgres, online: false, healthy: false, writable: false, error: 'connection refused' } } : s),
    });
    expect(codes(r)).toContain('error:PRIMARY_PG_DOWN:a');
  });

  it('every peer that does not answer is an error naming it, the address asked and why: in the chain by its role, any other as PEER_UNREACHABLE', () => {
    const r = report(threePeerState([A, B, C], [Z]), { unreachable: ['c', 'z'] });
    expect(codes(r)).toEqual(['error:DEPOSED:z', 'error:ASYNC_UNREACHABLE:c', 'error:PEER_UNREACHABLE:z']);
    const msg = (code: string) => verifyShard(r).find((i) => i.code === code)?.message;
    expect(msg('ASYNC_UNREACHABLE')).toBe(`the async c (${C.apiUrl}) is unreachable: ECONNREFUSED`);
    expect(msg('PEER_UNREACHABLE')).toBe(`the deposed peer z (${Z.apiUrl}) is unreachable: ECONNREFUSED: nothing of it was checked`);
    // An active peer not placed in the chain yet (unassigned), whose API does not answer.
    const u = report(threePeerState([A, B, C]), { active: ['a', 'b', 'c', 'z'], unreachable: ['z'] });
    expect(codes(u)).toEqual(['error:PEER_UNREACHABLE:z']);
    expect(verifyShard(u)[0]?.message).toBe(`the unassigned peer z (${Z.apiUrl}) is unreachable: ECONNREFUSED: nothing of it was checked`);
    // The same peers answering: nothing but the deposed one.
    expect(codes(report(threePeerState([A, B, C], [Z])))).toEqual(['error:DEPOSED:z']);
    expect(codes(report(threePeerState([A, B, C]), { active: ['a', 'b', 'c', 'z'] }))).toEqual([]);
  });

  describe('the Raft group against the cluster state, both ways', () => {
    const members = (voters: string[], learners: string[] = []) => ({ voters, learners, addresses: Object.fromEntries([...voters, ...learners].map((id) => [id, `10.0.0.${id.charCodeAt(0) - 96}:5434`])) });
    const check = (r: ReturnType<typeof report>, m: ReturnType<typeof members>) => verifyShard(r, m).map((i) => `${i.severity}:${i.code}:${i.peer ?? '-'}`);

    it('finds nothing when the members are the peers of the state', () => {
      expect(check(report(threePeerState([A, B, C])), members(['a', 'b', 'c']))).toEqual([]);
      expect(check(report(threePeerState([A, B, C], [Z])), members(['a', 'b', 'c', 'z']))).toEqual(['error:DEPOSED:z']);
    });

    it('a voter with no place in the state and no session is an error (one failure fewer tolerated), a learner a warning, an active one being placed a warning', () => {
      const r = report(threePeerState([A, B, C]));
      expect(check(r, members(['a', 'b', 'c', 'z']))).toEqual(['error:RAFT_MEMBER_NOT_IN_STATE:z']);
      expect(verifyShard(r, members(['a', 'b', 'c', 'z']))[0]?.message).toBe(
        'z (Raft voter, 10.0.0.26:5434) has no place in the cluster state and no session: it counts towards the Raft quorum and does not answer, so the shard tolerates one failure fewer: start its sitter, or remove it (manatee-adm remove-peer z) if it is gone for good',
      );
      expect(check(r, members(['a', 'b', 'c'], ['z']))).toEqual(['warning:RAFT_MEMBER_NOT_IN_STATE:z']);
      const placing = report(threePeerState([A, B, C]), { active: ['a', 'b', 'c', 'z'] });
      expect(check(placing, members(['a', 'b', 'c'], ['z']))).toEqual(['warning:RAFT_MEMBER_NOT_IN_STATE:z']);
      expect(verifyShard(placing, members(['a', 'b', 'c'], ['z']))[0]?.message).toMatch(/^z \(Raft learner, 10\.0\.0\.26:5434\) has a session but no place in the cluster state yet/);
    });

    it('a peer of the state that is no member is an error (its sitter gets no commit), a deposed one a warning', () => {
      const r = report(threePeerState([A, B, C]));
      expect(check(r, members(['a', 'b']))).toEqual(['error:STATE_PEER_NOT_RAFT_MEMBER:c']);
      expect(verifyShard(r, members(['a', 'b']))[0]?.message).toBe(
        'the async c is in the cluster state but no Raft member: its sitter receives no commit and acts on a state that no longer moves (add it back with manatee-adm add-peer c <host:raftPort>)',
      );
      expect(check(r, members(['a', 'c']))).toEqual(['error:STATE_PEER_NOT_RAFT_MEMBER:b']);
      expect(check(report(threePeerState([A, B, C], [Z])), members(['a', 'b', 'c']))).toEqual(['error:DEPOSED:z', 'warning:STATE_PEER_NOT_RAFT_MEMBER:z']);
      // Without the members (an older peer's API), nothing is said either way.
      expect(codes(r)).toEqual([]);
    });
  });

  it('a deposed peer is an error until it is rebuilt or reaped', () => {
    expect(codes(report(threePeerState([A, B, C], [Z])))).toEqual(['error:DEPOSED:z']);
  });

  it('no async is an error outside one-node-write mode, not in it', () => {
    expect(codes(report(threePeerState([A, B])))).toEqual(['error:NO_ASYNC:-']);
    const onwm: ClusterState = { generation: 1, primary: A, sync: null, async: [], deposed: [], initWal: '0/0', oneNodeWriteMode: true };
    expect(codes(report(onwm, { active: ['a'] }))).toEqual([]);
  });

  it('a link that is not streaming (catchup) and a sync that is not synchronous are errors', () => {
    const r = report(threePeerState([A, B, C]), {
      edit: (id, s) =>
        id === 'a' ? { ...s, replication: s.replication.map((row) => ({ ...row, syncState: 'async' })) }
          : id === 'b' ? { ...s, replication: s.replication.map((row) => ({ ...row, state: 'catchup' })) }
            : s,
    });
    expect(codes(r)).toEqual(['error:SYNC_NOT_SYNCHRONOUS:b', 'error:NOT_STREAMING:c']);
  });

  it('a primary that does not accept writes, a peer in the chain without a session, and no Raft leader are errors; a freeze a warning', () => {
    const frozen = { ...threePeerState([A, B, C]), freeze: { date: '2026-01-01T00:00:00Z', reason: 'upgrade' } };
    const r = report(frozen, {
      active: ['a', 'c'],
      edit: (id, s) => (id === 'a' ? { ...s, postgres: { ...s.postgres, writable: false }, raft: { ...s.raft, leader: null } } : s),
    });
    expect(codes(r)).toEqual(['error:PRIMARY_READ_ONLY:a', 'error:SYNC_NO_SESSION:b', 'warning:FROZEN:-', 'error:NO_RAFT_LEADER:-']);
  });
});
