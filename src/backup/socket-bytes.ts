// Byte counts of a TCP connection as the kernel keeps them (tcp_info's bytes_received and
// bytes_acked), read with `ss` from iproute2. A stream that zfs writes or reads straight on a
// socket passes through no Node code that could count it; this is where its progress comes from.
import type { Socket } from 'node:net';
import { execa } from 'execa';

export interface SocketBytes {
  /** Bytes the peer acknowledged (this side's sent bytes that arrived; a FIN, once acknowledged, adds one). */
  readonly acked: number;
  /** Bytes this side received. */
  readonly received: number;
}

function endpoint(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Parses the info line of `ss -tin` for one connection; null when it has no byte counts (kernel < 4.1). */
export function parseSsBytes(text: string): SocketBytes | null {
  const acked = /\bbytes_acked:(\d+)/.exec(text);
  const received = /\bbytes_received:(\d+)/.exec(text);
  if (acked === null && received === null) return null;
  // bytes_acked counts the SYN too (one sequence number): the data is one less.
  return { acked: acked === null ? 0 : Math.max(0, Number(acked[1]) - 1), received: received === null ? 0 : Number(received[1]) };
}

/**
 * The kernel's byte counts of this socket's connection; null when they cannot be read (no `ss`,
 * the connection is gone, an old kernel). Never throws.
 */
export async function socketBytes(socket: SocketEnds, ssPath = 'ss'): Promise<SocketBytes | null> {
  const { localAddress, localPort, remoteAddress, remotePort } = socket;
  if (localAddress === undefined || localPort === undefined || remoteAddress === undefined || remotePort === undefined) return null;
  try {
    const r = await execa(ssPath, ['-tinH', 'state', 'all', 'src', endpoint(localAddress, localPort), 'dst', endpoint(remoteAddress, remotePort)], {
      reject: false, timeout: 10_000, stdin: 'ignore', maxBuffer: 1024 * 1024,
    });
    if (r.failed) return null;
    return parseSsBytes(r.stdout);
  } catch {
    return null;
  }
}

/** A connection's two ends (a net.Socket is one; copy them before it is destroyed, when they go). */
export interface SocketEnds {
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
}

export function socketEnds(socket: Socket): SocketEnds {
  const { localAddress, localPort, remoteAddress, remotePort } = socket;
  return { localAddress, localPort, remoteAddress, remotePort };
}
