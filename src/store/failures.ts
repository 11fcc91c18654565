/**
 * Storage failures that are the machine's condition rather than a bug: for SQLite a write
 * lock held too long, a full disk, an I/O error; for PostgreSQL a server that is down,
 * restarting, unreachable, out of connections or out of disk. The transaction did not
 * commit and the client may retry. Everything else stays an internal error.
 */
import { ImprintError } from '../errors.js';

/** The client-facing error for a storage condition, or undefined when it is not one. */
export function storeUnavailable(error: unknown): ImprintError | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('SQLITE_')) return sqliteUnavailable(code, error);
  return postgresUnavailable(error);
}

function sqliteUnavailable(code: string, error: unknown): ImprintError | undefined {
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return busy(error);
  if (code === 'SQLITE_FULL') return full(error);
  if (code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN')) return unwritable(error);
  return undefined;
}

/** Socket failures on the way to a database server (Node's error codes). */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * pg's own errors when a connection fails or cannot be had; the driver gives them no
 * code, only these messages (pg 8, pg-pool 3).
 */
const PG_CONNECTION_MESSAGES = [
  'Connection terminated unexpectedly',
  'Connection terminated due to connection timeout',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error and is not queryable',
];

/** A PostgreSQL server error carries a SQLSTATE (five characters) and a severity. */
function sqlstate(error: unknown): string | undefined {
  const { code, severity } = (error ?? {}) as { code?: unknown; severity?: unknown };
  return typeof code === 'string' && typeof severity === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

function postgresUnavailable(error: unknown): ImprintError | undefined {
  const state = sqlstate(error);
  if (state !== undefined) {
    // Class 08: connection exceptions. 57P01-57P03: the server is shutting down, crashed
    // or still starting. 57P05: the session idled too long.
    if (state.startsWith('08') || /^57P0[1235]$/.test(state)) return unreachable(error);
    // Too many connections, out of memory, deadlock, lock or statement timeout (57014):
    // the server is overloaded or a lock was held too long.
    if (['53300', '53200', '40P01', '40001', '55P03', '57014', '25P03'].includes(state)) return busy(error);
    if (state === '53100') return full(error);
    // A read-only server (a standby after a failover, or default_transaction_read_only).
    if (state === '25006') return unwritable(error);
    return undefined;
  }
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return unreachable(error);
  if (typeof message === 'string' && PG_CONNECTION_MESSAGES.includes(message)) return unreachable(error);
  return undefined;
}

function busy(cause: unknown): ImprintError {
  return new ImprintError('service_unavailable', 'the database is busy; nothing was recorded, retry shortly', { retryAfterSeconds: 1, cause });
}

function full(cause: unknown): ImprintError {
  return new ImprintError('service_unavailable', 'the server is out of storage; nothing was recorded', { retryAfterSeconds: 60, cause });
}

function unwritable(cause: unknown): ImprintError {
  return new ImprintError('service_unavailable', 'the server cannot write its database; nothing was recorded', { retryAfterSeconds: 30, cause });
}

/** The connection failed, maybe while committing: the retry tells (a retried enrollment gets the certificate it may have been issued). */
function unreachable(cause: unknown): ImprintError {
  return new ImprintError('service_unavailable', 'the database cannot be reached; retry shortly', { retryAfterSeconds: 5, cause });
}
