// TLS for every connection of a shard: certificates made with openssl (certs.ts), a peer's key,
// certificate and CA loaded and checked together (material.ts), reloaded on SIGHUP
// (reloadable.ts), and the peer id bound to a certificate (identity.ts). This room imports only
// node, execa and the shared src/errors.ts and src/log.ts, so that every other room may use it.
export { CA_CERT_FILE, CA_DAYS_DEFAULT, CA_KEY_FILE, initCa, issuePeerCertificate, peerCertFile, peerKeyFile, PEER_DAYS_DEFAULT, type IssuedFiles } from './certs.js';
export { TLS_ERR, TlsError, type TlsErrorCode } from './errors.js';
export { altNames, checkPeerId, parseHost, PEER_URI_PREFIX, peerIdOf, peerIdOfSocket, peerServerIdentity } from './identity.js';
export { checkKeyMode, loadTlsMaterial, TLS_MIN_VERSION, type TlsFiles, type TlsMaterial, type TlsSecureOptions } from './material.js';
export { ReloadableTls, type ReloadOutcome, type TlsStatus } from './reloadable.js';
