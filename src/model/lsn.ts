// PostgreSQL WAL positions ("LSN"). PostgreSQL prints them as two hex numbers "X/Y": the high
// and low 32 bits of a 64-bit byte position. We compare and subtract them as bigint, because a
// 64-bit position does not fit in a JavaScript number.
import { ManateeError } from '../errors.js';

/** A PostgreSQL WAL position as PostgreSQL prints it: two hex numbers, "0/16B3748". */
export type Lsn = string;

/** The code of a malformed LSN (kept from the postgres room, where it was first defined). */
export const ERR_LSN_MALFORMED = 'MANATEE_ERR_PG_LSN_MALFORMED';

const LSN_RE = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** The smallest position, as Manatee's cluster state writes it before any WAL exists. */
export const LSN_ZERO: Lsn = '0/0';

export function isLsn(value: unknown): value is Lsn {
  return typeof value === 'string' && LSN_RE.test(value);
}

/** "16/B374D848" -> 0x16B374D848n. Throws MANATEE_ERR_PG_LSN_MALFORMED. */
export function parseLsn(text: string): bigint {
  const m = LSN_RE.exec(text);
  if (m === null) {
    throw new ManateeError(ERR_LSN_MALFORMED, `malformed LSN ${JSON.stringify(text)}: expected two hex numbers of at most 8 digits, "X/Y"`);
  }
  return (BigInt(`0x${m[1]!}`) << 32n) | BigInt(`0x${m[2]!}`);
}

/** 0x16B374D848n -> "16/B374D848" (upper case, as PostgreSQL prints it). */
export function formatLsn(pos: bigint): Lsn {
  if (pos < 0n || pos > 0xffffffffffffffffn) {
    throw new ManateeError(ERR_LSN_MALFORMED, `LSN position ${pos} is outside 0 .. 2^64-1`);
  }
  const hi = pos >> 32n;
  const lo = pos & 0xffffffffn;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

/** -1, 0 or 1, as for Array.prototype.sort. */
export function compareLsn(a: Lsn, b: Lsn): -1 | 0 | 1 {
  const x = parseLsn(a);
  const y = parseLsn(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** a - b in bytes (negative when a is behind b). */
export function lsnDiffBytes(a: Lsn, b: Lsn): bigint {
  return parseLsn(a) - parseLsn(b);
}

export function lsnAtLeast(a: Lsn, b: Lsn): boolean {
  return parseLsn(a) >= parseLsn(b);
}
