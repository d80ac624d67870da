// The openssl command, through execa. Manatee makes keys and certificates with it and never does
// the cryptography itself.
import { execa } from 'execa';
import { TLS_ERR, TlsError } from './errors.js';

/** Generous: key generation and signing take milliseconds, but a loaded machine may stall. */
const OPENSSL_TIMEOUT_MS = 60_000;

export interface OpensslRun {
  readonly stdout: string;
}

/** Runs `openssl <args>`; throws MANATEE_ERR_TLS_OPENSSL with its stderr when it fails. */
export async function openssl(args: readonly string[], opts: { cwd?: string; input?: string } = {}): Promise<OpensslRun> {
  const r = await execa('openssl', args, {
    reject: false,
    timeout: OPENSSL_TIMEOUT_MS,
    cwd: opts.cwd ?? '/',
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' },
    extendEnv: false,
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' as const }),
  });
  if (r.failed) {
    const why = r.code === 'ENOENT' ? 'is not installed (install the openssl package)' : r.timedOut ? `timed out after ${OPENSSL_TIMEOUT_MS} ms` : `exited with code ${r.exitCode ?? r.signal ?? '?'}`;
    throw new TlsError(TLS_ERR.openssl, `openssl ${args[0] ?? ''} ${why}${r.stderr === '' ? '' : `: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`}`);
  }
  return { stdout: r.stdout };
}
