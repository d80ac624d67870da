// Scenario transcripts for the rules, in the style of etcd's datadriven tests: a file is a list
// of blocks, each a command, a "----" line, and the output that the command must print, up to
// a blank line. Lines starting with "#" are comments. Run with UPDATE_TRANSCRIPTS=1 to rewrite
// the expected outputs from what the rules do now (then read the diff).
//
// Commands (peers are named by id; options are key=value):
//   add <id>... [data] [onwm] [manualRebuild]   open sessions (new peers start with PostgreSQL online at 0/0)
//   rm <id>...                                  end sessions
//   bootstrap <primary> <sync> [<async>...]     write generation 1 directly
//   catchup <id>                                the peer replays everything its primary wrote
//   pg <id> [online=true|false] [replay=LSN|null] [current=LSN|null]
//   config <id> [onwm=true|false] [autoRebuild=true|false]
//   rebuild <id>                                its data was rebuilt from the current primary
//   freeze [reason...] | unfreeze
//   promote id=<id> role=<role> [index=<n>] [gen=<n>] [expireIn=<ms>]
//   time +<ms>                                  the clock moves on
//   decide <id>                                 one evaluation, not applied: kind, role, upstream, reason
//   settle                                      all active peers evaluate until none writes: the writes, then the state
//   state                                       the cluster state
import { readFileSync, writeFileSync } from 'node:fs';
import type { PromoteRequest } from '../../src/model/index.js';
import { Shard } from './shard-sim.js';

interface Block {
  readonly command: string;
  readonly expected: string;
  /** Comment lines before the command, kept when rewriting. */
  readonly comments: readonly string[];
}

function parse(text: string): Block[] {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  let comments: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.trim() === '' && comments.length === 0) {
      i++;
      continue;
    }
    if (line.startsWith('#') || line.trim() === '') {
      comments.push(line);
      i++;
      continue;
    }
    const command = line.trim();
    if (lines[i + 1] !== '----') throw new Error(`line ${i + 2}: expected "----" after the command ${JSON.stringify(command)}`);
    i += 2;
    const out: string[] = [];
    while (i < lines.length && lines[i]!.trim() !== '') out.push(lines[i++]!);
    blocks.push({ command, expected: out.join('\n'), comments });
    comments = [];
  }
  return blocks;
}

function options(args: readonly string[]): Map<string, string> {
  return new Map(args.filter((a) => a.includes('=')).map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
}

function stateLine(shard: Shard): string {
  const s = shard.state;
  if (s === null) return 'state: none';
  const ids = (ps: readonly { id: string }[]): string => `[${ps.map((p) => p.id).join(' ')}]`;
  const extra = [
    s.oneNodeWriteMode === true ? ' onwm' : '',
    s.freeze !== undefined ? ` frozen(${s.freeze.reason})` : '',
    s.promote !== undefined ? ` promote(${s.promote.id} ${s.promote.role})` : '',
  ].join('');
  return `state: gen ${s.generation} primary ${s.primary.id} sync ${s.sync?.id ?? '-'} async ${ids(s.async)} deposed ${ids(s.deposed)} initWal ${s.initWal}${extra}`;
}

function nullableLsn(v: string | undefined): string | null | undefined {
  return v === undefined ? undefined : v === 'null' ? null : v;
}

function run(shard: Shard, command: string): string {
  const [verb = '', ...args] = command.split(/\s+/);
  const opts = options(args);
  const words = args.filter((a) => !a.includes('='));
  switch (verb) {
    case 'add':
      for (const id of words.filter((w) => !['data', 'onwm', 'manualRebuild'].includes(w))) {
        shard.addPeer(id, {
          pg: words.includes('data') ? { hasPreviousData: true } : {},
          config: { ...(words.includes('onwm') ? { oneNodeWriteMode: true } : {}), ...(words.includes('manualRebuild') ? { autoRebuild: false } : {}) },
        });
      }
      return 'ok';
    case 'rm':
      for (const id of words) shard.rmPeer(id);
      return 'ok';
    case 'bootstrap':
      shard.bootstrap(words[0]!, words[1]!, words.slice(2));
      return stateLine(shard);
    case 'catchup':
      shard.catchUp(words[0]!);
      return `${words[0]!}: replay ${shard.peer(words[0]!).pg.replayLsn ?? 'null'}`;
    case 'pg': {
      const online = opts.get('online');
      const replay = nullableLsn(opts.get('replay'));
      const current = nullableLsn(opts.get('current'));
      shard.setPg(words[0]!, {
        ...(online === undefined ? {} : { online: online === 'true' }),
        ...(replay === undefined ? {} : { replayLsn: replay }),
        ...(current === undefined ? {} : { currentLsn: current }),
      });
      return 'ok';
    }
    case 'config': {
      const onwm = opts.get('onwm');
      const auto = opts.get('autoRebuild');
      shard.setConfig(words[0]!, {
        ...(onwm === undefined ? {} : { oneNodeWriteMode: onwm === 'true' }),
        ...(auto === undefined ? {} : { autoRebuild: auto === 'true' }),
      });
      return 'ok';
    }
    case 'rebuild':
      shard.rebuild(words[0]!);
      return 'ok';
    case 'freeze':
      shard.freeze(words.join(' ') || 'frozen by test');
      return stateLine(shard);
    case 'unfreeze':
      shard.unfreeze();
      return stateLine(shard);
    case 'promote': {
      const index = opts.get('index');
      const gen = opts.get('gen');
      const expireIn = opts.get('expireIn');
      shard.promote({
        id: opts.get('id') ?? '',
        role: (opts.get('role') ?? '') as PromoteRequest['role'],
        generation: gen === undefined ? shard.mustState().generation : Number(gen),
        ...(index === undefined ? {} : { asyncIndex: Number(index) }),
        ...(expireIn === undefined ? {} : { expireInMs: Number(expireIn) }),
      });
      return stateLine(shard);
    }
    case 'time':
      shard.nowMs += Number(words[0]!.replace('+', ''));
      return `now ${new Date(shard.nowMs).toISOString()}`;
    case 'decide': {
      const d = shard.decide(words[0]!);
      const from = d.upstream === null ? '' : ` from ${d.upstream.id}`;
      const rebuild = d.needsRebuild ? ' (needs rebuild)' : '';
      return `${words[0]!}: ${d.kind}, role ${d.role}${from}${rebuild}: ${d.reason}`;
    }
    case 'settle': {
      const start = shard.writes.length;
      shard.settle();
      const writes = shard.writes.slice(start).map((w) => `${w.peer}: ${w.kind}: ${w.summary}`);
      return [...(writes.length === 0 ? ['no writes'] : writes), stateLine(shard)].join('\n');
    }
    case 'state':
      return stateLine(shard);
    default:
      throw new Error(`unknown command ${JSON.stringify(verb)}`);
  }
}

/**
 * Run a transcript file. Returns the mismatches (empty when it passes); with rewrite, writes
 * the actual outputs back into the file instead.
 */
export function runTranscript(path: string, rewrite: boolean): { command: string; expected: string; actual: string }[] {
  const blocks = parse(readFileSync(path, 'utf8'));
  const shard = new Shard();
  const mismatches: { command: string; expected: string; actual: string }[] = [];
  const out: string[] = [];
  for (const b of blocks) {
    let actual: string;
    try {
      actual = run(shard, b.command);
    } catch (err) {
      actual = `error: ${err instanceof Error ? err.message.split('\n')[0]! : String(err)}`;
    }
    if (actual !== b.expected) mismatches.push({ command: b.command, expected: b.expected, actual });
    out.push([...b.comments, b.command, '----', actual, ''].join('\n'));
  }
  if (rewrite) writeFileSync(path, out.join('\n'));
  return rewrite ? [] : mismatches;
}
