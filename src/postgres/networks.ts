// Who may reach PostgreSQL over the network (pg_hba.conf's ADDRESS column): the peers of the shard
// by their own addresses, and clients by networks. A peer address is one host (/32, /128, or a DNS
// name that PostgreSQL checks by reverse and forward lookup). The default client networks are "the
// peers' subnets": for each peer address, the subnet of this machine's interface that holds it,
// or the address alone when no local interface does; never the whole internet.
import { isIP } from 'node:net';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { PgError } from './errors.js';

const DNS_NAME_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

interface Net {
  readonly family: 4 | 6;
  readonly bits: number;
  readonly value: bigint;
}

function parseIp(ip: string): { family: 4 | 6; value: bigint } | null {
  const family = isIP(ip);
  if (family === 4) {
    return { family, value: ip.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n) };
  }
  if (family === 6) {
    // Expand "::" and an embedded IPv4 tail into eight 16-bit groups.
    let text = ip.toLowerCase();
    const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
    if (v4 !== null) {
      const n = parseIp(v4[1]!)!.value;
      text = `${text.slice(0, -v4[1]!.length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
    }
    const [head = '', tail] = text.split('::');
    const h = head === '' ? [] : head.split(':');
    const t = tail === undefined || tail === '' ? [] : tail.split(':');
    const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
    return { family, value: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n) };
  }
  return null;
}

function parseCidr(cidr: string): Net | null {
  const [addr = '', bitsText] = cidr.split('/');
  const ip = parseIp(addr);
  if (ip === null) return null;
  const max = ip.family === 4 ? 32 : 128;
  const bits = bitsText === undefined ? max : /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : -1;
  if (bits < 0 || bits > max) return null;
  return { family: ip.family, bits, value: ip.value & mask(ip.family, bits) };
}

function mask(family: 4 | 6, bits: number): bigint {
  const max = family === 4 ? 32 : 128;
  return ((1n << BigInt(bits)) - 1n) << BigInt(max - bits);
}

function format(n: Net): string {
  if (n.family === 4) {
    const parts = [24n, 16n, 8n, 0n].map((s) => String((n.value >> s) & 0xffn));
    return `${parts.join('.')}/${n.bits}`;
  }
  const groups = Array.from({ length: 8 }, (_, i) => ((n.value >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  return `${groups.join(':')}/${n.bits}`;
}

function contains(net: Net, ip: { family: 4 | 6; value: bigint }): boolean {
  return net.family === ip.family && (ip.value & mask(ip.family, net.bits)) === net.value;
}

/** A network in pg_hba.conf's form ("10.0.0.0/24"); throws MANATEE_ERR_PG_INVALID_OPTION naming the value. */
export function normalizeCidr(cidr: string, what = 'postgres.clientCidrs'): string {
  const n = parseCidr(cidr);
  if (n === null) throw new PgError('MANATEE_ERR_PG_INVALID_OPTION', `${what}: ${JSON.stringify(cidr)} is not a network: expected an address with a prefix length, e.g. 10.0.0.0/24 or fd00::/64`);
  return format(n);
}

/** A peer's host as a pg_hba.conf address: the one host (/32 or /128), or its DNS name. */
export function hostAddress(host: string): string {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  const ip = parseIp(bare);
  if (ip !== null) return format({ family: ip.family, bits: ip.family === 4 ? 32 : 128, value: ip.value });
  if (DNS_NAME_RE.test(host)) return host.toLowerCase();
  throw new PgError('MANATEE_ERR_PG_INVALID_OPTION', `peer host ${JSON.stringify(host)}: expected an IP address or a DNS name`);
}

/**
 * The peers' subnets: for each peer host, the subnet of the local interface that holds it, else
 * the host alone. Sorted and without duplicates.
 */
export function peerSubnets(peerHosts: readonly string[], interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string[] {
  const local = Object.values(interfaces).flatMap((list) => list ?? []).map((i) => (i.cidr === null ? null : parseCidr(i.cidr))).filter((n): n is Net => n !== null);
  const out = new Set<string>();
  for (const host of peerHosts) {
    const ip = parseIp(host.replace(/^\[(.*)\]$/, '$1'));
    if (ip === null) {
      out.add(hostAddress(host));
      continue;
    }
    // The most specific local network that holds the address.
    const net = local.filter((n) => contains(n, ip)).sort((a, b) => b.bits - a.bits)[0];
    out.add(net !== undefined ? format(net) : hostAddress(host));
  }
  return [...out].sort();
}
