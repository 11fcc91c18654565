import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // One PostgreSQL server for the run; tests take a fresh database on it (test/helpers/postgres.ts).
    globalSetup: ['test/setup/postgres.ts'],
    // The JSON report gives CI its pass/fail counts (.ci/run reads it).
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest-results.json' },
  },
});
