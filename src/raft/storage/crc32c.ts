// CRC32C (Castagnoli), the checksum that LevelDB and etcd's WAL use for their records.
// A table-driven implementation: small, no dependency, fast enough for Raft records.

const TABLE = buildTable();

function buildTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

/** CRC32C of the concatenation of `parts`. */
export function crc32c(...parts: readonly Uint8Array[]): number {
  let crc = 0xffffffff;
  for (const buf of parts) {
    for (let i = 0; i < buf.length; i++) {
      crc = TABLE[(crc ^ buf[i]!) & 0xff]! ^ (crc >>> 8);
    }
  }
  return (crc ^ 0xffffffff) >>> 0;
}
