// A Raft node as its own OS process, for the real-process tests and tools/bench/raft.ts.
// Usage: node --import tsx tools/lib/raft-node-main.ts '<json config>'
// It serves a tiny HTTP interface on <host>:<httpPort> (host 127.0.0.1 unless the config names one):
//   POST /propose  (body: the command)  -> 200 {result} | 503 {code, message}
//   GET  /read                           -> linearizable read: 200 {count, chain}
//   GET  /status                         -> the node's status
//   GET  /applied                        -> every applied command in order (mode "list")
//   GET  /register?key=K                 -> mode "register": linearizable read (ReadIndex, on any node) of register K: 200 {value}
//   GET  /trace                          -> with MANATEE_RAFT_TRACE=1 in its environment: the steps recorded since the
//                                           last call, [step, index, monotonic microseconds][] (RaftNode's trace, plus httpIn
//                                           and httpOut around a proposal), then forgets them (tools/bench/raft-steps.ts)
// In mode "register" the commands are JSON: {"f":"write","key","value"} -> {ok: true};
// {"f":"cas","key","from","to"} -> {ok: <the register held from>} (see RegisterMachine).
// In mode "store" the node runs the cluster store (src/store: ClusterStateMachine, ClusterStore on raftConsensus):
//   POST /state  (body: {"expectVersion": N}) -> compare-and-set of a fixed valid state: 200 {version} | 409 {code, currentVersion}
//   GET  /state                          -> linearizable read (readState): 200 {version}
// A start-up failure (e.g. corrupt storage) is printed on stderr as "<code>: <message>" and the
// process exits with status 2.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { RaftNode } from '../../src/raft/node.js';
import type { AppliedEntry, StateMachine } from '../../src/raft/state-machine.js';
import { createLogger } from '../../src/log.js';
import { crc32c } from '../../src/raft/storage/crc32c.js';
import type { ProcNodeConfig } from './raft-cluster.js';
import { ClusterStateMachine } from '../../src/store/state-machine.js';
import { ClusterStore } from '../../src/store/store.js';
import { raftConsensus } from '../../src/store/raft-consensus.js';
import { VersionMismatchError } from '../../src/store/errors.js';
import type { ClusterState, PeerInfo } from '../../src/model/index.js';

/** The cluster store's machine, with the count the status route reports (its version). */
class StoreMachine implements StateMachine {
  readonly machine = new ClusterStateMachine();
  get count(): number {
    return this.machine.version;
  }
  readonly chain = 0;
  apply(e: AppliedEntry): unknown {
    return this.machine.apply(e);
  }
  snapshot(): string {
    return this.machine.snapshot();
  }
  restore(data: string): void {
    this.machine.restore(data);
  }
}

function storePeer(id: string, n: number): PeerInfo {
  return { id, pgUrl: `postgres://postgres@127.0.0.1:${5400 + n}/postgres`, apiUrl: `http://127.0.0.1:${5500 + n}`, host: '127.0.0.1' };
}

/** A valid generation-1 state; its async list alternates so that each write changes it. */
function storeState(expectVersion: number): ClusterState {
  return { generation: 1, primary: storePeer('a', 1), sync: storePeer('b', 2), async: expectVersion % 2 === 0 ? [storePeer('c', 3)] : [], deposed: [], initWal: '0/0' };
}

/** Applied commands in order, a count, and a CRC chain over them (equal chains = equal sequences). */
class RecordingMachine implements StateMachine {
  items: string[] = [];
  count = 0;
  chain = 0;
  constructor(private readonly keepItems: boolean) {}
  apply(e: AppliedEntry): unknown {
    this.count++;
    this.chain = crc32c(Buffer.from(`${this.chain}:${e.data}`));
    if (this.keepItems) this.items.push(e.data);
    return { count: this.count, index: e.index };
  }
  snapshot(): string {
    return JSON.stringify({ items: this.items, count: this.count, chain: this.chain });
  }
  restore(data: string): void {
    const v = JSON.parse(data) as { items: string[]; count: number; chain: number };
    this.items = v.items;
    this.count = v.count;
    this.chain = v.chain;
  }
}

/**
 * Integer registers by key, for the linearizability checker (test/lincheck/raft-register.test.ts).
 * A missing register is null; a compare-and-set applies only when the register holds `from`.
 */
class RegisterMachine implements StateMachine {
  registers = new Map<string, number>();
  count = 0;
  chain = 0;
  apply(e: AppliedEntry): unknown {
    this.count++;
    this.chain = crc32c(Buffer.from(`${this.chain}:${e.data}`));
    let c: { f?: unknown; key?: unknown; value?: unknown; from?: unknown; to?: unknown };
    try {
      c = JSON.parse(e.data) as typeof c;
    } catch {
      return { ok: false, error: 'not JSON' };
    }
    if (typeof c.key !== 'string') return { ok: false, error: 'no key' };
    if (c.f === 'write' && typeof c.value === 'number') {
      this.registers.set(c.key, c.value);
      return { ok: true };
    }
    if (c.f === 'cas' && typeof c.from === 'number' && typeof c.to === 'number') {
      if (this.registers.get(c.key) !== c.from) return { ok: false };
      this.registers.set(c.key, c.to);
      return { ok: true };
    }
    return { ok: false, error: 'unknown command' };
  }
  snapshot(): string {
    return JSON.stringify({ registers: [...this.registers], count: this.count, chain: this.chain });
  }
  restore(data: string): void {
    const v = JSON.parse(data) as { registers: [string, number][]; count: number; chain: number };
    this.registers = new Map(v.registers);
    this.count = v.count;
    this.chain = v.chain;
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function failure(err: unknown): { code: string; message: string } {
  const e = err as { code?: unknown; message?: unknown };
  return { code: typeof e.code === 'string' ? e.code : 'ERROR', message: String(e.message ?? err) };
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as ProcNodeConfig;
  const logger = createLogger({ destination: cfg.logFile, name: `raft-${cfg.id}` });
  const registers = cfg.mode === 'register' ? new RegisterMachine() : null;
  const storeMachine = cfg.mode === 'store' ? new StoreMachine() : null;
  const sm = registers ?? storeMachine ?? new RecordingMachine((cfg.mode ?? 'list') === 'list');
  // Steps of each write, when traced: [step, log index, microseconds of the monotonic clock (one for every process)].
  let steps: [string, number, number][] | null = process.env['MANATEE_RAFT_TRACE'] === '1' ? [] : null;
  const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
  const trace = steps === null ? undefined : (step: string, index: number): void => { steps?.push([step, index, nowUs()]); };
  let node: RaftNode;
  try {
    node = await RaftNode.open({
      id: cfg.id, dataDir: cfg.dataDir, peers: cfg.peers, secret: cfg.secret,
      ...(cfg.initialVoters ? { initialVoters: cfg.initialVoters } : {}),
      listen: { host: cfg.host ?? '127.0.0.1', port: cfg.raftPort }, stateMachine: sm, logger,
      tickMs: cfg.tickMs ?? 50, electionTicks: cfg.electionTicks ?? 10, heartbeatTicks: cfg.heartbeatTicks ?? 1,
      snapshotEveryEntries: cfg.snapshotEveryEntries ?? 10_000, keepEntriesAfterSnapshot: cfg.keepEntriesAfterSnapshot ?? 1000,
      ...(trace !== undefined ? { trace } : {}),
    });
    await node.start();
  } catch (err) {
    const f = failure(err);
    process.stderr.write(`raft node ${cfg.id} failed to start: ${f.code}: ${f.message}\n`);
    process.exit(2);
  }

  const store = storeMachine === null ? null : new ClusterStore({ machine: storeMachine.machine, consensus: raftConsensus(node), sessionTimeoutMs: 3000, log: logger });
  const server = createServer((req, res) => {
    void (async () => {
      try {
        if (req.method === 'POST' && req.url === '/propose') {
          const inUs = steps === null ? 0 : nowUs();
          const result = await node.propose(await body(req));
          const index = (result as { index?: unknown } | null)?.index;
          if (trace !== undefined && typeof index === 'number') {
            steps?.push(['httpIn', index, inUs]);
            trace('httpOut', index);
          }
          reply(res, 200, { result });
        } else if (req.url === '/trace') {
          reply(res, 200, steps ?? []);
          if (steps !== null) steps = [];
        } else if (req.url === '/read') {
          await node.read();
          reply(res, 200, { count: sm.count, chain: sm.chain });
        } else if (req.url === '/status') {
          reply(res, 200, { ...node.status(), count: sm.count, chain: sm.chain });
        } else if (req.url === '/applied') {
          reply(res, 200, { items: sm instanceof RecordingMachine ? sm.items : [], count: sm.count, chain: sm.chain });
        } else if (store !== null && req.url === '/state') {
          if (req.method === 'POST') {
            const { expectVersion } = JSON.parse(await body(req)) as { expectVersion: number };
            try {
              reply(res, 200, await store.putState(storeState(expectVersion), expectVersion));
            } catch (err) {
              if (!(err instanceof VersionMismatchError)) throw err;
              reply(res, 409, { code: err.code, currentVersion: err.currentVersion });
            }
          } else {
            reply(res, 200, { version: (await store.readState()).version });
          }
        } else if (registers !== null && req.url?.startsWith('/register?') === true) {
          const key = new URL(req.url, 'http://x').searchParams.get('key') ?? '';
          await node.read();
          reply(res, 200, { value: registers.registers.get(key) ?? null });
        } else {
          reply(res, 404, { code: 'NOT_FOUND', message: req.url ?? '' });
        }
      } catch (err) {
        reply(res, 503, failure(err));
      }
    })();
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(cfg.httpPort, cfg.host ?? '127.0.0.1', resolve));

  const shutdown = (): void => {
    void node.stop().finally(() => {
      server.close();
      process.exit(0);
    });
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

void main();
