/** Limits and cursors of listing requests, checked the same way for every listing. */
import { ImprintError } from '../errors.js';
import { InvalidCursorError, type Page } from './model.js';

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

/** The page size, defaulted and bounded. */
export function checkLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw new ImprintError('bad_request', `limit must be between 1 and ${MAX_PAGE_SIZE}`);
  }
  return limit;
}

/** Runs a listing; a cursor the store did not hand out is a bad request, not a silent first page. */
export async function listPage<T>(listing: Promise<Page<T>>): Promise<Page<T>> {
  try {
    return await listing;
  } catch (error) {
    if (error instanceof InvalidCursorError) throw new ImprintError('bad_request', 'cursor is not one this server handed out');
    throw error;
  }
}
