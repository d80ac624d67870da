// Parsers of history files into operations:
// - Jepsen's etcd register logs (`INFO  jepsen.util - <process> <type> <f> <value>`), as in Porcupine's test data;
// - Porcupine's key-value histories (one EDN map per line);
// - the register workload's own JSON lines (one completed operation per line, see registerOpJson).
// Times are line numbers in the first two (only the order matters). An operation whose completion
// is `:info` (timed out) or missing returns at +infinity: it may take effect at any time, or never.
// Lines starting with `#` are comments (hand-made histories explain themselves with them).
import { ManateeError } from '../../src/errors.js';
import type { Operation } from './model.js';
import type { KvInput, KvOutput, RegisterInput, RegisterOutput } from './models.js';

/** The history file cannot be read. */
export const ERR_LINCHECK_FILE = 'MANATEE_ERR_LINCHECK_FILE';
/** The history file's content is not a history in a known format; the message names the line and the problem. */
export const ERR_LINCHECK_FORMAT = 'MANATEE_ERR_LINCHECK_FORMAT';

export class LincheckError extends ManateeError {}

function formatError(source: string, line: number, problem: string): LincheckError {
  return new LincheckError(ERR_LINCHECK_FORMAT, `${source}:${line}: ${problem}`);
}

export type RegisterOperation = Operation<RegisterInput, RegisterOutput>;
export type KvOperation = Operation<KvInput, KvOutput>;

export type ParsedHistory =
  | { readonly format: 'jepsen-etcd' | 'register-jsonl'; readonly model: 'register'; readonly operations: RegisterOperation[] }
  | { readonly format: 'kv-edn'; readonly model: 'key-value'; readonly operations: KvOperation[] };

function contentLines(text: string): { no: number; text: string }[] {
  return text
    .split('\n')
    .map((t, i) => ({ no: i + 1, text: t.replace(/\r$/, '').trim() }))
    .filter((l) => l.text !== '' && !l.text.startsWith('#'));
}

/** Pairs invocations with completions by process, as Jepsen does: one operation in flight per process. */
class Pairing<I> {
  private readonly open = new Map<string, { no: number; input: I; f: string }>();
  constructor(private readonly source: string) {}
  invoke(no: number, process: string, f: string, input: I): void {
    const prev = this.open.get(process);
    if (prev !== undefined) throw formatError(this.source, no, `process ${process} invokes ${f} while its ${prev.f} from line ${prev.no} has not completed`);
    this.open.set(process, { no, input, f });
  }
  complete(no: number, process: string, f: string): { no: number; input: I } {
    const inv = this.open.get(process);
    if (inv === undefined) throw formatError(this.source, no, `process ${process} completes ${f} but has no operation in flight`);
    if (inv.f !== f) throw formatError(this.source, no, `process ${process} completes ${f} but invoked ${inv.f} on line ${inv.no}`);
    this.open.delete(process);
    return inv;
  }
  /** Invocations that never completed: unknown outcome. */
  pending(): { process: string; no: number; input: I }[] {
    return [...this.open].map(([process, v]) => ({ process, no: v.no, input: v.input }));
  }
}

const JEPSEN_LINE = /^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)\s+(.*)$/;

function jepsenValue(source: string, no: number, f: string, raw: string): { kind: 'nil' } | { kind: 'int'; v: number } | { kind: 'pair'; a: number; b: number } | { kind: 'timeout' } {
  const t = raw.trim();
  if (t === 'nil') return { kind: 'nil' };
  if (t === ':timed-out') return { kind: 'timeout' };
  if (/^-?\d+$/.test(t)) return { kind: 'int', v: Number(t) };
  const m = /^\[\s*(-?\d+)\s+(-?\d+)\s*\]$/.exec(t);
  if (m !== null) return { kind: 'pair', a: Number(m[1]), b: Number(m[2]) };
  throw formatError(source, no, `bad value ${JSON.stringify(t)} for :${f} (expected nil, an integer, [from to] or :timed-out)`);
}

/**
 * How `:info` (timed out) completions are read. `unknown` is right: the operation may take effect
 * at any time after its call, or never, so it returns at +infinity. The other two are known
 * mistakes, kept so that the validation can show that they change verdicts (negative controls).
 */
export type InfoReading = 'unknown' | 'mistake: drop' | 'mistake: return at the info line';

/** Jepsen etcd register logs, as in Porcupine's test_data/jepsen. */
export function parseJepsenEtcd(text: string, source = 'history', info: InfoReading = 'unknown'): RegisterOperation[] {
  const ops: RegisterOperation[] = [];
  const pairing = new Pairing<RegisterInput>(source);
  for (const { no, text: line } of contentLines(text)) {
    const m = JEPSEN_LINE.exec(line);
    if (m === null) throw formatError(source, no, `not a Jepsen log line (expected "INFO jepsen.util - <process> :invoke|:ok|:fail|:info :read|:write|:cas <value>"): ${JSON.stringify(line.slice(0, 80))}`);
    const [, process, type, f, rawValue] = m as unknown as [string, string, string, 'read' | 'write' | 'cas', string];
    const value = jepsenValue(source, no, f, rawValue);
    if (type === 'invoke') {
      let input: RegisterInput;
      if (f === 'read') input = { f };
      else if (f === 'write' && value.kind === 'int') input = { f, value: value.v };
      else if (f === 'cas' && value.kind === 'pair') input = { f, from: value.a, to: value.b };
      else throw formatError(source, no, `:invoke :${f} needs ${f === 'cas' ? '[from to]' : 'an integer'}, got ${rawValue.trim()}`);
      pairing.invoke(no, process, f, input);
      continue;
    }
    const inv = pairing.complete(no, process, f);
    let output: RegisterOutput;
    let returnMs = no;
    if (type === 'info') {
      if (info === 'mistake: drop') continue;
      output = { status: 'unknown' };
      if (info === 'unknown') returnMs = Infinity;
    } else if (type === 'fail') {
      output = f === 'read' && value.kind === 'timeout' ? { status: 'unknown' } : { status: 'fail' };
    } else if (f === 'read') {
      if (value.kind !== 'nil' && value.kind !== 'int') throw formatError(source, no, `:ok :read needs nil or an integer, got ${rawValue.trim()}`);
      output = { status: 'ok', value: value.kind === 'nil' ? null : value.v };
    } else {
      output = { status: 'ok' };
    }
    ops.push({ client: Number(process), input: inv.input, output, callMs: inv.no, returnMs });
  }
  for (const p of pairing.pending()) ops.push({ client: Number(p.process), input: p.input, output: { status: 'unknown' }, callMs: p.no, returnMs: Infinity });
  if (ops.length === 0) throw formatError(source, 1, 'no operations');
  return ops;
}

const KV_LINE = /^\{:process (\d+), :type :(invoke|ok|fail|info), :f :(get|put|append), :key "([^"\\]*)", :value (nil|"([^"\\]*)")\}$/;

/** Porcupine's key-value histories (test_data/kv): one EDN map per line. */
export function parseKvEdn(text: string, source = 'history'): KvOperation[] {
  const ops: KvOperation[] = [];
  const pairing = new Pairing<KvInput>(source);
  for (const { no, text: line } of contentLines(text)) {
    const m = KV_LINE.exec(line);
    if (m === null) throw formatError(source, no, `not a key-value history line (expected {:process N, :type :invoke|:ok|:info, :f :get|:put|:append, :key "k", :value nil|"v"}): ${JSON.stringify(line.slice(0, 80))}`);
    const [, process, type, f, key, , str] = m as unknown as [string, string, string, KvInput['f'], string, string, string | undefined];
    if (type === 'invoke') {
      if (f !== 'get' && str === undefined) throw formatError(source, no, `:invoke :${f} needs a string value`);
      pairing.invoke(no, process, f, { key, f, value: str ?? '' });
      continue;
    }
    const inv = pairing.complete(no, process, f);
    if (type === 'fail' && f !== 'get') continue; // it took no effect
    if (type === 'info' || type === 'fail') {
      ops.push({ client: Number(process), input: inv.input, output: { status: 'unknown' }, callMs: inv.no, returnMs: Infinity });
      continue;
    }
    if (f === 'get' && str === undefined) throw formatError(source, no, ':ok :get needs the string read');
    ops.push({ client: Number(process), input: inv.input, output: { status: 'ok', value: str ?? '' }, callMs: inv.no, returnMs: no });
  }
  for (const p of pairing.pending()) ops.push({ client: Number(p.process), input: p.input, output: { status: 'unknown' }, callMs: p.no, returnMs: Infinity });
  if (ops.length === 0) throw formatError(source, 1, 'no operations');
  return ops;
}

/** One line of the register workload's history: a completed operation (returnMs null when unknown). */
export interface RegisterOpJson {
  readonly client: number;
  readonly key: string;
  readonly f: 'read' | 'write' | 'cas';
  readonly value?: number | null;
  readonly from?: number;
  readonly to?: number;
  readonly status: 'ok' | 'fail' | 'unknown';
  readonly callMs: number;
  readonly returnMs: number | null;
}

export function registerOpJson(op: RegisterOperation): RegisterOpJson {
  const i = op.input;
  return {
    client: op.client,
    key: i.key ?? '',
    f: i.f,
    ...(i.f === 'write' ? { value: i.value } : i.f === 'cas' ? { from: i.from, to: i.to } : op.output.status === 'ok' ? { value: op.output.value ?? null } : {}),
    status: op.output.status,
    callMs: op.callMs,
    returnMs: Number.isFinite(op.returnMs) ? op.returnMs : null,
  };
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

/** The register workload's JSON lines (see RegisterOpJson). */
export function parseRegisterJsonl(text: string, source = 'history'): RegisterOperation[] {
  const ops: RegisterOperation[] = [];
  for (const { no, text: line } of contentLines(text)) {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch (err) {
      throw formatError(source, no, `not JSON: ${(err as Error).message}`);
    }
    const bad = (field: string, expected: string): LincheckError => formatError(source, no, `field "${field}" is ${o[field] === undefined ? 'missing' : JSON.stringify(o[field])}; expected ${expected}`);
    if (!isInt(o['client'])) throw bad('client', 'an integer');
    if (typeof o['key'] !== 'string') throw bad('key', 'a string');
    if (o['status'] !== 'ok' && o['status'] !== 'fail' && o['status'] !== 'unknown') throw bad('status', '"ok", "fail" or "unknown"');
    if (typeof o['callMs'] !== 'number') throw bad('callMs', 'a number');
    if (o['returnMs'] !== null && typeof o['returnMs'] !== 'number') throw bad('returnMs', 'a number, or null when the outcome is unknown');
    const status = o['status'];
    const returnMs = o['returnMs'] === null || status === 'unknown' ? Infinity : o['returnMs'];
    if (returnMs < o['callMs']) throw formatError(source, no, `returnMs ${returnMs} is before callMs ${o['callMs']}`);
    const key = o['key'];
    let input: RegisterInput;
    let output: RegisterOutput = status === 'ok' ? { status } : status === 'fail' ? { status } : { status };
    if (o['f'] === 'read') {
      input = { key, f: 'read' };
      if (status === 'ok') {
        if (o['value'] !== null && !isInt(o['value'])) throw bad('value', 'the integer read, or null (no value)');
        output = { status, value: o['value'] };
      }
    } else if (o['f'] === 'write') {
      if (!isInt(o['value'])) throw bad('value', 'the integer written');
      input = { key, f: 'write', value: o['value'] };
    } else if (o['f'] === 'cas') {
      if (!isInt(o['from'])) throw bad('from', 'an integer');
      if (!isInt(o['to'])) throw bad('to', 'an integer');
      input = { key, f: 'cas', from: o['from'], to: o['to'] };
    } else {
      throw bad('f', '"read", "write" or "cas"');
    }
    ops.push({ client: o['client'], input, output, callMs: o['callMs'], returnMs });
  }
  if (ops.length === 0) throw formatError(source, 1, 'no operations');
  return ops;
}

/** Recognises the format by the first line that is not a comment. */
export function parseHistory(text: string, source = 'history'): ParsedHistory {
  const first = contentLines(text)[0];
  if (first === undefined) throw formatError(source, 1, 'empty history (no operations)');
  if (first.text.startsWith('INFO')) return { format: 'jepsen-etcd', model: 'register', operations: parseJepsenEtcd(text, source) };
  if (first.text.startsWith('{:')) return { format: 'kv-edn', model: 'key-value', operations: parseKvEdn(text, source) };
  if (first.text.startsWith('{"') || first.text.startsWith('{ "')) return { format: 'register-jsonl', model: 'register', operations: parseRegisterJsonl(text, source) };
  throw formatError(source, first.no, `unknown history format: expected Jepsen log lines ("INFO jepsen.util - ..."), EDN maps ("{:process ...}") or JSON lines ("{\\"client\\": ...}"), got ${JSON.stringify(first.text.slice(0, 60))}`);
}
