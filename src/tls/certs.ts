// `manatee-adm certs`: a shard's CA, and each peer's key and certificate signed by it, made with
// openssl. Keys are EC P-256. A peer's certificate binds its id (identity.ts) and lists the hosts
// it is reached at; it serves both ends of a connection (serverAuth and clientAuth), since peers
// dial each other (Raft, PostgreSQL replication). Files are made in a private directory and moved
// into place at the end, so a failure leaves nothing half-written; nothing is overwritten unless
// asked (force).
import { randomBytes, X509Certificate } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TLS_ERR, TlsError } from './errors.js';
import { checkPeerId, parseHost, PEER_URI_PREFIX, type HostName } from './identity.js';
import { openssl } from './openssl.js';

export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';
export const CA_DAYS_DEFAULT = 3650;
export const PEER_DAYS_DEFAULT = 730;
const DAYS_MAX = 36_500;
const HOSTS_MAX = 32;
const CA_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$/;

export interface IssuedFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly subject: string;
  readonly notAfter: Date;
  /** SHA-256 fingerprint of the certificate, as openssl prints it. */
  readonly fingerprint256: string;
}

export function peerCertFile(dir: string, peerId: string): string {
  return join(dir, `${peerId}.crt`);
}

export function peerKeyFile(dir: string, peerId: string): string {
  return join(dir, `${peerId}.key`);
}

function checkDays(days: number): void {
  if (!Number.isInteger(days) || days < 1 || days > DAYS_MAX) {
    throw new TlsError(TLS_ERR.badArgument, `days ${days}: expected a whole number from 1 to ${DAYS_MAX}`);
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

async function refuseExisting(paths: readonly string[], force: boolean): Promise<void> {
  if (force) return;
  for (const p of paths) {
    if (await exists(p)) throw new TlsError(TLS_ERR.exists, `${p} exists already; remove it or pass --force to replace it`);
  }
}

/** A private scratch directory beside the results (same file system: the final renames are atomic). */
async function withScratch<T>(dir: string, run: (scratch: string) => Promise<T>): Promise<T> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const scratch = await mkdtemp(join(dir, '.manatee-certs-'));
  try {
    return await run(scratch);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function newKey(path: string): Promise<void> {
  // The scratch directory is 0700, so the key is never readable by others, even before chmod.
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path]);
  await chmod(path, 0o600);
}

function describe(certPem: string, certFile: string, keyFile: string): IssuedFiles {
  const c = new X509Certificate(certPem);
  return { certFile, keyFile, subject: c.subject, notAfter: new Date(c.validTo), fingerprint256: c.fingerprint256 };
}

/** Makes the shard's CA in `dir`: ca.key (mode 0600; keep it off the peers) and ca.crt. */
export async function initCa(opts: { dir: string; name?: string; days?: number; force?: boolean }): Promise<IssuedFiles> {
  const name = opts.name ?? 'Manatee shard CA';
  if (!CA_NAME_RE.test(name)) throw new TlsError(TLS_ERR.badArgument, `CA name ${JSON.stringify(name)}: expected 1-64 characters of [A-Za-z0-9 _.-]`);
  const days = opts.days ?? CA_DAYS_DEFAULT;
  checkDays(days);
  const certFile = join(opts.dir, CA_CERT_FILE);
  const keyFile = join(opts.dir, CA_KEY_FILE);
  await refuseExisting([certFile, keyFile], opts.force === true);
  return withScratch(opts.dir, async (s) => {
    await newKey(join(s, 'key'));
    await openssl([
      'req', '-x509', '-new', '-key', join(s, 'key'), '-subj', `/CN=${name}`, '-days', String(days), '-sha256',
      '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-out', join(s, 'crt'),
    ]);
    const pem = await readFile(join(s, 'crt'), 'utf8');
    await chmod(join(s, 'crt'), 0o644);
    await rename(join(s, 'key'), keyFile);
    await rename(join(s, 'crt'), certFile);
    return describe(pem, certFile, keyFile);
  });
}

function sanLine(peerId: string, hosts: readonly HostName[]): string {
  return [`URI:${PEER_URI_PREFIX}${peerId}`, ...hosts.map((h) => `${h.kind}:${h.value}`)].join(',');
}

/**
 * Makes `<peerId>.key` and `<peerId>.crt` in `dir`, signed by the CA found there (initCa).
 * `hosts`: every address and name the peer is reached at (its `host` in the configuration).
 */
export async function issuePeerCertificate(opts: {
  dir: string;
  peerId: string;
  hosts: readonly string[];
  days?: number;
  force?: boolean;
}): Promise<IssuedFiles & { hosts: readonly string[] }> {
  checkPeerId(opts.peerId);
  if (opts.hosts.length === 0) throw new TlsError(TLS_ERR.badArgument, 'at least one --host is needed: the address or name other peers and clients use for this peer');
  if (opts.hosts.length > HOSTS_MAX) throw new TlsError(TLS_ERR.badArgument, `at most ${HOSTS_MAX} hosts`);
  const hosts = [...new Map(opts.hosts.map(parseHost).map((h) => [`${h.kind}:${h.value}`, h])).values()];
  const days = opts.days ?? PEER_DAYS_DEFAULT;
  checkDays(days);
  const caCert = join(opts.dir, CA_CERT_FILE);
  const caKey = join(opts.dir, CA_KEY_FILE);
  for (const f of [caCert, caKey]) {
    if (!(await exists(f))) throw new TlsError(TLS_ERR.read, `${f} does not exist: run "manatee-adm certs init" first (or pass --dir)`);
  }
  const certFile = peerCertFile(opts.dir, opts.peerId);
  const keyFile = peerKeyFile(opts.dir, opts.peerId);
  await refuseExisting([certFile, keyFile], opts.force === true);
  return withScratch(opts.dir, async (s) => {
    await newKey(join(s, 'key'));
    await openssl(['req', '-new', '-key', join(s, 'key'), '-subj', `/CN=${opts.peerId}`, '-out', join(s, 'csr')]);
    await writeFile(join(s, 'ext'), [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth,clientAuth',
      `subjectAltName=${sanLine(opts.peerId, hosts)}`,
      '',
    ].join('\n'));
    await openssl([
      'x509', '-req', '-in', join(s, 'csr'), '-CA', caCert, '-CAkey', caKey, '-days', String(days), '-sha256',
      // A random serial, so that no serial file has to be kept beside the CA.
      '-set_serial', `0x${randomBytes(16).toString('hex').replace(/^[89a-f]/, '7')}`,
      '-extfile', join(s, 'ext'), '-out', join(s, 'crt'),
    ]);
    const pem = await readFile(join(s, 'crt'), 'utf8');
    await chmod(join(s, 'crt'), 0o644);
    await rename(join(s, 'key'), keyFile);
    await rename(join(s, 'crt'), certFile);
    return { ...describe(pem, certFile, keyFile), hosts: hosts.map((h) => h.value) };
  });
}
