// A peer's TLS set: the shard's CA certificate, the peer's certificate and its private key, read
// from files and checked together before anything uses them: the key belongs to the certificate,
// the certificate was issued by the CA, both are within their validity, and the certificate names
// this peer. TLS 1.3 is the floor of every context made from it.
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { createSecureContext, type SecureContext } from 'node:tls';
import { TLS_ERR, TlsError } from './errors.js';
import { peerIdOf } from './identity.js';

export const TLS_MIN_VERSION = 'TLSv1.3';

export interface TlsFiles {
  /** The shard CA's certificate (PEM): the only issuer a peer trusts. */
  readonly caFile: string;
  /** This peer's certificate (PEM), issued by the CA. */
  readonly certFile: string;
  /** Its private key (PEM); must not be readable by group or others. */
  readonly keyFile: string;
}

/** What a TLS server or client is given (node:tls options). */
export interface TlsSecureOptions {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  readonly minVersion: 'TLSv1.3';
}

export interface TlsMaterial {
  readonly files: TlsFiles;
  readonly options: TlsSecureOptions;
  readonly context: SecureContext;
  readonly certificate: X509Certificate;
  readonly caCertificate: X509Certificate;
  /** The peer id the certificate is bound to (null when it names none: allowed only without expectedPeerId). */
  readonly peerId: string | null;
  readonly notAfter: Date;
  readonly caNotAfter: Date;
  /** SHA-256 of the three files' contents: a reload with the same digest changes nothing. */
  readonly digest: string;
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new TlsError(TLS_ERR.read, `cannot read the ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function parseCertificate(pem: string, path: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new TlsError(TLS_ERR.invalid, `the ${what} ${path} is not a PEM certificate: ${(err as Error).message}`, { cause: err });
  }
}

function parseKey(pem: string, path: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw new TlsError(TLS_ERR.invalid, `the private key ${path} is not a PEM private key (an encrypted key is not supported): ${(err as Error).message}`, { cause: err });
  }
}

function checkValidity(c: X509Certificate, path: string, what: string, now: Date): void {
  if (now.getTime() < new Date(c.validFrom).getTime()) {
    throw new TlsError(TLS_ERR.notYetValid, `the ${what} ${path} is not valid before ${new Date(c.validFrom).toISOString()} (is this machine's clock right?)`);
  }
  if (now.getTime() > new Date(c.validTo).getTime()) {
    throw new TlsError(TLS_ERR.expired, `the ${what} ${path} expired on ${new Date(c.validTo).toISOString()}: issue a new one (manatee-adm certs issue) and reload (SIGHUP)`);
  }
}

/** A private key readable by group or others is refused: it is the peer's identity. */
export async function checkKeyMode(path: string): Promise<void> {
  let mode: number;
  try {
    mode = (await stat(path)).mode & 0o777;
  } catch (err) {
    throw new TlsError(TLS_ERR.read, `cannot read the private key ${path}: ${(err as Error).message}`, { cause: err });
  }
  if ((mode & 0o077) !== 0) {
    throw new TlsError(TLS_ERR.keyMode, `the private key ${path} has mode ${mode.toString(8).padStart(4, '0')}: it must not be readable by group or others (chmod 600 ${path})`);
  }
}

/** Reads and checks a TLS set. Throws a TlsError that names the file and the problem. */
export async function loadTlsMaterial(files: TlsFiles, opts: { expectedPeerId?: string; now?: Date } = {}): Promise<TlsMaterial> {
  const now = opts.now ?? new Date();
  await checkKeyMode(files.keyFile);
  const [caPem, certPem, keyPem] = await Promise.all([
    readText(files.caFile, 'CA certificate'),
    readText(files.certFile, 'certificate'),
    readText(files.keyFile, 'private key'),
  ]);
  const ca = parseCertificate(caPem, files.caFile, 'CA certificate');
  const cert = parseCertificate(certPem, files.certFile, 'certificate');
  const key = parseKey(keyPem, files.keyFile);
  if (!ca.ca) throw new TlsError(TLS_ERR.invalid, `${files.caFile} is not a CA certificate (basicConstraints CA:TRUE is missing)`);
  if (!cert.checkPrivateKey(key)) {
    throw new TlsError(TLS_ERR.keyMismatch, `the private key ${files.keyFile} does not belong to the certificate ${files.certFile}`);
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
    throw new TlsError(TLS_ERR.notSigned, `the certificate ${files.certFile} (issuer "${cert.issuer}") was not issued by the CA ${files.caFile} ("${ca.subject}")`);
  }
  checkValidity(ca, files.caFile, 'CA certificate', now);
  checkValidity(cert, files.certFile, 'certificate', now);
  const peerId = peerIdOf(cert);
  if (opts.expectedPeerId !== undefined && peerId !== opts.expectedPeerId) {
    throw new TlsError(TLS_ERR.peerId, `the certificate ${files.certFile} is bound to ${peerId === null ? 'no peer id' : `peer "${peerId}"`}, not to this peer ("${opts.expectedPeerId}"): issue one with manatee-adm certs issue ${opts.expectedPeerId}`);
  }
  if (opts.expectedPeerId !== undefined) {
    // PostgreSQL admits the replication role by the certificate's CN (pg_ident.conf maps peer ids), not its URI name.
    const cn = /^CN=(.*)$/m.exec(cert.subject)?.[1] ?? null;
    if (cn !== opts.expectedPeerId) {
      throw new TlsError(TLS_ERR.peerId, `the certificate ${files.certFile} has the subject CN ${cn === null ? '(none)' : JSON.stringify(cn)}, not this peer's id ("${opts.expectedPeerId}"): the other peers' PostgreSQL would refuse its replication connections (they admit a peer by its certificate's CN); issue one with manatee-adm certs issue ${opts.expectedPeerId}`);
    }
  }
  const options: TlsSecureOptions = { ca: caPem, cert: certPem, key: keyPem, minVersion: TLS_MIN_VERSION };
  return {
    files,
    options,
    context: createSecureContext(options),
    certificate: cert,
    caCertificate: ca,
    peerId,
    notAfter: new Date(cert.validTo),
    caNotAfter: new Date(ca.validTo),
    digest: createHash('sha256').update(caPem).update('\0').update(certPem).update('\0').update(keyPem).digest('hex'),
  };
}
