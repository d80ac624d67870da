// manatee-adm's commands (commander). runAdm() parses, runs one command, and returns the exit
// status: 0 on success, 1 on any error, printed as "manatee-adm: <CODE>: <message>".
import { hostname, userInfo } from 'node:os';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ManateeError } from '../../errors.js';
import { PROMOTE_EXPIRE_MS_MAX, PROMOTE_EXPIRE_MS_MIN } from '../../peer/admin.js';
import type { SitterStatus } from '../../peer/status.js';
import { AdmClient, AdmError } from './client.js';
import { buildShardView, peersInOrder, renderHistory, renderStatus, type PeerStatusResult } from './render.js';

export const DEFAULT_URL = 'http://127.0.0.1:5433';
const TIMEOUT_S_DEFAULT = 10;
/** Each other peer's /status gets this long: a dead peer must not hold the whole table. */
const PEER_TIMEOUT_MS = 3_000;
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
  timeout: number;
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

/** The other peers' statuses, asked in parallel, each with its own short deadline. */
async function otherStatuses(asked: SitterStatus): Promise<Map<string, PeerStatusResult>> {
  const others = peersInOrder(asked.state, asked.activePeers).filter((p) => p.id !== asked.peer.id);
  const results = await Promise.all(
    others.map(async (p): Promise<[string, PeerStatusResult]> => {
      try {
        const status = await new AdmClient({ url: p.apiUrl, timeoutMs: PEER_TIMEOUT_MS }).status();
        return [p.id, { ok: true, status }];
      } catch (err) {
        return [p.id, { ok: false, error: err instanceof Error ? err.message : String(err) }];
      }
    }),
  );
  return new Map(results);
}

function buildProgram(io: AdmIo): Command {
  const program = new Command('manatee-adm');
  program
    .description("Inspect and administer a Manatee shard through any peer's HTTP API")
    .addOption(new Option('-u, --url <url>', `a peer's API, or several separated by commas, tried in turn (env MANATEE_URL, default ${DEFAULT_URL})`))
    .addOption(new Option('-t, --token <token>', 'the admin token, for changes (env MANATEE_ADMIN_TOKEN)'))
    .addOption(new Option('--timeout <seconds>', 'how long to wait for the API').argParser(positiveInt('--timeout', 600)).default(TIMEOUT_S_DEFAULT))
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err, outputError: () => undefined });

  const client = (cmd: Command): AdmClient => {
    const g = cmd.optsWithGlobals<GlobalOptions>();
    const token = g.token ?? io.env['MANATEE_ADMIN_TOKEN'];
    return new AdmClient({
      url: g.url ?? io.env['MANATEE_URL'] ?? DEFAULT_URL,
      timeoutMs: g.timeout * 1000,
      operator: operatorName(),
      ...(token === undefined ? {} : { token }),
    });
  };
  const json = (v: unknown): void => { io.out(`${JSON.stringify(v, null, 2)}\n`); };

  program
    .command('status')
    .alias('show')
    .description("the shard: each peer's role, PostgreSQL health, writability and lag; generation, freeze, last decisions")
    .option('-j, --json', 'print JSON for scripts')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const asked = await client(cmd).status();
      const view = buildShardView(asked, await otherStatuses(asked));
      if (opts.json === true) json(view);
      else io.out(`${renderStatus(view, io.now())}\n`);
    });

  program
    .command('history')
    .description('the cluster state changes, oldest first, with their summaries')
    .option('-j, --json', 'print JSON for scripts')
    .addOption(new Option('-n, --limit <count>', 'the newest COUNT changes').argParser(positiveInt('--limit', HISTORY_LIMIT_MAX)).default(100))
    .action(async (opts: { json?: boolean; limit: number }, cmd: Command) => {
      const entries = await client(cmd).history(opts.limit);
      if (opts.json === true) json(entries);
      else io.out(`${renderHistory(entries)}\n`);
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
    .option('-j, --json', 'print JSON for scripts')
    .action(async (opts: { peer: string; expire?: number; json?: boolean }, cmd: Command) => {
      if (opts.expire !== undefined && opts.expire * 1000 < PROMOTE_EXPIRE_MS_MIN) {
        throw new AdmError('MANATEE_ERR_USAGE', `--expire must be at least ${PROMOTE_EXPIRE_MS_MIN / 1000} s`);
      }
      changed(await client(cmd).promote(opts.peer, opts.expire === undefined ? undefined : opts.expire * 1000), opts.json);
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

  program
    .command('set-onwm')
    .description('turn one-node-write mode on or off in the cluster state')
    .argument('<mode>', 'on | off', (v: string) => {
      if (v !== 'on' && v !== 'off') throw new InvalidArgumentError('must be "on" or "off"');
      return v;
    })
    .option('-j, --json', 'print JSON for scripts')
    .action(async (mode: 'on' | 'off', opts: { json?: boolean }, cmd: Command) => {
      changed(await client(cmd).setOnwm(mode === 'on'), opts.json);
    });

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
    io.err(`manatee-adm: MANATEE_ERR_INTERNAL: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
