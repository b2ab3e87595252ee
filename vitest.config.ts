import {defineConfig} from 'vitest/config'

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'src/**/*.test.tsx', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Cross-process tests start real workers and UCX agents; two cores: keep files from piling up.
    maxWorkers: 2,
    fileParallelism: true,
    reporters: ['default'],
  },
})
