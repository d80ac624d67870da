// Moved to tools/lib/wait.ts (tools share it, and tools import nothing from test/). This re-export
// keeps tests written before the move compiling; new code imports tools/lib/wait.js.
export * from '../../tools/lib/wait.js';
