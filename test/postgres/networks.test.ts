// pg_hba.conf's addresses: a peer is one host, and the default client networks are the peers'
// subnets as this machine's interfaces see them, never the whole internet.
import { describe, expect, it } from 'vitest';
import type { NetworkInterfaceInfo } from 'node:os';
import { hostAddress, normalizeCidr, peerSubnets } from '../../src/postgres/networks.js';

function iface(address: string, cidr: string): NetworkInterfaceInfo {
  const family = address.includes(':') ? 'IPv6' : 'IPv4';
  return { address, cidr, netmask: '', family, mac: '00:00:00:00:00:00', internal: false, ...(family === 'IPv6' ? { scopeid: 0 } : {}) } as NetworkInterfaceInfo;
}

const interfaces = {
  lo: [iface('127.0.0.1', '127.0.0.1/8'), iface('::1', '::1/128')],
  eth0: [iface('10.1.2.3', '10.1.2.3/24'), iface('fd00::3', 'fd00::3/64')],
  br0: [iface('10.1.0.1', '10.1.0.1/16')],
};

describe('pg_hba.conf addresses', () => {
  it('a peer host is one address, or its DNS name', () => {
    expect(hostAddress('10.0.0.7')).toBe('10.0.0.7/32');
    expect(hostAddress('[fd00::1]')).toBe('fd00:0:0:0:0:0:0:1/128');
    expect(hostAddress('DB1.example.net')).toBe('db1.example.net');
    expect(() => hostAddress('a b')).toThrow(/peer host "a b": expected an IP address or a DNS name/);
  });

  it('client networks are normalized, and a bad one is refused with its value named', () => {
    expect(normalizeCidr('10.1.2.3/24')).toBe('10.1.2.0/24');
    expect(normalizeCidr('fd00::1/64')).toBe('fd00:0:0:0:0:0:0:0/64');
    expect(normalizeCidr('::ffff:10.0.0.1/128')).toBe('0:0:0:0:0:ffff:a00:1/128');
    for (const bad of ['10.0.0.0/33', '10.0.0/8', 'all', '0.0.0.0/x']) {
      expect(() => normalizeCidr(bad), bad).toThrow(new RegExp(`postgres.clientCidrs: "${bad.replace(/[.*/]/g, '\\$&')}" is not a network`));
    }
  });

  it('the default client networks are the subnets of the local interfaces that hold a peer, the most specific first', () => {
    expect(peerSubnets(['10.1.2.3', '10.1.2.9', '10.1.7.7', '192.168.9.9', 'fd00::9', 'db.example.net'], interfaces)).toEqual([
      '10.1.0.0/16', '10.1.2.0/24', '192.168.9.9/32', 'db.example.net', 'fd00:0:0:0:0:0:0:0/64',
    ]);
    expect(peerSubnets(['127.0.0.1'], interfaces)).toEqual(['127.0.0.0/8']);
  });
});
