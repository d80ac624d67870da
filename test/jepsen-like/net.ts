// The hosts of a chaos run: one network namespace per peer, joined by veth pairs to a bridge in
// the root namespace (which carries the bridge's own address, so that clients and the checker in the
// root namespace reach the peers). Partitions are iptables DROP rules inside the namespaces.
// Every name starts with a per-run prefix, so that `cleanup` can find what a crashed run left behind.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** All names start with this, then 5 hex digits of run id: "mjc1a2b3-p1". */
export const NAME_PREFIX = 'mjc';
/** The Raft register test's networks (test/lincheck): their own prefix, so that a chaos run's leftover check never counts them. */
export const RAFT_TEST_PREFIX = 'lcr';
const PREFIX_PATTERN = /^(?:mjc|lcr)[0-9a-f]{5}$/;
/** The private range the bridges use: 10.213.<n>.0/24, with <n> picked per run. */
const SUBNET_BASE = '10.213';

export interface HostAddress {
  readonly id: string;
  /** The network namespace the peer runs in. */
  readonly ns: string;
  readonly address: string;
}

export interface Network {
  readonly prefix: string;
  readonly bridge: string;
  /** The root namespace's address on the bridge. */
  readonly hostAddress: string;
  readonly cidr: string;
  readonly hosts: readonly HostAddress[];
}

export async function sh(cmd: string, args: readonly string[], timeoutMs = 15_000): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`, { cause: err });
  }
}

/** Whether this process may make network namespaces and iptables rules (root, with ip and iptables). */
export function canManageNetworks(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('ip', ['netns', 'list']);
    execFileSync('iptables', ['-V']);
    return true;
  } catch {
    return false;
  }
}

export function isValidPrefix(prefix: string): boolean {
  return PREFIX_PATTERN.test(prefix);
}

/** A /24 under 10.213 that no interface on this machine uses yet (other runs may be going on). */
async function freeSubnet(pick: () => number): Promise<string> {
  const used = await sh('ip', ['-4', '-o', 'addr', 'show']);
  for (let attempt = 0; attempt < 64; attempt++) {
    const n = 1 + pick() % 254;
    const net = `${SUBNET_BASE}.${n}`;
    if (!used.includes(` ${net}.`)) return net;
  }
  throw new Error(`no free /24 under ${SUBNET_BASE}.0.0/16`);
}

/** Creates the bridge and one namespace per peer. On any failure it removes what it made. */
export async function createNetwork(prefix: string, peerIds: readonly string[], pick: () => number): Promise<Network> {
  if (!isValidPrefix(prefix)) throw new Error(`invalid network prefix ${prefix}`);
  const subnet = await freeSubnet(pick);
  const bridge = `${prefix}-br`;
  const hosts = peerIds.map((id, i) => ({ id, ns: `${prefix}-p${i + 1}`, address: `${subnet}.${11 + i}` }));
  const net: Network = { prefix, bridge, hostAddress: `${subnet}.1`, cidr: `${subnet}.0/24`, hosts };
  try {
    await sh('ip', ['link', 'add', bridge, 'type', 'bridge']);
    await sh('ip', ['addr', 'add', `${net.hostAddress}/24`, 'dev', bridge]);
    await sh('ip', ['link', 'set', bridge, 'up']);
    for (const [i, h] of hosts.entries()) {
      const outside = `${prefix}-v${i + 1}`;
      const inside = `${prefix}-e${i + 1}`;
      await sh('ip', ['netns', 'add', h.ns]);
      await sh('ip', ['link', 'add', outside, 'type', 'veth', 'peer', 'name', inside]);
      await sh('ip', ['link', 'set', outside, 'master', bridge, 'up']);
      await sh('ip', ['link', 'set', inside, 'netns', h.ns]);
      await sh('ip', ['netns', 'exec', h.ns, 'ip', 'addr', 'add', `${h.address}/24`, 'dev', inside]);
      await sh('ip', ['netns', 'exec', h.ns, 'ip', 'link', 'set', inside, 'up']);
      await sh('ip', ['netns', 'exec', h.ns, 'ip', 'link', 'set', 'lo', 'up']);
    }
  } catch (err) {
    await destroyNetwork(prefix);
    throw err;
  }
  return net;
}

function hostOf(net: Network, id: string): HostAddress {
  const h = net.hosts.find((x) => x.id === id);
  if (h === undefined) throw new Error(`no host ${id}`);
  return h;
}

/** Drops every packet that `from` sends to `to` (rule in `to`'s namespace). One direction only. */
export async function cut(net: Network, from: string, to: string): Promise<void> {
  const src = hostOf(net, from);
  const dst = hostOf(net, to);
  await sh('ip', ['netns', 'exec', dst.ns, 'iptables', '-w', '-A', 'INPUT', '-s', src.address, '-j', 'DROP']);
}

/**
 * Cuts the root namespace (the clients, and the harness's own status calls) off from peer `id`:
 * its packets to the peer are dropped (rule in the peer's namespace), the peers still talk.
 */
export async function cutClients(net: Network, id: string): Promise<void> {
  const dst = hostOf(net, id);
  await sh('ip', ['netns', 'exec', dst.ns, 'iptables', '-w', '-A', 'INPUT', '-s', net.hostAddress, '-j', 'DROP']);
}

/** Cuts both directions between every peer of `side` and every peer not in it. */
export async function isolate(net: Network, side: readonly string[]): Promise<void> {
  for (const a of side) {
    for (const b of net.hosts.map((h) => h.id).filter((x) => !side.includes(x))) {
      await cut(net, a, b);
      await cut(net, b, a);
    }
  }
}

/** Removes every partition rule. */
export async function healNetwork(net: Network): Promise<void> {
  for (const h of net.hosts) await sh('ip', ['netns', 'exec', h.ns, 'iptables', '-w', '-F', 'INPUT']);
}

/** The namespaces and bridges on this machine made by chaos runs, grouped by run prefix. */
export async function leftoverPrefixes(): Promise<string[]> {
  const found = new Set<string>();
  const nsList = await sh('ip', ['netns', 'list']).catch(() => '');
  for (const line of nsList.split('\n')) {
    const m = /^(mjc[0-9a-f]{5})-p\d+/.exec(line.trim());
    if (m?.[1] !== undefined) found.add(m[1]);
  }
  const links = await sh('ip', ['-o', 'link', 'show']).catch(() => '');
  for (const m of links.matchAll(/\d+: (mjc[0-9a-f]{5})-(?:br|v\d+)[@:]/g)) {
    if (m[1] !== undefined) found.add(m[1]);
  }
  return [...found].sort();
}

/** Kills every process left in the run's namespaces, then deletes the namespaces, veths and bridge. Idempotent. */
export async function destroyNetwork(prefix: string): Promise<string[]> {
  if (!isValidPrefix(prefix)) throw new Error(`invalid network prefix ${prefix}`);
  const done: string[] = [];
  const nsList = await sh('ip', ['netns', 'list']).catch(() => '');
  const namespaces = nsList.split('\n').map((l) => l.trim().split(' ')[0] ?? '').filter((n) => n.startsWith(`${prefix}-`));
  for (const ns of namespaces) {
    const pids = (await sh('ip', ['netns', 'pids', ns]).catch(() => '')).split('\n').map(Number).filter((p) => Number.isInteger(p) && p > 1);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (pids.length > 0) done.push(`killed ${pids.length} processes in ${ns}`);
  }
  for (const ns of namespaces) {
    // A namespace whose processes are still exiting may refuse deletion for a moment.
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        await sh('ip', ['netns', 'del', ns]);
        done.push(`deleted namespace ${ns}`);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }
  const links = await sh('ip', ['-o', 'link', 'show']).catch(() => '');
  for (const m of links.matchAll(new RegExp(`\\d+: (${prefix}-(?:v\\d+|br))[@:]`, 'g'))) {
    const name = m[1];
    if (name === undefined) continue;
    await sh('ip', ['link', 'del', name]).then(() => done.push(`deleted link ${name}`), () => undefined);
  }
  return done;
}
