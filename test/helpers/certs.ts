// Certificates for tests, made the way an operator makes them (src/tls, openssl): one shard CA
// and a certificate per peer for 127.0.0.1, plus the bad ones the TLS tests present: from another
// CA, expired, and bound to another peer id.
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { CA_CERT_FILE, CA_KEY_FILE, initCa, issuePeerCertificate, peerCertFile, peerKeyFile, type TlsFiles } from '../../src/tls/index.js';

export interface TestCa {
  readonly dir: string;
  readonly caFile: string;
  /** A peer's files (issued on first use, for 127.0.0.1 and localhost unless hosts are given). */
  peer(id: string, hosts?: readonly string[]): Promise<TlsFiles>;
}

/** A CA in `dir` (created); every peer certificate it issues is cached by id. */
export async function makeTestCa(dir: string, name = 'Test shard CA'): Promise<TestCa> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await initCa({ dir, name });
  const issued = new Map<string, Promise<TlsFiles>>();
  return {
    dir,
    caFile: join(dir, CA_CERT_FILE),
    peer(id, hosts = ['127.0.0.1', 'localhost']) {
      let p = issued.get(id);
      if (p === undefined) {
        p = issuePeerCertificate({ dir, peerId: id, hosts }).then(() => ({ caFile: join(dir, CA_CERT_FILE), certFile: peerCertFile(dir, id), keyFile: peerKeyFile(dir, id) }));
        issued.set(id, p);
      }
      return p;
    },
  };
}

/**
 * A certificate for `id` signed by `ca` that expired yesterday (openssl's -days -1 puts notAfter
 * one day before notBefore): what a peer presents when its operator forgot to renew it.
 */
export function expiredPeerCert(ca: TestCa, id: string, outDir: string, hosts: readonly string[] = ['127.0.0.1']): Promise<TlsFiles> {
  return handMadePeerCert(ca, id, outDir, { hosts, days: -1, tag: 'expired' });
}

/**
 * A peer certificate made by hand with openssl (not by src/tls), bound to `id` (URI name) with the
 * subject CN `cn` (default: the id), valid `days` days (-1: expired yesterday).
 */
export async function handMadePeerCert(ca: TestCa, id: string, outDir: string, opts: { hosts?: readonly string[]; days?: number; cn?: string; tag: string }): Promise<TlsFiles> {
  const hosts = opts.hosts ?? ['127.0.0.1'];
  await mkdir(outDir, { recursive: true, mode: 0o700 });
  const base = join(outDir, `${id}-${opts.tag}`);
  const [key, csr, ext, crt] = ['key', 'csr', 'ext', 'crt'].map((x) => `${base}.${x}`) as [string, string, string, string];
  await execa('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  await chmod(key, 0o600);
  await execa('openssl', ['req', '-new', '-key', key, '-subj', `/CN=${opts.cn ?? id}`, '-out', csr]);
  await writeFile(ext, `basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:urn:manatee:peer:${id},${hosts.map((h) => (/^[\d.:]+$/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(',')}\n`);
  await execa('openssl', ['x509', '-req', '-in', csr, '-CA', join(ca.dir, CA_CERT_FILE), '-CAkey', join(ca.dir, CA_KEY_FILE), '-set_serial', String(7 + Math.floor(Math.random() * 1e9)), '-days', String(opts.days ?? 30), '-extfile', ext, '-out', crt]);
  return { caFile: ca.caFile, certFile: crt, keyFile: key };
}
