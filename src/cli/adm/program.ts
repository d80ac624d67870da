// manatee-adm's commands (commander). runAdm() parses, runs one command, and returns the exit
// status: 0 on success, 1 on any error, printed as "manatee-adm: <CODE>: <message>".
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ManateeError, errorMessage } from '../../errors.js';
import { PROMOTE_EXPIRE_MS_MAX, PROMOTE_EXPIRE_MS_MIN, type OnwmMode } from '../../peer/admin.js';
import { AdmClient, AdmError } from './client.js';
import { addCertsCommands } from './certs.js';
import { addConfigCommands } from './config.js';
import { addRestartCommands, scheduleTime } from './restart.js';
import {
  historyColumns,
  HISTORY_COLUMNS,
  peerColumns,
  PEERS_COLUMNS,
  pickColumns,
  renderPgStatus,
  renderShow,
  renderVerify,
  table,
  verifyShard,
} from './views.js';

export const DEFAULT_URL = 'http://127.0.0.1:5433';
const TIMEOUT_S_DEFAULT = 10;
const HISTORY_LIMIT_MAX = 1000;

export interface AdmIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly now: () => Date;
}

interface GlobalOptions {
  url?: string;
  token?: string;
  tokenFile?: string;
  ca?: string;
  timeout: number;
}

/**
 * The CA certificate (PEM) that the peers' https APIs must be signed by: read and parsed here,
 * so that a wrong path or a file that is not a certificate is said before any peer is called.
 */
export function readCaFile(path: string): { pem: string; source: string } {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new AdmError('MANATEE_ERR_CA_FILE', `cannot read the CA file ${path}: ${errorMessage(err)}`);
  }
  try {
    if (!new X509Certificate(pem).ca) throw new AdmError('MANATEE_ERR_CA_FILE', 'it is a certificate, but not a CA (no basicConstraints CA:TRUE): give ca.crt of manatee-adm certs init');
  } catch (err) {
    throw new AdmError('MANATEE_ERR_CA_FILE', `the CA file ${path} is not usable: ${errorMessage(err)}`);
  }
  return { pem, source: path };
}

/** The admin token from a file: its first line (a trailing newline is not part of it). */
function readTokenFile(path: string, warn: (text: string) => void): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
    if ((statSync(path).mode & 0o077) !== 0) warn(`manatee-adm: warning: the token file ${path} is readable by group or others (chmod 600 ${path})\n`);
  } catch (err) {
    throw new AdmError('MANATEE_ERR_TOKEN_FILE', `cannot read the token file ${path}: ${errorMessage(err)}`);
  }
  const token = text.split(/\r?\n/)[0]?.trim() ?? '';
  if (token === '') throw new AdmError('MANATEE_ERR_TOKEN_FILE', `the token file ${path} is empty`);
  return token;
}

function positiveInt(what: string, max: number) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) throw new InvalidArgumentError(`${what} must be a whole number from 1 to ${max}`);
    return Number(v);
  };
}

function operatorName(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}@${hostname()}`;
  }
}

/** A positive number of seconds (pg-status PERIOD). */
function positiveSeconds(what: string, max: number) {
  return (v: string): number => {
    if (!/^\d+(\.\d+)?$/.test(v) || Number(v) <= 0 || Number(v) > max) throw new InvalidArgumentError(`${what} must be a number of seconds above 0, at most ${max}`);
    return Number(v);
  };
}

/** verify found problems: the report is on stdout, this one line on stderr, exit status 1. */
export class VerifyFailedError extends AdmError {
  constructor(count: number) {
    super('MANATEE_ERR_VERIFY_FAILED', `${count} problem${count === 1 ? '' : 's'} found`);
  }
}


const COLUMNS_HELP = 'columns to print, separated by commas (see --help of the command for names)';

function buildProgram(io: AdmIo): Command {
  const program = new Command('manatee-adm');
  program
    .description("Inspect and administer a Manatee shard through any peer's HTTP API")
    .addOption(new Option('-u, --url <url>', `a peer's API, or several separated by commas, tried in turn (env MANATEE_URL, default ${DEFAULT_URL})`))
    .addOption(new Option('--token-file <path>', 'a file that holds the admin token, for changes (env MANATEE_ADMIN_TOKEN_FILE)'))
    .addOption(new Option('-t, --token <token>', 'the admin token on the command line: visible to every user of this machine (ps) and kept in shell history; prefer MANATEE_ADMIN_TOKEN or --token-file'))
    .addOption(new Option('--ca <file>', "the shard CA's certificate (ca.crt) that https peers must be signed by (env MANATEE_CA; default: the system's CAs)"))
    .addOption(new Option('--timeout <seconds>', 'how long to wait for the API').argParser(positiveInt('--timeout', 600)).default(TIMEOUT_S_DEFAULT))
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err, outputError: () => undefined });

  // The token never needs to be in argv, where any user of the machine can read it (ps, /proc):
  // the environment or a file. --token still works, with a warning.
  let warnedArgv = false;
  const tokenOf = (g: GlobalOptions): string | undefined => {
    if (g.token !== undefined && g.tokenFile !== undefined) throw new AdmError('MANATEE_ERR_USAGE', 'give the admin token once: --token-file or --token, not both');
    if (g.tokenFile !== undefined) return readTokenFile(g.tokenFile, io.err);
    if (g.token !== undefined) {
      if (!warnedArgv) io.err('manatee-adm: warning: --token puts the admin token where every user of this machine can read it (ps) and in shell history; use MANATEE_ADMIN_TOKEN or --token-file\n');
      warnedArgv = true;
      return g.token;
    }
    const fromEnv = io.env['MANATEE_ADMIN_TOKEN'];
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
    const file = io.env['MANATEE_ADMIN_TOKEN_FILE'];
    return file !== undefined && file !== '' ? readTokenFile(file, io.err) : undefined;
  };

  const client = (cmd: Command): AdmClient => {
    const g = cmd.optsWithGlobals<GlobalOptions>();
    const token = tokenOf(g);
    const caFile = g.ca ?? (io.env['MANATEE_CA'] === '' ? undefined : io.env['MANATEE_CA']);
    return new AdmClient({
      ...(caFile === undefined ? {} : { ca: readCaFile(caFile) }),
      url: g.url ?? io.env['MANATEE_URL'] ?? DEFAULT_URL,
      timeoutMs: g.timeout * 1000,
      operator: operatorName(),
      ...(token === undefined ? {} : { token }),
    });
  };
  const json = (v: unknown): void => { io.out(`${JSON.stringify(v, null, 2)}\n`); };

  program
    .command('show')
    .alias('status')
    .description("the shard: each peer's role, PostgreSQL health, writability and lag (bytes and seconds); generation, freeze, last decisions")
    .option('-v, --verbose', 'also the replication links, upstreams, LSNs, decisions and rebuilds')
    .option('-j, --json', 'print JSON for scripts (the API\'s GET /shard)')
    .option('-o, --columns <names>', `${COLUMNS_HELP}: role,peer,host,pg,writable,lag,lag_s,sitter,postgres,upstream,repl,active,lsn,pgurl,apiurl,decision,tags,pending`)
    .action(async (opts: { verbose?: boolean; json?: boolean; columns?: string }, cmd: Command) => {
      const report = await client(cmd).shard();
      if (opts.json === true) json(report);
      else io.out(`${renderShow(report, io.now(), { verbose: opts.verbose === true, columns: opts.columns })}\n`);
    });

  program
    .command('peers')
    .description('every peer: role, session, Raft membership, URLs')
    .option('-j, --json', 'print JSON for scripts')
    .option('-o, --columns <names>', `${COLUMNS_HELP}: role,peer,host,active,raft,pgurl,apiurl,pg,writable,...`)
    .action(async (opts: { json?: boolean; columns?: string }, cmd: Command) => {
      const c = client(cmd);
      const [report, members] = await Promise.all([c.shard(), c.members()]);
      if (opts.json === true) {
        json({ peers: report.peers, members });
        return;
      }
      const columns = pickColumns(peerColumns(report, members), PEERS_COLUMNS, opts.columns);
      const outside = [...members.voters, ...members.learners].filter((id) => !report.peers.some((p) => p.id === id));
      const extra = outside.length === 0 ? '' : `\nRaft members with no place in the state and no session: ${outside.join(', ')}`;
      io.out(`${report.peers.length === 0 ? 'no peers' : table(columns, report.peers)}${extra}\n`);
    });

  program
    .command('pg-status')
    .description('the replication links of the chain with their state and lag; every PERIOD seconds, COUNT times')
    .argument('[period]', 'repeat every PERIOD seconds', positiveSeconds('PERIOD', 3600))
    .argument('[count]', 'stop after COUNT reports (default: until interrupted)', positiveInt('COUNT', 1_000_000))
    .option('-j, --json', 'print JSON for scripts (one line per report when repeating)')
    .option('-o, --columns <names>', `${COLUMNS_HELP}: upstream,downstream,expected,state,sync_state,lag,lag_s`)
    .action(async (period: number | undefined, count: number | undefined, opts: { json?: boolean; columns?: string }, cmd: Command) => {
      const c = client(cmd);
      const times = period === undefined ? 1 : (count ?? Infinity);
      for (let i = 0; i < times; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, (period ?? 0) * 1000));
        const report = await c.shard();
        if (opts.json === true) {
          io.out(period === undefined ? `${JSON.stringify(report.links, null, 2)}\n` : `${JSON.stringify({ time: io.now().toISOString(), links: report.links })}\n`);
        } else {
          io.out(`${period === undefined ? '' : `${io.now().toISOString()}\n`}${renderPgStatus(report, opts.columns)}\n${period === undefined ? '' : '\n'}`);
        }
      }
    });

  program
    .command('history')
    .description('the cluster state changes, oldest first, with their summaries')
    .option('-j, --json', 'print JSON for scripts')
    .option('-o, --columns <names>', `${COLUMNS_HELP}: time,g#,ver,mode,frz,primary,sync,async,deposed,initwal,summary`)
    .addOption(new Option('-n, --limit <count>', 'the newest COUNT changes').argParser(positiveInt('--limit', HISTORY_LIMIT_MAX)).default(100))
    .action(async (opts: { json?: boolean; limit: number; columns?: string }, cmd: Command) => {
      const entries = await client(cmd).history(opts.limit);
      if (opts.json === true) json(entries);
      else io.out(`${entries.length === 0 ? 'no history yet' : table(pickColumns(historyColumns(), HISTORY_COLUMNS, opts.columns), entries)}\n`);
    });

  program
    .command('verify')
    .description('check the shard (exit status 1 on problems): primary and sync serving, no deposed peer, an async, every link streaming')
    .option('-j, --json', 'print JSON for scripts: {ok, issues}')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const c = client(cmd);
      const [report, members] = await Promise.all([c.shard(), c.members()]);
      const issues = verifyShard(report, members);
      const errors = issues.filter((i) => i.severity === 'error').length;
      if (opts.json === true) json({ ok: errors === 0, issues });
      else io.out(`${renderVerify(issues)}\n`);
      if (errors > 0) throw new VerifyFailedError(errors);
    });

  program
    .command('state')
    .description('the committed cluster state and its version, as JSON')
    // Always JSON; -j is accepted as on every other command, so that scripts may pass it throughout.
    .option('-j, --json', 'print JSON (the only output of this command)')
    .action(async (_opts: unknown, cmd: Command) => { json(await client(cmd).state()); });

  program
    .command('active')
    .description('the active peers (those with a session), as JSON')
    .option('-j, --json', 'print JSON (the only output of this command)')
    .action(async (_opts: unknown, cmd: Command) => { json(await client(cmd).peers()); });

  program
    .command('add-peer')
    .description('add a peer to the Raft group (as a learner, then a voter); start its sitter with the same members first')
    .argument('<id>', 'the new peer\'s id')
    .argument('<address>', 'its Raft address, host:port')
    .option('-j, --json', 'print JSON for scripts')
    .action(async (id: string, address: string, opts: { json?: boolean }, cmd: Command) => {
      const r = await client(cmd).addPeer(id, address);
      if (opts.json === true) json(r);
      else io.out(`${r.summary} (voters: ${r.members.voters.join(', ')}; learners: ${r.members.learners.join(', ') || '-'})\n`);
    });

  program
    .command('remove-peer')
    .description('remove a peer from the Raft group (its place in the state is not touched: reap it too if it was left deposed)')
    .argument('<id>', 'the peer\'s id')
    .option('-j, --json', 'print JSON for scripts')
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
      const r = await client(cmd).removePeer(id);
      if (opts.json === true) json(r);
      else io.out(`${r.summary} (voters: ${r.members.voters.join(', ')}; learners: ${r.members.learners.join(', ') || '-'})\n`);
    });

  const changed = (r: { summary: string; version: number; state: { generation: number } }, asJson: boolean | undefined): void => {
    if (asJson === true) json(r);
    else io.out(`${r.summary} (generation ${r.state.generation}, state version ${r.version})\n`);
  };

  program
    .command('freeze')
    .description('stop all generation changes (takeover, sync replacement, promotion) until unfreeze')
    .requiredOption('-r, --reason <reason>', 'why, for the other operators (shown by status)')
    .option('-j, --json', 'print JSON for scripts')
    .action(async (opts: { reason: string; json?: boolean }, cmd: Command) => { changed(await client(cmd).freeze(opts.reason), opts.json); });

  program
    .command('unfreeze')
    .description('allow generation changes again')
    .option('-j, --json', 'print JSON for scripts')
    .action(async (opts: { json?: boolean }, cmd: Command) => { changed(await client(cmd).unfreeze(), opts.json); });

  program
    .command('promote')
    .description('planned switchover: the sync takes over as primary, or an async moves one place up')
    .requiredOption('-p, --peer <id>', 'the peer to promote (the sync or an async)')
    .addOption(
      new Option('-e, --expire <seconds>', 'how long the request stays valid')
        .argParser(positiveInt('--expire', PROMOTE_EXPIRE_MS_MAX / 1000)),
    )
    .option('--at <time>', 'a scheduled switchover: not before TIME (ISO 8601, or +30s, +10m, +2h from now); skipped, with the reason in the history, if the shard is not healthy then')
    .option('-j, --json', 'print JSON for scripts')
    .action(async (opts: { peer: string; expire?: number; at?: string; json?: boolean }, cmd: Command) => {
      if (opts.expire !== undefined && opts.expire * 1000 < PROMOTE_EXPIRE_MS_MIN) {
        throw new AdmError('MANATEE_ERR_USAGE', `--expire must be at least ${PROMOTE_EXPIRE_MS_MIN / 1000} s`);
      }
      const at = opts.at === undefined ? undefined : scheduleTime(opts.at, io.now());
      changed(await client(cmd).promote(opts.peer, opts.expire === undefined ? undefined : opts.expire * 1000, at), opts.json);
    });

  program
    .command('clear-promote')
    .description('withdraw a promotion request')
    .option('-j, --json', 'print JSON for scripts')
    .action(async (opts: { json?: boolean }, cmd: Command) => { changed(await client(cmd).clearPromote(), opts.json); });

  program
    .command('reap')
    .description('forget a deposed peer that is gone for good')
    .requiredOption('-p, --peer <id>', 'the deposed peer')
    .option('-j, --json', 'print JSON for scripts')
    .action(async (opts: { peer: string; json?: boolean }, cmd: Command) => { changed(await client(cmd).reap(opts.peer), opts.json); });

  program
    .command('rebuild')
    .description('rebuild the peer at --url: throw its data away and copy it again from its upstream')
    .option('-j, --json', 'print JSON for scripts')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const r = await client(cmd).rebuild();
      if (opts.json === true) json(r);
      else io.out(`${r.message}${r.started ? ' (follow it with manatee-adm status)' : ''}\n`);
    });

  const onwmMode = (v: string): OnwmMode => {
    if (v !== 'on' && v !== 'off' && v !== 'config') throw new InvalidArgumentError('must be "on", "off" or "config"');
    return v;
  };
  program
    .command('set-onwm')
    .description(
      "one-node-write mode by operator, overriding the peers' configured oneNodeWriteMode: on (the primary drops its sync and asyncs at the next generation " +
        'and commits alone), off (it picks a sync at the next generation once another peer is active), or config (remove the override). ' +
        "Joyent's form set-onwm -m on|off [-y] works too",
    )
    .argument('[mode]', 'on | off | config', onwmMode)
    .option('-m, --mode <mode>', 'on | off | config (as the argument)', onwmMode)
    .option('--clear', 'remove the override: each sitter follows its configuration again (same as mode config)')
    .option('-y, --yes', "accepted for Joyent's command line; manatee-adm does not ask for confirmation")
    .option('-j, --json', 'print JSON for scripts')
    .action(async (arg: OnwmMode | undefined, opts: { mode?: OnwmMode; clear?: boolean; yes?: boolean; json?: boolean }, cmd: Command) => {
      const given = [arg, opts.mode, opts.clear === true ? 'config' : undefined].filter((m): m is OnwmMode => m !== undefined);
      const mode = given[0];
      if (mode === undefined || given.some((m) => m !== mode)) {
        throw new InvalidArgumentError('set-onwm needs one mode: on, off or config (as an argument, with -m, or --clear for config)');
      }
      changed(await client(cmd).setOnwm(mode), opts.json);
    });

  addConfigCommands(program, io, client);
  addRestartCommands(program, io, client);
  addCertsCommands(program, io);

  return program;
}

export async function runAdm(argv: readonly string[], io: AdmIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return err.exitCode;
      // The usage message is commander's ("error: required option '-r, --reason <reason>' not specified").
      io.err(`manatee-adm: MANATEE_ERR_USAGE: ${err.message.replace(/^error: /, '')}\n`);
      return 1;
    }
    if (err instanceof ManateeError) {
      io.err(`manatee-adm: ${err.code}: ${err.message}\n`);
      return 1;
    }
    io.err(`manatee-adm: MANATEE_ERR_INTERNAL: ${errorMessage(err)}\n`);
    return 1;
  }
}
