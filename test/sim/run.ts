// Runs the whole-shard simulator over many seeds and prints the rate (npm run sim -- [options]).
//   --seeds N      how many seeds (default 1000)
//   --from S       the first seed (default 1)
//   --seed S       one seed, with its trace printed
//   --operator     an operator acts too (promote requests, freezes)
//   --load         a loaded machine: the primary's lease fence, stalled sitters, hung PostgreSQL servers
//   --without F,G  run with these fixes of the sitter switched off (test/sim/sitter.ts SitterFixes)
//   --help         this text
// Every failing seed is printed with the invariant it broke; the exit status is 1 if any failed,
// 2 on a bad option.
import { runShardSim } from './shard.js';
import { ALL_FIXES, FIX_NAMES, type SitterFixes } from './sitter.js';

const USAGE = `usage: npm run sim -- [options]
  --seeds N      how many seeds (default 1000)
  --from S       the first seed (default 1)
  --seed S       one seed, with its trace printed
  --operator     an operator acts too (promote requests, freezes)
  --load         a loaded machine: the primary's lease fence, stalled sitters, hung PostgreSQL servers
  --without F,G  run with these fixes of the sitter switched off, of: ${FIX_NAMES.join(', ')}
  --help         this text`;

/** Options that take a value, and flags. */
const WITH_VALUE = new Set(['--seeds', '--from', '--seed', '--without']);
const FLAGS = new Set(['--operator', '--load', '--help']);

/** Exits 2 on an option it does not know or one without its value (a typo must not run 1000 seeds as if it were not there). */
function checkArgs(args: readonly string[]): void {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (FLAGS.has(a)) continue;
    if (WITH_VALUE.has(a) && i + 1 < args.length && !args[i + 1]!.startsWith('--')) {
      i++;
      continue;
    }
    console.error(WITH_VALUE.has(a) ? `${a}: expects a value` : `unknown option ${JSON.stringify(a)}`);
    console.error(USAGE);
    process.exit(2);
  }
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function positiveInt(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) {
    console.error(`--${name}: expected a non-negative integer, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return n;
}

function fixes(): SitterFixes {
  const off = arg('without');
  if (off === undefined) return ALL_FIXES;
  const f: Record<string, boolean> = { ...ALL_FIXES };
  for (const name of off.split(',')) {
    if (!(FIX_NAMES as readonly string[]).includes(name)) {
      console.error(`--without: unknown fix ${JSON.stringify(name)}; expected some of ${FIX_NAMES.join(', ')}`);
      process.exit(2);
    }
    f[name] = false;
  }
  return f as unknown as SitterFixes;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  checkArgs(args);
  if (args.includes('--help')) {
    console.log(USAGE);
    process.exit(0);
  }
  const one = arg('seed');
  if (one !== undefined) {
    const r = await runShardSim({ seed: positiveInt('seed', one), trace: true, fixes: fixes(), operator: process.argv.includes('--operator'), load: process.argv.includes('--load') });
    console.log((r.trace ?? []).join('\n'));
    console.log(r.ok ? `seed ${r.seed}: ok` : `seed ${r.seed}: FAILED ${r.error?.message ?? ''}`);
    process.exit(r.ok ? 0 : 1);
  }
  const count = positiveInt('seeds', arg('seeds') ?? '1000');
  const from = positiveInt('from', arg('from') ?? '1');
  const failed: string[] = [];
  const started = performance.now();
  let simulatedMs = 0;
  let takeovers = 0;
  for (let k = 0; k < count; k++) {
    const r = await runShardSim({ seed: from + k, fixes: fixes(), operator: process.argv.includes('--operator'), load: process.argv.includes('--load') });
    simulatedMs += r.simulatedMs;
    takeovers += r.stats.takeovers;
    if (!r.ok) {
      failed.push(`${r.error?.message ?? r.seed}`);
      console.log(`FAILED ${r.error?.message ?? r.seed}`);
    }
    if ((k + 1) % 1000 === 0) {
      const s = (performance.now() - started) / 1000;
      console.log(`${k + 1} seeds in ${s.toFixed(1)} s: ${((k + 1) / s).toFixed(1)} seeds/s, ${failed.length} failed`);
    }
  }
  const s = (performance.now() - started) / 1000;
  console.log(`seeds ${from}..${from + count - 1}: ${count} in ${s.toFixed(1)} s = ${(count / s).toFixed(1)} seeds/s; simulated ${(simulatedMs / 1000 / s).toFixed(0)} s per second; ${takeovers} takeovers; ${failed.length} failed`);
  process.exit(failed.length === 0 ? 0 : 1);
}

void main();
