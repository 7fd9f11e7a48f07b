import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Lab suites start real daemons in namespaces; they are slow to start, not slow to run.
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Lab hosts are cheap but not free (≈190 MB each): keep parallel files modest on 2 cores.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
