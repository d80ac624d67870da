// Half-open sockets on a port, as the probe of issue #14 opened them: they connect and never say
// a word. Each comes from one of `addresses` (loopback has all of 127.0.0.0/8), so that a test can
// tell a flood from the real peers' address. With `reopen`, a socket that the server closes is
// opened again (after a short pause, so that the flood does not take the loaded test machine's CPU).
import { connect, type Socket } from 'node:net';

export interface Flood {
  /** Sockets connected now. */
  connected(): number;
  /** Connections made so far. */
  opened(): number;
  stop(): void;
}

export function startFlood(port: number, opts: { addresses: readonly string[]; socketsPerAddress: number; reopen: boolean; reopenDelayMs?: number }): Flood {
  const sockets = new Set<Socket>();
  let connectedNow = 0;
  let openedTotal = 0;
  let stopped = false;
  const open = (localAddress: string): void => {
    if (stopped) return;
    const s = connect({ host: '127.0.0.1', port, localAddress });
    sockets.add(s);
    let wasConnected = false;
    s.on('connect', () => { wasConnected = true; connectedNow++; openedTotal++; });
    s.on('error', () => { /* 'close' follows */ });
    // Read (and drop) what the server sends, so that its close is seen and the socket reopened.
    s.resume();
    s.on('close', () => {
      sockets.delete(s);
      if (wasConnected) connectedNow--;
      if (opts.reopen && !stopped) setTimeout(() => { open(localAddress); }, opts.reopenDelayMs ?? 20).unref();
    });
  };
  for (const a of opts.addresses) for (let i = 0; i < opts.socketsPerAddress; i++) open(a);
  return {
    connected: () => connectedNow,
    opened: () => openedTotal,
    stop: () => {
      stopped = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
  };
}
