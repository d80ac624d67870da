// Length-prefixed frames on a TCP stream: [u32 BE length of the rest][u8 kind][payload].
// The decoder checks the length against a limit before buffering anything, so a peer cannot
// make the node allocate an unbounded buffer.
import { ManateeError } from '../../errors.js';

export const FRAME_CHALLENGE = 1; // server -> client: a random nonce
export const FRAME_HELLO = 2; // client -> server: {from, to, mac}
export const FRAME_MESSAGES = 3; // client -> server: a JSON array of Raft messages
export const FRAME_PING = 4; // either way, after the hello, empty: "this connection is alive"

const HEADER_BYTES = 4;

export interface Frame {
  readonly kind: number;
  readonly payload: Buffer;
}

export function encodeFrame(kind: number, payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const out = Buffer.allocUnsafe(HEADER_BYTES + 1 + body.length);
  out.writeUInt32BE(1 + body.length, 0);
  out.writeUInt8(kind, HEADER_BYTES);
  body.copy(out, HEADER_BYTES + 1);
  return out;
}

export class FrameTooLargeError extends ManateeError {
  constructor(readonly sizeBytes: number, readonly maxFrameBytes: number) {
    super('MANATEE_ERR_RAFT_FRAME_TOO_LARGE', `frame of ${sizeBytes} bytes exceeds maxFrameBytes ${maxFrameBytes}`);
  }
}

/** Splits a byte stream into frames. Chunks are kept in a list and joined once per frame. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;

  /** The limit applies to frames not yet extracted; it may be raised after authentication. */
  constructor(public maxFrameBytes: number) {}

  /** Feeds bytes; extract frames with next(). */
  append(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
  }

  /** The next complete frame, or null. Throws FrameTooLargeError or MANATEE_ERR_RAFT_FRAME_EMPTY. */
  next(): Frame | null {
    if (this.bufferedBytes < HEADER_BYTES) return null;
    const head = this.peek(HEADER_BYTES);
    const len = head.readUInt32BE(0);
    if (len > this.maxFrameBytes) throw new FrameTooLargeError(len, this.maxFrameBytes);
    if (len === 0) throw new ManateeError('MANATEE_ERR_RAFT_FRAME_EMPTY', 'empty frame (length 0)');
    if (this.bufferedBytes < HEADER_BYTES + len) return null;
    const all = this.take(HEADER_BYTES + len);
    return { kind: all.readUInt8(HEADER_BYTES), payload: all.subarray(HEADER_BYTES + 1) };
  }

  /** Feeds bytes and returns all complete frames. */
  push(chunk: Buffer): Frame[] {
    this.append(chunk);
    const frames: Frame[] = [];
    for (let f = this.next(); f !== null; f = this.next()) frames.push(f);
    return frames;
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first;
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined;
  }

  private take(n: number): Buffer {
    let joined = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = joined.subarray(0, n);
    joined = joined.subarray(n);
    this.chunks = joined.length > 0 ? [joined] : [];
    this.bufferedBytes -= n;
    return out;
  }
}
