/** What the fleet commands share: choosing local or remote, listing flags and printing pages. */
import type { Config } from '../../config.js';
import { MAX_PAGE_SIZE } from '../../enrollment/paging.js';
import { int, JSON_OPTION, optional, REMOTE_OPTIONS, str, type Options, type Output, type Values } from '../command.js';
import type { FleetClient } from '../fleet-client.js';
import { table } from '../table.js';

/** --server and its credentials, on every fleet command. */
export const FLEET_OPTIONS: Options = REMOTE_OPTIONS;

/** Paging and --json, on every listing. */
export const LIST_OPTIONS: Options = {
  limit: { type: 'string', placeholder: 'N', help: `items per page (1-${MAX_PAGE_SIZE})`, defaultText: '100' },
  cursor: { type: 'string', placeholder: 'CURSOR', help: 'the next page, as printed by the previous one' },
  ...JSON_OPTION,
};

/**
 * The fleet client the configuration asks for: the server's API with --server, else the
 * data directory. Each is loaded only when chosen: the local one brings the store and the CA.
 */
export async function openFleet(config: Config): Promise<FleetClient> {
  if (config.remote) return new (await import('../remote-fleet-client.js')).RemoteFleetClient(config.remote);
  return (await import('../fleet-client.js')).LocalFleetClient.open(config);
}

/** Runs `body` with a fleet client, closing it afterwards. */
export async function withFleet<T>(config: Config, body: (fleet: FleetClient) => Promise<T>): Promise<T> {
  const fleet = await openFleet(config);
  try {
    return await body(fleet);
  } finally {
    await fleet.close();
  }
}

/** --limit and --cursor. */
export function pageQuery(values: Values): { limit?: number; cursor?: string } {
  return { ...optional('limit', int(values, 'limit', 1, MAX_PAGE_SIZE)), ...optional('cursor', str(values.cursor)) };
}

/** Prints a listing as a table (stdout) with the next cursor on stderr, or as JSON. */
export function printPage<T>(
  out: Output,
  values: Values,
  page: { items: T[]; nextCursor: string | null },
  headers: readonly string[],
  row: (item: T) => (string | null | undefined)[],
): void {
  if (values.json) return out.stdout(JSON.stringify(page, null, 2));
  out.stdout(table(headers, page.items.map(row)));
  if (page.nextCursor) out.stderr(`more: --cursor ${page.nextCursor}`);
}
