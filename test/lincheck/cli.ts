// npm run lincheck -- <history-file> [--budget-ms N] [--svg file]: is a history linearizable?
// Reads Jepsen etcd logs, Porcupine key-value histories, or the register workload's JSON lines
// (the format is recognised). Prints the verdict, the time it took and, for a violation, a minimal
// sub-history that cannot be ordered, also drawn as an SVG picture.
// Exit codes: 0 linearizable, 1 not linearizable, 3 unknown (budget ran out), 2 bad input.
import { Command, InvalidArgumentError } from 'commander';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManateeError } from '../../src/errors.js';
import { checkHistory, pictureOf, summaryLines } from './history-check.js';
import { ERR_LINCHECK_FILE, LincheckError, parseHistory } from './parse.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function main(argv: readonly string[]): number {
  const program = new Command()
    .name('npm run lincheck --')
    .description('Checks a history for linearizability (register, key-value)')
    .argument('<history-file>', 'a Jepsen etcd log, a Porcupine key-value history, or register JSON lines')
    .option('--budget-ms <ms>', 'time budget of the search; past it the verdict is unknown', positiveInt, 60_000)
    .option('--svg <file>', 'where to draw the violation (default results/lincheck/<name>.svg)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    return (err as { exitCode?: number }).exitCode === 0 ? 0 : 2;
  }
  const file = program.args[0]!;
  const o = program.opts<{ budgetMs: number; svg?: string }>();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new LincheckError(ERR_LINCHECK_FILE, `cannot read history file ${file}: ${(err as Error).message}`);
  }
  const history = parseHistory(text, basename(file));
  const report = checkHistory(history, { timeBudgetMs: o.budgetMs });
  for (const line of summaryLines(history, report)) process.stdout.write(`${line}\n`);
  if (report.counterexample !== null) {
    const svg = o.svg ?? join(REPO_ROOT, 'results', 'lincheck', `${basename(file)}.svg`);
    mkdirSync(dirname(resolve(svg)), { recursive: true });
    writeFileSync(svg, pictureOf(history, report, basename(file)));
    process.stdout.write(`picture: ${svg}\n`);
  }
  return report.verdict === 'linearizable' ? 0 : report.verdict === 'not linearizable' ? 1 : 3;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (err) {
  if (err instanceof ManateeError) {
    process.stderr.write(`lincheck: ${err.code}: ${err.message}\n`);
    process.exitCode = 2;
  } else {
    throw err;
  }
}
