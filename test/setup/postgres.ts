/**
 * vitest globalSetup: one PostgreSQL server for the whole test run (test/setup/postgres-server.ts),
 * handed to the tests as the superuser's URL (`inject('postgresUrl')`; test/helpers/postgres.ts
 * makes a fresh database on it per store), stopped and deleted when the run ends.
 */
import type { TestProject } from 'vitest/node';
import { startPostgres } from './postgres-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The superuser's URL of the run's PostgreSQL server (its `postgres` database). */
    postgresUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startPostgres();
  project.provide('postgresUrl', server.url);
  return () => server.stop();
}
