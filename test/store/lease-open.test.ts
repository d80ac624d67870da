// The session open as a renewal of the primary's lease (issue #13): an open of this peer's own
// session that commits renews its lease from the moment the open was SENT (the store's monotonic
// clock), as an acknowledged keepalive does. Before, a primary that restarted, opened its session
// and was cut off before its first acknowledged keepalive had no lease at all (null) and was never
// fenced (test/peer/lease-fence.test.ts shows the fence on top of this).
import { afterEach, describe, expect, it } from 'vitest';
import { InProcessGroup } from './in-process-consensus.js';
import { ClusterStateMachine } from '../../src/store/state-machine.js';
import { ClusterStore } from '../../src/store/store.js';
import { STORE_ERR } from '../../src/store/errors.js';
import { encodeCommand } from '../../src/store/commands.js';
import { a, b } from './fixtures.js';

const live: ClusterStore[] = [];
afterEach(() => {
  for (const s of live.splice(0)) s.stop();
});

/** Two members a and b (a leads), with a wall clock and a separate monotonic clock that the test moves. */
function pair(opts: { acked?: () => number | null } = {}) {
  const group = new InProcessGroup();
  const mono = { ms: 1_000 };
  const stores = new Map<string, ClusterStore>();
  for (const id of ['a', 'b']) {
    const machine = new ClusterStateMachine();
    const member = group.add(id, machine);
    if (id === 'a' && opts.acked !== undefined) Object.assign(member, { leaseRenewedAtMs: opts.acked });
    const store = new ClusterStore({ machine, consensus: member, sessionTimeoutMs: 1500, now: () => 1_700_000_000_000, monoNowMs: () => mono.ms, reopenExpiredSession: false });
    live.push(store);
    stores.set(id, store);
  }
  group.elect('a');
  return { group, mono, s: (id: string) => stores.get(id)! };
}

describe('the session open renews the lease', () => {
  it('from when the open was sent, not when it committed', async () => {
    const p = pair();
    expect(p.s('a').leaseRenewedAtMs()).toBeNull();
    const opening = p.s('a').openSession(a);
    p.mono.ms = 1_700; // the open takes 700 ms to commit
    await opening;
    expect(p.s('a').leaseRenewedAtMs()).toBe(1_000);
    // Another peer's open renews nothing of a's.
    p.mono.ms = 2_000;
    await p.s('b').openSession(b);
    expect(p.s('a').leaseRenewedAtMs()).toBe(1_000);
    expect(p.s('b').leaseRenewedAtMs()).toBe(2_000);
  });

  it('the newer of an acknowledged keepalive and the open counts', async () => {
    let acked: number | null = null;
    const p = pair({ acked: () => acked });
    p.mono.ms = 5_000;
    await p.s('a').openSession(a);
    expect(p.s('a').leaseRenewedAtMs()).toBe(5_000);
    acked = 4_000; // a keepalive of before the open (an earlier session of this process)
    expect(p.s('a').leaseRenewedAtMs()).toBe(5_000);
    acked = 5_300;
    expect(p.s('a').leaseRenewedAtMs()).toBe(5_300);
  });

  it('an open that did not commit, or whose session ended before it returned, renews nothing', async () => {
    const p = pair();
    p.group.elect(null);
    await expect(p.s('a').openSession(a)).rejects.toMatchObject({ code: 'MANATEE_ERR_RAFT_NO_LEADER' });
    expect(p.s('a').leaseRenewedAtMs()).toBeNull();
    p.group.elect('b');
    // Expired in the same applied batch as its open (store.test.ts, seed 754): not ours, no lease.
    const openedIndex = p.group.lastIndex + 1;
    const opening = p.s('a').openSession(a);
    await p.group.member('b').propose(encodeCommand({
      op: 'expireSession', peerId: 'a', openedIndex, keepaliveIndex: openedIndex, reason: 'no keepalive (test)', time: '2026-01-01T00:00:00.000Z',
    }));
    await expect(opening).rejects.toMatchObject({ code: STORE_ERR.sessionExpired });
    expect(p.s('a').leaseRenewedAtMs()).toBeNull();
  });

  it('a reopen after an expiry renews from the reopen\'s send time', async () => {
    const p = pair();
    await p.s('a').openSession(a);
    const first = p.s('a').session()!;
    await p.group.member('b').propose(encodeCommand({
      op: 'expireSession', peerId: 'a', openedIndex: first.openedIndex, keepaliveIndex: first.openedIndex, reason: 'no keepalive (test)', time: '2026-01-01T00:00:00.000Z',
    }));
    await p.group.settle();
    expect(p.s('a').session()).toBeNull();
    // The expired session's lease stays where it was: it does not move forwards by itself.
    p.mono.ms = 9_000;
    expect(p.s('a').leaseRenewedAtMs()).toBe(1_000);
    const reopening = p.s('a').openSession(a);
    p.mono.ms = 9_400;
    await reopening;
    expect(p.s('a').leaseRenewedAtMs()).toBe(9_000);
  });
});
