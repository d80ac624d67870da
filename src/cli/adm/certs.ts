// `manatee-adm certs init | issue`: the shard's CA and the peers' certificates, made on the
// operator's machine with openssl (src/tls). Nothing here talks to a peer.
import { resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { CA_CERT_FILE, CA_DAYS_DEFAULT, initCa, issuePeerCertificate, PEER_DAYS_DEFAULT, type IssuedFiles } from '../../tls/index.js';

export const CERTS_DIR_DEFAULT = 'manatee-certs';

interface CertsIo {
  readonly out: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

function days(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 36_500) throw new InvalidArgumentError('--days must be a whole number from 1 to 36500');
  return Number(v);
}

function collect(v: string, previous: string[]): string[] {
  return [...previous, ...v.split(',').map((h) => h.trim()).filter((h) => h !== '')];
}

function summary(what: string, f: IssuedFiles, extra: string[] = []): string {
  return [
    what,
    `  certificate  ${f.certFile}`,
    `  private key  ${f.keyFile} (mode 0600)`,
    `  subject      ${f.subject.replace(/\n/g, ', ')}`,
    ...extra,
    `  expires      ${f.notAfter.toISOString()}`,
    `  sha256       ${f.fingerprint256}`,
  ].join('\n');
}

/** Adds `certs init` and `certs issue` to manatee-adm (as subcommands, so they inherit its error handling). */
export function addCertsCommands(program: Command, io: CertsIo): void {
  const dirOption = (): Option =>
    new Option('-d, --dir <dir>', `the CA's directory (env MANATEE_CERTS_DIR, default ./${CERTS_DIR_DEFAULT})`);
  const dirOf = (opts: { dir?: string }): string => resolve(opts.dir ?? io.env['MANATEE_CERTS_DIR'] ?? CERTS_DIR_DEFAULT);
  const certs = program.command('certs').description("the shard's certificates: a CA (init), then one key and certificate per peer (issue)");

  certs
    .command('init')
    .description(`make the shard's CA: ${CA_CERT_FILE} (give it to every peer and client) and ca.key (keep it off the peers, mode 0600)`)
    .addOption(dirOption())
    .option('-n, --name <name>', "the CA's name (its CN)", 'Manatee shard CA')
    .addOption(new Option('--days <days>', 'validity in days').argParser(days).default(CA_DAYS_DEFAULT))
    .option('--force', 'replace an existing CA (every peer certificate it issued stops being trusted)')
    .option('-j, --json', 'print JSON for scripts')
    .action(async (opts: { dir?: string; name: string; days: number; force?: boolean; json?: boolean }) => {
      const f = await initCa({ dir: dirOf(opts), name: opts.name, days: opts.days, force: opts.force === true });
      if (opts.json === true) io.out(`${JSON.stringify({ ...f, notAfter: f.notAfter.toISOString() }, null, 2)}\n`);
      else io.out(`${summary('made the shard CA', f)}\nnext: manatee-adm certs issue <peer-id> --host <address> for each peer\n`);
    });

  certs
    .command('issue')
    .description("make a peer's private key and certificate, signed by the CA in --dir: <peer-id>.key and <peer-id>.crt")
    .argument('<peer-id>', "the peer's id (its peerId in the sitter configuration); bound to the certificate")
    .addOption(new Option('-H, --host <host>', 'an address or DNS name the peer is reached at (its "host"); repeat or separate by commas').argParser(collect).default([]))
    .addOption(dirOption())
    .addOption(new Option('--days <days>', 'validity in days').argParser(days).default(PEER_DAYS_DEFAULT))
    .option('--force', 'replace an existing key and certificate for this peer')
    .option('-j, --json', 'print JSON for scripts')
    .action(async (peerId: string, opts: { host: string[]; dir?: string; days: number; force?: boolean; json?: boolean }) => {
      const f = await issuePeerCertificate({ dir: dirOf(opts), peerId, hosts: opts.host, days: opts.days, force: opts.force === true });
      if (opts.json === true) {
        io.out(`${JSON.stringify({ ...f, notAfter: f.notAfter.toISOString() }, null, 2)}\n`);
        return;
      }
      io.out(`${summary(`issued the certificate of ${peerId}`, f, [`  hosts        ${f.hosts.join(', ')}`])}\n` +
        `next: copy ${CA_CERT_FILE}, ${peerId}.crt and ${peerId}.key to ${peerId}'s machine and name them in its configuration's "tls"\n`);
    });
}
