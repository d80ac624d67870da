// Moved to tools/lib/shard.ts (tools share it, and tools import nothing from test/). This re-export
// keeps tests written before the move compiling; new code imports tools/lib/shard.js.
export * from '../../tools/lib/shard.js';
