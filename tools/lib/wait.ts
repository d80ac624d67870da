// Waiting for conditions in tests with real processes: poll with a generous deadline,
// never a fixed sleep. A timeout names what was awaited and the last error seen.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const intervalMs = opts.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== null && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const tail = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${tail}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * The lowest port of the kernel's ephemeral range (outgoing connections take their local ports
 * from it), 32768 when it cannot be read.
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 12_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

const FREE_PORT_LOW = 10_000;
const handedOut = new Set<number>();

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => { resolve(false); });
    srv.listen(port, '127.0.0.1', () => { srv.close(() => { resolve(true); }); });
  });
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago. It is drawn at random below the ephemeral
 * range: a port that the OS hands out for listen(0) is also one it hands out to the next outgoing
 * connection, which then holds it when the test's server starts (EADDRINUSE on a loaded machine).
 * A port is never handed out twice by one process.
 */
export async function freePort(): Promise<number> {
  const high = ephemeralLow();
  for (let attempt = 0; attempt < 500; attempt++) {
    const port = FREE_PORT_LOW + Math.floor(Math.random() * (high - FREE_PORT_LOW));
    if (handedOut.has(port)) continue;
    if (await canListen(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free TCP port on 127.0.0.1 between ${FREE_PORT_LOW} and ${high} after 500 tries`);
}
