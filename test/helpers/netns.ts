// One network namespace joined to the root namespace by a veth pair, for tests that cut a real
// network path with iptables (inside the namespace, so the machine's own rules are never touched).
// Names start with "nt" and 5 hex digits; the namespace (and with it the veth pair and its rules)
// is deleted by remove().
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function sh(cmd: string, args: readonly string[]): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { timeout: 15_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`, { cause: err });
  }
}

export interface VethNamespace {
  readonly ns: string;
  /** The root namespace's address on the pair. */
  readonly hostAddress: string;
  /** The namespace's address on the pair. */
  readonly nsAddress: string;
  /** Drops every packet between the namespace and the root namespace, both ways. */
  partition(): Promise<void>;
  heal(): Promise<void>;
  remove(): Promise<void>;
}

/** A /30 under 10.214 that no interface uses yet. */
async function freeSubnet(): Promise<string> {
  const used = await sh('ip', ['-4', '-o', 'addr', 'show']);
  for (let attempt = 0; attempt < 64; attempt++) {
    const b = randomBytes(2);
    const net = `10.214.${b[0]! % 254 + 1}`;
    const base = (b[1]! % 63) * 4;
    if (!used.includes(` ${net}.${base + 1}/`) && !used.includes(` ${net}.${base + 2}/`)) return `${net}.${base}`;
  }
  throw new Error('no free /30 under 10.214.0.0/16');
}

export async function createVethNamespace(): Promise<VethNamespace> {
  const tag = `nt${randomBytes(3).toString('hex').slice(0, 5)}`;
  const ns = tag;
  const subnet = await freeSubnet();
  const [a, b, c, d] = subnet.split('.');
  const last = Number(d);
  const hostAddress = `${a}.${b}.${c}.${last + 1}`;
  const nsAddress = `${a}.${b}.${c}.${last + 2}`;
  const inNs = (...args: string[]): Promise<string> => sh('ip', ['netns', 'exec', ns, ...args]);
  const remove = async (): Promise<void> => {
    // Deleting the namespace deletes its end of the pair, which deletes the other end.
    await sh('ip', ['netns', 'del', ns]).catch(() => '');
    await sh('ip', ['link', 'del', `${tag}-h`]).catch(() => '');
  };
  try {
    await sh('ip', ['netns', 'add', ns]);
    await sh('ip', ['link', 'add', `${tag}-h`, 'type', 'veth', 'peer', 'name', `${tag}-n`]);
    await sh('ip', ['link', 'set', `${tag}-n`, 'netns', ns]);
    await sh('ip', ['addr', 'add', `${hostAddress}/30`, 'dev', `${tag}-h`]);
    await sh('ip', ['link', 'set', `${tag}-h`, 'up']);
    await inNs('ip', 'addr', 'add', `${nsAddress}/30`, 'dev', `${tag}-n`);
    await inNs('ip', 'link', 'set', `${tag}-n`, 'up');
    await inNs('ip', 'link', 'set', 'lo', 'up');
  } catch (err) {
    await remove();
    throw err;
  }
  return {
    ns, hostAddress, nsAddress,
    partition: async () => {
      await inNs('iptables', '-w', '-A', 'INPUT', '-s', hostAddress, '-j', 'DROP');
      await inNs('iptables', '-w', '-A', 'OUTPUT', '-d', hostAddress, '-j', 'DROP');
    },
    heal: async () => {
      await inNs('iptables', '-w', '-F', 'INPUT');
      await inNs('iptables', '-w', '-F', 'OUTPUT');
    },
    remove,
  };
}

/** Several namespaces on one bridge (the shape of test/jepsen-like/net.ts's Network), named "nt<5 hex>-...". */
export interface BridgedNamespaces {
  readonly prefix: string;
  readonly bridge: string;
  readonly hostAddress: string;
  readonly cidr: string;
  readonly hosts: readonly { readonly id: string; readonly ns: string; readonly address: string }[];
  /** Drops every packet between the peers of `side` and the other peers (not the root namespace's). */
  isolate(side: readonly string[]): Promise<void>;
  heal(): Promise<void>;
  remove(): Promise<void>;
}

export async function createBridgedNamespaces(ids: readonly string[]): Promise<BridgedNamespaces> {
  const prefix = `nt${randomBytes(3).toString('hex').slice(0, 5)}`;
  const used = await sh('ip', ['-4', '-o', 'addr', 'show']);
  let subnet = '';
  for (let attempt = 0; attempt < 64 && subnet === ''; attempt++) {
    const n = `10.215.${randomBytes(1)[0]! % 254 + 1}`;
    if (!used.includes(` ${n}.`)) subnet = n;
  }
  if (subnet === '') throw new Error('no free /24 under 10.215.0.0/16');
  const bridge = `${prefix}-br`;
  const hosts = ids.map((id, i) => ({ id, ns: `${prefix}-p${i + 1}`, address: `${subnet}.${11 + i}` }));
  const remove = async (): Promise<void> => {
    for (const h of hosts) await sh('ip', ['netns', 'del', h.ns]).catch(() => '');
    for (let i = 1; i <= hosts.length; i++) await sh('ip', ['link', 'del', `${prefix}-v${i}`]).catch(() => '');
    await sh('ip', ['link', 'del', bridge]).catch(() => '');
  };
  try {
    await sh('ip', ['link', 'add', bridge, 'type', 'bridge']);
    await sh('ip', ['addr', 'add', `${subnet}.1/24`, 'dev', bridge]);
    await sh('ip', ['link', 'set', bridge, 'up']);
    for (const [i, h] of hosts.entries()) {
      await sh('ip', ['netns', 'add', h.ns]);
      await sh('ip', ['link', 'add', `${prefix}-v${i + 1}`, 'type', 'veth', 'peer', 'name', `${prefix}-e${i + 1}`]);
      await sh('ip', ['link', 'set', `${prefix}-v${i + 1}`, 'master', bridge, 'up']);
      await sh('ip', ['link', 'set', `${prefix}-e${i + 1}`, 'netns', h.ns]);
      await sh('ip', ['netns', 'exec', h.ns, 'ip', 'addr', 'add', `${h.address}/24`, 'dev', `${prefix}-e${i + 1}`]);
      await sh('ip', ['netns', 'exec', h.ns, 'ip', 'link', 'set', `${prefix}-e${i + 1}`, 'up']);
      await sh('ip', ['netns', 'exec', h.ns, 'ip', 'link', 'set', 'lo', 'up']);
    }
  } catch (err) {
    await remove();
    throw err;
  }
  return {
    prefix, bridge, hostAddress: `${subnet}.1`, cidr: `${subnet}.0/24`, hosts,
    isolate: async (side) => {
      for (const a of hosts.filter((h) => side.includes(h.id))) {
        for (const b of hosts.filter((h) => !side.includes(h.id))) {
          await sh('ip', ['netns', 'exec', b.ns, 'iptables', '-w', '-A', 'INPUT', '-s', a.address, '-j', 'DROP']);
          await sh('ip', ['netns', 'exec', a.ns, 'iptables', '-w', '-A', 'INPUT', '-s', b.address, '-j', 'DROP']);
        }
      }
    },
    heal: async () => {
      for (const h of hosts) await sh('ip', ['netns', 'exec', h.ns, 'iptables', '-w', '-F', 'INPUT']);
    },
    remove,
  };
}
