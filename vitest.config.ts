import { defineConfig } from 'vitest/config';

// Tests with real processes (PostgreSQL, zfs-fuse, Raft nodes) wait for conditions with
// generous deadlines, so the per-test timeout is large. Two workers match the 2-core machines.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // A failing test keeps its shard's logs (test/helpers/keep-on-failure.ts).
    setupFiles: ['test/helpers/keep-on-failure.ts'],
    pool: 'forks',
    poolOptions: { forks: { minForks: 1, maxForks: 2 } },
    testTimeout: 180_000,
    hookTimeout: 180_000,
    reporters: ['default'],
  },
});
