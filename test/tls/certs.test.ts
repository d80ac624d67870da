// The shard's certificates as an operator makes them (manatee-adm certs init / issue, openssl) and
// as a peer loads them: every check of loadTlsMaterial refuses its bad case with its own code.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { chmod, copyFile, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runAdm } from '../../src/cli/adm/program.js';
import { altNames, initCa, issuePeerCertificate, loadTlsMaterial, peerIdOf, TLS_ERR, type TlsFiles } from '../../src/tls/index.js';
import { expiredPeerCert, handMadePeerCert, makeTestCa, type TestCa } from '../helpers/certs.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';

let tmp: { path: string; cleanup: () => Promise<void> };
let ca: TestCa;
let other: TestCa;

beforeAll(async () => {
  tmp = await makeTmpDir('tls-certs');
  [ca, other] = await Promise.all([makeTestCa(join(tmp.path, 'ca')), makeTestCa(join(tmp.path, 'other'), 'Another CA')]);
});

afterAll(async () => { await tmp.cleanup(); });

async function adm(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runAdm(args, { out: (t) => { stdout += t; }, err: (t) => { stderr += t; }, env: {}, now: () => new Date() });
  return { code, stdout, stderr };
}

describe('manatee-adm certs', () => {
  it('init makes a CA and issue a peer certificate bound to its id, with the hosts as names', async () => {
    const dir = join(tmp.path, 'adm');
    const init = await adm(['certs', 'init', '--dir', dir, '--name', 'Shard one']);
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    expect(init.stdout).toContain('made the shard CA');
    const issue = await adm(['certs', 'issue', 'peer-1', '--dir', dir, '--host', '10.0.0.1,db1.example.net', '-H', '::1', '--days', '30']);
    expect(issue.stderr).toBe('');
    expect(issue.code).toBe(0);
    expect(issue.stdout).toContain('hosts        10.0.0.1, db1.example.net, ::1');

    expect((await stat(join(dir, 'ca.key'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'peer-1.key'))).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(await readFile(join(dir, 'peer-1.crt')));
    expect(peerIdOf(cert)).toBe('peer-1');
    expect(cert.subject).toBe('CN=peer-1');
    expect(cert.issuer).toBe('CN=Shard one');
    expect(altNames(cert)).toEqual([['URI', 'urn:manatee:peer:peer-1'], ['IP Address', '10.0.0.1'], ['DNS', 'db1.example.net'], ['IP Address', '0:0:0:0:0:0:0:1']]);
    expect(cert.checkHost('db1.example.net')).toBe('db1.example.net');
    expect(cert.checkIP('10.0.0.1')).toBe('10.0.0.1');
    const days = (new Date(cert.validTo).getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29);
    expect(days).toBeLessThanOrEqual(30);
    const m = await loadTlsMaterial({ caFile: join(dir, 'ca.crt'), certFile: join(dir, 'peer-1.crt'), keyFile: join(dir, 'peer-1.key') }, { expectedPeerId: 'peer-1' });
    expect(m.peerId).toBe('peer-1');
  });

  it('never overwrites a CA or a peer key without --force', async () => {
    const dir = join(tmp.path, 'force');
    expect((await adm(['certs', 'init', '--dir', dir])).code).toBe(0);
    const before = await readFile(join(dir, 'ca.key'), 'utf8');
    const again = await adm(['certs', 'init', '--dir', dir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`manatee-adm: ${TLS_ERR.exists}: ${join(dir, 'ca.crt')} exists already`);
    expect(await readFile(join(dir, 'ca.key'), 'utf8')).toBe(before);
    expect((await adm(['certs', 'issue', 'p', '--dir', dir, '--host', '127.0.0.1'])).code).toBe(0);
    const key = await readFile(join(dir, 'p.key'), 'utf8');
    const dup = await adm(['certs', 'issue', 'p', '--dir', dir, '--host', '127.0.0.1']);
    expect(dup.stderr).toContain(TLS_ERR.exists);
    expect(await readFile(join(dir, 'p.key'), 'utf8')).toBe(key);
    expect((await adm(['certs', 'issue', 'p', '--dir', dir, '--host', '127.0.0.1', '--force'])).code).toBe(0);
    expect(await readFile(join(dir, 'p.key'), 'utf8')).not.toBe(key);
  });

  it('refuses a bad peer id, a bad host, no host, bad days, and a directory without a CA', async () => {
    const dir = ca.dir;
    const cases: [string[], string, string][] = [
      [['certs', 'issue', 'a/b', '--dir', dir, '--host', '127.0.0.1'], TLS_ERR.badArgument, 'peer id "a/b"'],
      [['certs', 'issue', 'p', '--dir', dir, '--host', '*.example.net'], TLS_ERR.badArgument, 'host "*.example.net"'],
      [['certs', 'issue', 'p', '--dir', dir], TLS_ERR.badArgument, 'at least one --host'],
      [['certs', 'issue', 'p', '--dir', dir, '--host', 'h', '--days', '0'], 'MANATEE_ERR_USAGE', '--days must be a whole number'],
      [['certs', 'issue', 'p', '--dir', join(tmp.path, 'nothing-here'), '--host', 'h'], TLS_ERR.read, 'run "manatee-adm certs init" first'],
    ];
    for (const [args, code, text] of cases) {
      const r = await adm(args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toContain(code);
      expect(r.stderr, args.join(' ')).toContain(text);
    }
    await expect(initCa({ dir: join(tmp.path, 'badname'), name: 'a/b' })).rejects.toMatchObject({ code: TLS_ERR.badArgument });
    await expect(issuePeerCertificate({ dir, peerId: 'p', hosts: ['h'], days: 1.5 })).rejects.toMatchObject({ code: TLS_ERR.badArgument });
  });
});

describe('loadTlsMaterial refuses a bad set, naming the file', () => {
  let good: TlsFiles;
  beforeAll(async () => { good = await ca.peer('a'); });

  async function refused(files: TlsFiles, code: string, text: string, expectedPeerId = 'a'): Promise<void> {
    const err = await loadTlsMaterial(files, { expectedPeerId }).then(() => null, (e: unknown) => e);
    expect(err).toMatchObject({ code });
    expect((err as Error).message).toContain(text);
  }

  it('accepts the right set and reports its expiry', async () => {
    const m = await loadTlsMaterial(good, { expectedPeerId: 'a' });
    expect(m.peerId).toBe('a');
    expect(m.notAfter.getTime()).toBeGreaterThan(Date.now() + 700 * 86_400_000);
    expect(m.options.minVersion).toBe('TLSv1.3');
  });

  it('a key of another certificate', async () => {
    const b = await ca.peer('b');
    await refused({ ...good, keyFile: b.keyFile }, TLS_ERR.keyMismatch, `the private key ${b.keyFile} does not belong to the certificate ${good.certFile}`);
  });

  it('a certificate from another CA', async () => {
    const o = await other.peer('a');
    await refused({ ...good, certFile: o.certFile, keyFile: o.keyFile }, TLS_ERR.notSigned, `the certificate ${o.certFile} (issuer "CN=Another CA") was not issued by the CA`);
  });

  it('an expired certificate', async () => {
    const e = await expiredPeerCert(ca, 'a', join(tmp.path, 'expired'));
    await refused({ ...good, ...e }, TLS_ERR.expired, `the certificate ${e.certFile} expired on`);
  });

  it('a certificate bound to another peer', async () => {
    const b = await ca.peer('b');
    await refused(b, TLS_ERR.peerId, 'is bound to peer "b", not to this peer ("a")');
  });

  it('a certificate bound to this peer whose CN is another name (PostgreSQL admits replication by the CN)', async () => {
    const odd = await handMadePeerCert(ca, 'a', join(tmp.path, 'odd-cn'), { cn: 'db-a.example.net', tag: 'odd-cn' });
    await refused(odd, TLS_ERR.peerId, `the certificate ${odd.certFile} has the subject CN "db-a.example.net", not this peer's id ("a"): the other peers' PostgreSQL would refuse its replication connections`);
    // The same by hand with the id as CN: accepted (the check is about the CN, not about openssl).
    const same = await handMadePeerCert(ca, 'a', join(tmp.path, 'odd-cn'), { tag: 'same-cn' });
    expect((await loadTlsMaterial(same, { expectedPeerId: 'a' })).peerId).toBe('a');
  });

  it('a private key readable by group or others', async () => {
    const loose = join(tmp.path, 'loose.key');
    await copyFile(good.keyFile, loose);
    await chmod(loose, 0o640);
    await refused({ ...good, keyFile: loose }, TLS_ERR.keyMode, `the private key ${loose} has mode 0640`);
  });

  it('a file that is not PEM, a missing file, and a CA file that is not a CA', async () => {
    const junk = join(tmp.path, 'junk.crt');
    await writeFile(junk, 'not a certificate\n');
    await refused({ ...good, certFile: junk }, TLS_ERR.invalid, `the certificate ${junk} is not a PEM certificate`);
    await refused({ ...good, caFile: join(tmp.path, 'missing.crt') }, TLS_ERR.read, `cannot read the CA certificate ${join(tmp.path, 'missing.crt')}`);
    await refused({ ...good, caFile: good.certFile }, TLS_ERR.invalid, 'is not a CA certificate');
  });
});
