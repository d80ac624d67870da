// Transcript tests in the style of etcd's raft/testdata (datadriven): each file in
// test/raft/scenarios/ is a script of commands, each followed by `----` and the output it must
// produce (the messages delivered, role changes, applied entries). They read as documentation of
// what the core does step by step. RAFT_SCENARIO_REWRITE=1 rewrites the expected outputs (review the diff!).
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { ProposalDroppedError, type ConfChange } from '../../src/raft/core/index.js';
import { SimCluster } from './sim/cluster.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'scenarios');
const REWRITE = process.env['RAFT_SCENARIO_REWRITE'] === '1';

interface Block {
  readonly command: string;
  readonly expected: string;
  /** Lines of comments and blank lines before the command, kept when rewriting. */
  readonly preamble: string;
}

function parse(text: string): Block[] {
  const blocks: Block[] = [];
  const lines = text.split('\n');
  let k = 0;
  while (k < lines.length) {
    const pre: string[] = [];
    while (k < lines.length && (lines[k]!.trim() === '' || lines[k]!.startsWith('#'))) pre.push(lines[k++]!);
    if (k >= lines.length) break;
    const command = lines[k++]!;
    if (lines[k] !== '----') throw new Error(`expected ---- after "${command}" at line ${k + 1}`);
    k++;
    const out: string[] = [];
    while (k < lines.length && lines[k]!.trim() !== '') out.push(lines[k++]!);
    blocks.push({ command, expected: out.join('\n'), preamble: pre.join('\n') });
  }
  return blocks;
}

/** Runs one command against the cluster and returns its output (trace lines since the last command, plus any result). */
function run(state: { c: SimCluster | null; traced: number }, command: string): string {
  const [verb, ...args] = command.trim().split(/\s+/);
  const out: string[] = [];
  const kv = new Map(args.filter((a) => a.includes('=')).map((a) => a.split('=') as [string, string]));
  const c = (): SimCluster => {
    if (state.c === null) throw new Error('no cluster: start with "cluster ids=..."');
    return state.c;
  };
  switch (verb) {
    case 'cluster': {
      const ids = (kv.get('ids') ?? 'a,b,c').split(',');
      state.c = new SimCluster({
        seed: Number(kv.get('seed') ?? 1),
        ids,
        trace: true,
        raft: {
          preVote: kv.get('preVote') !== 'false',
          checkQuorum: kv.get('checkQuorum') !== 'false',
          ...(kv.has('maxEntriesPerMessage') ? { maxEntriesPerMessage: Number(kv.get('maxEntriesPerMessage')) } : {}),
          ...(kv.has('deferCommitBroadcast') ? { deferCommitBroadcast: kv.get('deferCommitBroadcast') === 'true' } : {}),
        },
      });
      break;
    }
    case 'campaign':
      c().core(args[0]!).campaign();
      c().processReady(c().node(args[0]!), true);
      break;
    case 'stabilize':
      c().settle();
      break;
    case 'tick': {
      const n = Number(args[1] ?? 1);
      if (args[0] === 'all') c().ticks(n);
      else c().tickNode(args[0]!, n);
      break;
    }
    case 'propose':
      try {
        c().core(args[0]!).propose(args[1]!);
        c().processReady(c().node(args[0]!), true);
      } catch (err) {
        if (!(err instanceof ProposalDroppedError)) throw err;
        out.push(`error: ${err.code} (${err.reason})`);
      }
      break;
    case 'conf-change': {
      const cc = { type: args[1], nodeId: args[2] } as ConfChange;
      if (cc.type === 'addLearner') c().addNode(cc.nodeId);
      try {
        c().proposeConfChange(args[0]!, cc);
      } catch (err) {
        if (!(err instanceof Error) || !('code' in err)) throw err;
        out.push(`error: ${String(err.code)}`);
      }
      break;
    }
    case 'read': {
      const ctx = c().readIndex(args[0]!);
      out.push(ctx === null ? 'read dropped' : `read ${ctx} started`);
      break;
    }
    case 'broadcast-commit':
      c().core(args[0]!).broadcastCommit();
      c().processReady(c().node(args[0]!), true);
      break;
    case 'transfer':
      c().transferLeadership(args[0]!, args[1]!);
      break;
    case 'crash':
      c().crash(args[0]!);
      break;
    case 'refused':
      // refused <node> <gone>: <node>'s driver reports its dial to <gone> refused
      c().reportRefused(args[0]!, args[1]!);
      break;
    case 'campaign-soon':
      c().campaignSoon(args[0]!);
      break;
    case 'restart':
      c().restart(args[0]!);
      break;
    case 'isolate':
      c().isolate(args[0]!);
      break;
    case 'heal':
      c().heal();
      break;
    case 'compact':
      c().compact(args[0]!);
      break;
    case 'status':
      break;
    case 'values':
      for (const id of args) out.push(`${id}: [${c().values(id).join(' ')}]`);
      break;
    default:
      throw new Error(`unknown command "${command}"`);
  }
  const trace = state.c?.trace ?? [];
  const lines = trace.slice(state.traced).map((l) => l.replace(/^\[\d+\] /, ''));
  state.traced = trace.length;
  if (verb === 'status') {
    for (const part of c().describe().split('; ')) lines.push(part);
  }
  const all = [...lines, ...out];
  return all.length === 0 ? 'ok' : all.join('\n');
}

const files = readdirSync(DIR).filter((f) => f.endsWith('.txt')).sort();

describe('transcripts (test/raft/scenarios)', () => {
  for (const file of files) {
    test(file.replace(/\.txt$/, '').replace(/-/g, ' '), () => {
      const path = join(DIR, file);
      const blocks = parse(readFileSync(path, 'utf8'));
      const state = { c: null as SimCluster | null, traced: 0 };
      const rewritten: string[] = [];
      for (const b of blocks) {
        const actual = run(state, b.command);
        if (REWRITE) {
          rewritten.push(`${b.preamble === '' ? '' : `${b.preamble}\n`}${b.command}\n----\n${actual}\n`);
        } else {
          expect(actual, `${file}: ${b.command}`).toBe(b.expected);
        }
      }
      if (REWRITE) writeFileSync(path, rewritten.join('\n').replace(/\n{3,}/g, '\n\n'));
    });
  }
});
