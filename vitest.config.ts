import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One worker process for the whole suite, without per-file module isolation: every test file
    // shares one GPU device and its pipeline cache (lavapipe compiles each pipeline through LLVM).
    pool: 'forks',
    poolOptions: { forks: { singleFork: true, isolate: false, execArgv: ['--no-concurrent-recompilation'] } },
    isolate: false,
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: [['default', { summary: false }]],
  },
});
