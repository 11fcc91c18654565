import { defineConfig } from 'vitest/config';

/** The suites that drive whole servers: run a second time with every server on PostgreSQL. */
const ON_POSTGRES = ['http', 'interop', 'hostile', 'crash', 'console'].map((suite) => `test/${suite}/**/*.test.ts`);

/**
 * IMPRINT_TEST_POSTGRES_PROJECT=off leaves that second run out (~3 min of wall time on 2
 * cores): CI runs it on one of its two Node versions only.
 */
const withPostgres = process.env.IMPRINT_TEST_POSTGRES_PROJECT !== 'off';

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // One PostgreSQL server per project for the run; tests take a fresh database on it (test/helpers/postgres.ts).
    globalSetup: ['test/setup/postgres.ts'],
    // The JSON report gives CI its pass/fail counts (.ci/run reads it), both projects' tests.
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest-results.json' },
    // A test's name in a report starts with its project's: the store its servers ran on,
    // which test/helpers/database.ts reads from IMPRINT_TEST_STORE.
    projects: [
      { extends: true, test: { name: 'sqlite', include: ['test/**/*.test.ts'], env: { IMPRINT_TEST_STORE: 'sqlite' } } },
      ...(withPostgres ? [{ extends: true as const, test: { name: 'postgres', include: ON_POSTGRES, env: { IMPRINT_TEST_STORE: 'postgres' } } }] : []),
    ],
  },
});
