/**
 * SQLite failures that are the machine's condition rather than a bug (a write lock held
 * too long, a full disk, an I/O error): the transaction rolled back, nothing was recorded,
 * and the client may retry. Everything else stays an internal error.
 */
import { ImprintError } from '../errors.js';

/** The client-facing error for a storage condition, or undefined when it is not one. */
export function storeUnavailable(error: unknown): ImprintError | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return undefined;
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new ImprintError('service_unavailable', 'the database is busy; nothing was recorded, retry shortly', { retryAfterSeconds: 1, cause: error });
  }
  if (code === 'SQLITE_FULL') {
    return new ImprintError('service_unavailable', 'the server is out of storage; nothing was recorded', { retryAfterSeconds: 60, cause: error });
  }
  if (code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN')) {
    return new ImprintError('service_unavailable', 'the server cannot write its database; nothing was recorded', { retryAfterSeconds: 30, cause: error });
  }
  return undefined;
}
