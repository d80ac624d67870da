// A flood of half-open sockets: TCP connections that send nothing (no TLS ClientHello, no Raft
// hello, no HTTP request), held open for as long as the flood runs, from one or several source
// addresses (on loopback, any of 127.0.0.0/8: an attacker elsewhere on the network, not on a
// peer's own address). A socket that the server
// closes (evicted, timed out, or the server is down) is opened again after a short pause, so
// that the server sees `count` of them at all times, as it would from an attacker. stop()
// closes every socket and waits until they are all gone, even after a failed test.
import { connect, type Socket } from 'node:net';

export interface FloodStats {
  /** Sockets connected (TCP handshake done) since the start. */
  connected: number;
  /** Sockets that the server closed or reset. */
  closedByServer: number;
  /** Connection attempts that failed (the port closed: the server is down). */
  failedConnects: number;
  /** Sockets connected now. */
  open: number;
}

/**
 * Pauses before a closed socket is opened again, so that a server that evicts at once (Raft) or a
 * closed port does not turn the flood into a busy loop that starves a shared, loaded test machine.
 */
const REOPEN_AFTER_CLOSE_MS = 3000;
const REOPEN_AFTER_FAILURE_MS = 100;

export class HalfOpenFlood {
  readonly stats: FloodStats = { connected: 0, closedByServer: 0, failedConnects: 0, open: 0 };
  private running = false;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    readonly port: number,
    readonly count: number,
    /** Source addresses, used in turn (socket i binds to localAddresses[i % length]). */
    readonly localAddresses: readonly string[] = ['127.0.0.1'],
    readonly host = '127.0.0.1',
  ) {}

  start(): void {
    this.running = true;
    for (let i = 0; i < this.count; i++) this.open(this.localAddresses[i % this.localAddresses.length] ?? '127.0.0.1');
  }

  private open(localAddress: string): void {
    if (!this.running) return;
    let connected = false;
    const s = connect({ port: this.port, host: this.host, localAddress });
    this.sockets.add(s);
    s.setNoDelay(true);
    s.on('connect', () => {
      connected = true;
      this.stats.connected++;
      this.stats.open++;
    });
    // Whatever the server sends (a TLS alert, a Raft challenge) is read and ignored.
    s.on('data', () => undefined);
    s.on('error', () => undefined);
    s.on('close', () => {
      this.sockets.delete(s);
      if (connected) {
        this.stats.open--;
        if (this.running) this.stats.closedByServer++;
      } else if (this.running) {
        this.stats.failedConnects++;
      }
      if (!this.running) return;
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.open(localAddress);
      }, connected ? REOPEN_AFTER_CLOSE_MS : REOPEN_AFTER_FAILURE_MS);
      this.timers.add(t);
    });
  }

  /** Waits until at least `n` sockets are connected at once. */
  async waitOpen(n: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.stats.open < n) {
      if (Date.now() > deadline) throw new Error(`flood on port ${this.port}: ${this.stats.open} of ${n} sockets open after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Closes every socket and waits until they are closed. */
  async stop(): Promise<void> {
    this.running = false;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const closing = [...this.sockets].map((s) => new Promise<void>((r) => {
      if (s.destroyed && s.closed) {
        r();
        return;
      }
      s.once('close', () => { r(); });
      s.destroy();
    }));
    await Promise.all(closing);
  }
}
