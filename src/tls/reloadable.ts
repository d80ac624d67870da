// A peer's TLS set that can be replaced while the peer runs: reload() (on SIGHUP) reads the files
// again and, when they changed and the new set passes every check, makes it current and tells the
// listeners, which give it to their servers (new connections use it; open ones keep theirs). A bad
// new set is refused with a log line and the current one stays, so a botched copy of a
// certificate never takes a running peer off the network.
import { EventEmitter } from 'node:events';
import type { Server as TlsServer } from 'node:tls';
import type { Logger } from '../log.js';
import { ManateeError, errorMessage } from '../errors.js';
import type { X509Certificate } from 'node:crypto';
import { peerIdOf } from './identity.js';
import { loadTlsMaterial, type TlsFiles, type TlsMaterial } from './material.js';
import type { TlsCertificateStatus } from '../model/index.js';

export type ReloadOutcome = 'reloaded' | 'unchanged' | 'failed';

/** GET /status's `tls`: what is loaded and when it expires (src/model's TlsCertificateStatus). */
export type TlsStatus = TlsCertificateStatus;

interface Events {
  reload: [TlsMaterial];
}

export class ReloadableTls extends EventEmitter<Events> {
  private current: TlsMaterial;
  private loadedAt: Date;
  private reloadError: TlsStatus['reloadError'] = null;
  private reloading: Promise<ReloadOutcome> | null = null;

  private constructor(
    material: TlsMaterial,
    private readonly expectedPeerId: string | undefined,
    private readonly log: Logger,
  ) {
    super();
    this.current = material;
    this.loadedAt = new Date();
  }

  /** Loads and checks the files (throws a TlsError naming the problem: the peer must not start). */
  static async open(files: TlsFiles, opts: { expectedPeerId?: string; log: Logger }): Promise<ReloadableTls> {
    const material = await loadTlsMaterial(files, opts.expectedPeerId === undefined ? {} : { expectedPeerId: opts.expectedPeerId });
    const log = opts.log.child({ room: 'tls' });
    log.info({ tls: 'loaded', certFile: files.certFile, peerId: material.peerId, notAfter: material.notAfter.toISOString() }, 'TLS certificate loaded');
    return new ReloadableTls(material, opts.expectedPeerId, log);
  }

  get material(): TlsMaterial {
    return this.current;
  }

  /** Reads the files again; a changed, valid set becomes current. One reload at a time. */
  reload(): Promise<ReloadOutcome> {
    this.reloading ??= this.doReload().finally(() => { this.reloading = null; });
    return this.reloading;
  }

  private async doReload(): Promise<ReloadOutcome> {
    let next: TlsMaterial;
    try {
      next = await loadTlsMaterial(this.current.files, this.expectedPeerId === undefined ? {} : { expectedPeerId: this.expectedPeerId });
    } catch (err) {
      const code = err instanceof ManateeError ? err.code : 'MANATEE_ERR_INTERNAL';
      const message = errorMessage(err);
      this.reloadError = { at: new Date().toISOString(), code, message };
      this.log.error({ tls: 'reload-refused', code, reason: message }, `TLS reload refused, the current certificate stays: ${message}`);
      return 'failed';
    }
    this.reloadError = null;
    if (next.digest === this.current.digest) {
      this.log.info({ tls: 'reload-unchanged', reason: 'the files did not change' }, 'TLS files unchanged');
      return 'unchanged';
    }
    const previous = this.current;
    this.current = next;
    this.loadedAt = new Date();
    this.log.info({
      tls: 'reloaded', reason: 'the files changed', fingerprint256: next.certificate.fingerprint256, previous: previous.certificate.fingerprint256,
      notAfter: next.notAfter.toISOString(),
    }, 'TLS certificate reloaded: new connections use it');
    this.emit('reload', next);
    return 'reloaded';
  }

  /** Runs `listener` after each reload; returns the function that stops it. */
  onReload(listener: (m: TlsMaterial) => void): () => void {
    this.on('reload', listener);
    return () => { this.off('reload', listener); };
  }

  /** What the Raft transport takes (its TransportTls): the current set, reloads, and the peer id of a certificate. */
  forTransport(): { current(): TlsMaterial; onReload(listener: () => void): () => void; peerIdOf(cert: X509Certificate): string | null } {
    return { current: () => this.current, onReload: (l) => this.onReload(l), peerIdOf };
  }

  /** Gives every reloaded set to `server` (an https or tls server); returns the unsubscribe function. */
  attach(server: Pick<TlsServer, 'setSecureContext'>): () => void {
    const onReload = (m: TlsMaterial): void => { server.setSecureContext({ ...m.options }); };
    this.on('reload', onReload);
    return () => { this.off('reload', onReload); };
  }

  status(now = new Date()): TlsStatus {
    const m = this.current;
    return {
      certFile: m.files.certFile,
      subject: m.certificate.subject,
      peerId: m.peerId,
      fingerprint256: m.certificate.fingerprint256,
      notAfter: m.notAfter.toISOString(),
      expiresInSeconds: Math.floor((m.notAfter.getTime() - now.getTime()) / 1000),
      caNotAfter: m.caNotAfter.toISOString(),
      caExpiresInSeconds: Math.floor((m.caNotAfter.getTime() - now.getTime()) / 1000),
      loadedAt: this.loadedAt.toISOString(),
      reloadError: this.reloadError,
    };
  }
}
