/**
 * The tests' PostgreSQL server: the one the benchmark starts too (scripts/postgres-server.ts),
 * so both run on one start path.
 */
export { postgresBinDir, startPostgres, type PostgresServer } from '../../scripts/postgres-server.js';
