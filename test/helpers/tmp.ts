// Moved to tools/lib/tmp.ts (tools share it, and tools import nothing from test/). This re-export
// keeps tests written before the move compiling; new code imports tools/lib/tmp.js.
export * from '../../tools/lib/tmp.js';
