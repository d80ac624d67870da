// The on-disk record format of Raft storage. Every value is
//   [4 bytes: CRC32C over (key bytes ++ payload), big-endian][payload: UTF-8 JSON]
// so that a flipped bit, a truncated value or a value moved under another key is detected.
// Entry keys are "e" + the index zero-padded to 16 digits, so LevelDB's byte order is index order.
import type { ConfState, Entry, HardState, Snapshot } from '../core/types.js';
import { crc32c } from './crc32c.js';

export const HARD_STATE_KEY = 'h';
export const SNAPSHOT_KEY = 's';
export const FORMAT_KEY = 'v';
export const ENTRY_PREFIX = 'e';
export const FORMAT_VERSION = 1;
const INDEX_DIGITS = 16;

export function entryKey(index: number): string {
  return ENTRY_PREFIX + String(index).padStart(INDEX_DIGITS, '0');
}

/** The index in an entry key, or null when the key is not a well-formed entry key. */
export function indexOfEntryKey(key: string): number | null {
  if (key.length !== 1 + INDEX_DIGITS || !key.startsWith(ENTRY_PREFIX)) return null;
  const digits = key.slice(1);
  if (!/^[0-9]+$/.test(digits)) return null;
  return Number(digits);
}


export function encodeRecord(key: string, value: unknown): Buffer {
  const payload = Buffer.from(JSON.stringify(value), 'utf8');
  const out = Buffer.allocUnsafe(4 + payload.length);
  out.writeUInt32BE(crc32c(Buffer.from(key, 'utf8'), payload), 0);
  payload.copy(out, 4);
  return out;
}

/** Decodes a record, or returns the reason it cannot be trusted. */
export function decodeRecord(key: string, value: Uint8Array): { ok: true; value: unknown } | { ok: false; reason: string } {
  if (value.length < 4) return { ok: false, reason: `record is truncated (${value.length} bytes, shorter than its checksum)` };
  const buf = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const stored = buf.readUInt32BE(0);
  const payload = buf.subarray(4);
  const actual = crc32c(Buffer.from(key, 'utf8'), payload);
  if (stored !== actual) {
    return { ok: false, reason: `checksum mismatch (stored ${hex(stored)}, computed ${hex(actual)}; the record is damaged or truncated)` };
  }
  try {
    return { ok: true, value: JSON.parse(payload.toString('utf8')) as unknown };
  } catch (err) {
    return { ok: false, reason: `checksum matches but the payload is not JSON: ${(err as Error).message}` };
  }
}

function hex(n: number): string {
  return '0x' + n.toString(16).padStart(8, '0');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isIdList(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

export function parseEntry(v: unknown): Entry | string {
  if (!isObject(v)) return 'entry is not an object';
  const { term, index, type, data } = v;
  if (!isIndex(term)) return 'entry.term is not a non-negative integer';
  if (!isIndex(index) || index < 1) return 'entry.index is not a positive integer';
  if (type !== 'normal' && type !== 'confChange') return `entry.type is ${JSON.stringify(type)}, expected normal or confChange`;
  if (typeof data !== 'string') return 'entry.data is not a string';
  return { term, index, type, data };
}

export function parseHardState(v: unknown): HardState | string {
  if (!isObject(v)) return 'hard state is not an object';
  const { term, vote, commit } = v;
  if (!isIndex(term)) return 'hardState.term is not a non-negative integer';
  if (vote !== null && typeof vote !== 'string') return 'hardState.vote is neither null nor a node id';
  if (!isIndex(commit)) return 'hardState.commit is not a non-negative integer';
  return { term, vote, commit };
}

export function parseConfState(v: unknown): ConfState | string {
  if (!isObject(v)) return 'confState is not an object';
  if (!isIdList(v['voters'])) return 'confState.voters is not a list of node ids';
  if (!isIdList(v['learners'])) return 'confState.learners is not a list of node ids';
  return { voters: v['voters'], learners: v['learners'] };
}

export function parseSnapshot(v: unknown): Snapshot | string {
  if (!isObject(v)) return 'snapshot is not an object';
  const { metadata, data } = v;
  if (!isObject(metadata)) return 'snapshot.metadata is not an object';
  if (!isIndex(metadata['index'])) return 'snapshot.metadata.index is not a non-negative integer';
  if (!isIndex(metadata['term'])) return 'snapshot.metadata.term is not a non-negative integer';
  const confState = parseConfState(metadata['confState']);
  if (typeof confState === 'string') return `snapshot.metadata.${confState}`;
  if (typeof data !== 'string') return 'snapshot.data is not a string';
  return { metadata: { index: metadata['index'], term: metadata['term'], confState }, data };
}
