// A transport endpoint as its own process (run inside a network namespace by
// test/raft/transport-partition.test.ts). Usage: node --import tsx transport-peer-main.ts '<json>'
// with {id, peer, listenHost, listenPort, peerAddress, secret}. It sends a heartbeat to `peer`
// every 50 ms (term = a counter), answers every message from `peer` with an echo of its term
// (as a `heartbeatResp` with that term), and writes its transport log (pino JSON) on stderr.
// As the Raft node does, it runs the transport's keepalive check from its own 50 ms timer, every
// 4th beat (keepaliveClock 'caller'); the other end, in the test, keeps the transport's timer.
import { pino } from 'pino';
import { TcpTransport } from '../../src/raft/transport/index.js';

interface Cfg { id: string; peer: string; listenHost: string; listenPort: number; peerAddress: string; secret: string }

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as Cfg;
  const logger = pino({ level: 'info' }, process.stderr);
  const t: TcpTransport = new TcpTransport({
    id: cfg.id, secret: cfg.secret, listen: { host: cfg.listenHost, port: cfg.listenPort },
    peers: { [cfg.peer]: cfg.peerAddress }, logger, keepaliveClock: 'caller',
    handlers: {
      onMessages: (ms) => {
        for (const m of ms) if (m.type === 'heartbeat') t.send([{ type: 'heartbeatResp', from: cfg.id, to: cfg.peer, term: m.term }]);
      },
    },
  });
  await t.start();
  let n = 0;
  setInterval(() => {
    if (++n % 4 === 0) t.keepaliveTick();
    t.send([{ type: 'heartbeat', from: cfg.id, to: cfg.peer, term: n, commit: 0 }]);
  }, 50);
  process.stdout.write('ready\n');
}

void main();
