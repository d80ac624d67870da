// Moved to tools/lib/zfs-pool.ts (tools share it, and tools import nothing from test/). This re-export
// keeps tests written before the move compiling; new code imports tools/lib/zfs-pool.js.
export * from '../../tools/lib/zfs-pool.js';
