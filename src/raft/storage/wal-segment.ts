// The Raft log's segment files (format 2): append-only files of checksummed records, written with
// write + fdatasync on the calling thread (no thread-pool hop, no LevelDB batch on the path of a
// proposal). One record per save, so that a save is all there or not at all after a crash.
//
// A segment is `<dir>/wal/<seq, 16 digits>.log`. A record is
//   [4 bytes: payload length, LE][4 bytes: CRC32C over (the segment's seq as 8 bytes BE ++ payload), LE][payload: UTF-8 JSON]
// so that a flipped bit, a cut record or a record copied from another segment is detected.
// Every segment begins with a header record ({seg: seq, h: the hard state at its start}), so that
// deleting older segments never loses the hard state.
import type { Entry, HardState } from '../core/types.js';
import { crc32c } from './crc32c.js';
import { parseEntry, parseHardState } from './records.js';

export const WAL_DIR = 'wal';
const SEQ_DIGITS = 16;
const HEADER_BYTES = 8;
/** A record larger than this is taken as a damaged length field. */
export const RECORD_BYTES_MAX = 256 * 1024 * 1024;
/** The smallest payload ever written ("{}"). */
const RECORD_BYTES_MIN = 2;

/** What one record holds; every field is optional, and they apply in this order: reset, h, e. */
export interface WalRecord {
  /** Present in a segment's first record only: the segment's sequence number. */
  readonly seg?: number;
  /** The log was replaced by a snapshot at this index and term: every entry before this record is void. */
  readonly reset?: { readonly index: number; readonly term: number };
  readonly h?: HardState;
  readonly e?: readonly Entry[];
}

export function segmentName(seq: number): string {
  return String(seq).padStart(SEQ_DIGITS, '0') + '.log';
}

/** The sequence number in a segment's file name, or null when the name is not a segment's. */
export function seqOfSegmentName(name: string): number | null {
  const m = /^([0-9]{16})\.log$/.exec(name);
  return m === null ? null : Number(m[1]);
}

function seqBytes(seq: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(seq), 0);
  return b;
}

export function encodeWalRecord(seq: number, rec: WalRecord): Buffer {
  const payload = Buffer.from(JSON.stringify(rec), 'utf8');
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out.writeUInt32LE(crc32c(seqBytes(seq), payload), 4);
  payload.copy(out, HEADER_BYTES);
  return out;
}

/**
 * One record read back: where it starts, and its content or why it cannot be trusted. `torn` says
 * that the damage looks like a write cut by a crash: the record runs past the end of the file, or
 * a sector-aligned piece of it is all zeros (a page that never reached the disk), as etcd's WAL
 * decides. Anything else (a flipped bit in a complete record) is damage, wherever it is.
 */
export type ScannedRecord =
  | { readonly ok: true; readonly offset: number; readonly end: number; readonly rec: WalRecord }
  | { readonly ok: false; readonly offset: number; readonly reason: string; readonly torn: boolean };

const SECTOR_BYTES = 512;

/** True when some piece of buf[from, to), split at sector boundaries of the file, is all zeros. */
function hasZeroSector(buf: Buffer, from: number, to: number): boolean {
  let start = from;
  while (start < to) {
    const end = Math.min(to, (Math.floor(start / SECTOR_BYTES) + 1) * SECTOR_BYTES);
    let zero = true;
    for (let i = start; i < end; i++) {
      if (buf[i] !== 0) {
        zero = false;
        break;
      }
    }
    if (zero) return true;
    start = end;
  }
  return false;
}

/** Checks the framing and checksum of the record at `offset`; null when it is sound. */
function frameProblem(buf: Buffer, offset: number, seqB: Buffer): { reason: string; torn: boolean } | null {
  if (buf.length - offset < HEADER_BYTES) return { reason: `record header is cut short (${buf.length - offset} bytes)`, torn: true };
  const len = buf.readUInt32LE(offset);
  if (len < RECORD_BYTES_MIN || len > RECORD_BYTES_MAX) return { reason: `record length ${len} is impossible`, torn: hasZeroSector(buf, offset, Math.min(buf.length, offset + HEADER_BYTES)) };
  const end = offset + HEADER_BYTES + len;
  if (end > buf.length) return { reason: `record of ${len} bytes is cut short at the end of the file`, torn: true };
  const stored = buf.readUInt32LE(offset + 4);
  const actual = crc32c(seqB, buf.subarray(offset + HEADER_BYTES, end));
  if (stored !== actual) {
    return { reason: `checksum mismatch (stored 0x${stored.toString(16).padStart(8, '0')}, computed 0x${actual.toString(16).padStart(8, '0')})`, torn: hasZeroSector(buf, offset, end) };
  }
  return null;
}

function parsePayload(v: unknown): WalRecord | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'record is not an object';
  const o = v as Record<string, unknown>;
  const out: { seg?: number; reset?: { index: number; term: number }; h?: HardState; e?: Entry[] } = {};
  for (const k of Object.keys(o)) if (!['seg', 'reset', 'h', 'e'].includes(k)) return `record has an unknown field ${JSON.stringify(k)}`;
  if (o['seg'] !== undefined) {
    if (typeof o['seg'] !== 'number' || !Number.isSafeInteger(o['seg']) || o['seg'] < 1) return 'record.seg is not a positive integer';
    out.seg = o['seg'];
  }
  if (o['reset'] !== undefined) {
    const r = o['reset'] as Record<string, unknown> | null;
    if (typeof r !== 'object' || r === null || !Number.isSafeInteger(r['index']) || !Number.isSafeInteger(r['term'])) return 'record.reset is not {index, term}';
    out.reset = { index: r['index'] as number, term: r['term'] as number };
  }
  if (o['h'] !== undefined) {
    const h = parseHardState(o['h']);
    if (typeof h === 'string') return h;
    out.h = h;
  }
  if (o['e'] !== undefined) {
    if (!Array.isArray(o['e'])) return 'record.e is not a list of entries';
    const es: Entry[] = [];
    for (const raw of o['e'] as unknown[]) {
      const e = parseEntry(raw);
      if (typeof e === 'string') return e;
      const prev = es[es.length - 1];
      if (prev !== undefined && e.index !== prev.index + 1) return `entries in one record are not consecutive (${prev.index} then ${e.index})`;
      es.push(e);
    }
    out.e = es;
  }
  return out;
}

/**
 * Reads every record of a segment's bytes, in order, up to the first one that cannot be trusted
 * (then the last item is that failure and nothing after it is read).
 */
export function scanSegment(buf: Buffer, seq: number): ScannedRecord[] {
  const seqB = seqBytes(seq);
  const out: ScannedRecord[] = [];
  let offset = 0;
  while (offset < buf.length) {
    const problem = frameProblem(buf, offset, seqB);
    if (problem !== null) {
      out.push({ ok: false, offset, ...problem });
      return out;
    }
    const len = buf.readUInt32LE(offset);
    const end = offset + HEADER_BYTES + len;
    let parsed: WalRecord | string;
    try {
      parsed = parsePayload(JSON.parse(buf.subarray(offset + HEADER_BYTES, end).toString('utf8')) as unknown);
    } catch (err) {
      parsed = `checksum matches but the payload is not JSON: ${(err as Error).message}`;
    }
    if (typeof parsed === 'string') {
      out.push({ ok: false, offset, reason: parsed, torn: false });
      return out;
    }
    out.push({ ok: true, offset, end, rec: parsed });
    offset = end;
  }
  return out;
}

/**
 * True when a sound record starts anywhere after `from`: then the damage at `from` is not a torn
 * tail (a write cut by a crash leaves nothing sound behind it, since records are only appended)
 * but damage in the middle of the log.
 */
export function soundRecordAfter(buf: Buffer, from: number, seq: number): boolean {
  const seqB = seqBytes(seq);
  for (let o = from + 1; o + HEADER_BYTES + RECORD_BYTES_MIN <= buf.length; o++) {
    const len = buf.readUInt32LE(o);
    if (len < RECORD_BYTES_MIN || len > RECORD_BYTES_MAX || o + HEADER_BYTES + len > buf.length) continue;
    if (frameProblem(buf, o, seqB) === null) return true;
  }
  return false;
}
