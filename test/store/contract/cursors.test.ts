/**
 * Store contract, listing cursors: every paged listing takes back only the cursors it
 * handed out itself. A made-up, edited, other listing's or other database's cursor is an
 * InvalidCursorError, never a position the client chose.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidCursorError, type Page } from '../../../src/enrollment/model.js';
import type { Store } from '../../../src/store/store.js';
import { at, enroll, useStores } from './harness.js';
import { STORES } from './stores.js';

/** Each paged listing, asked for one item a page. */
const LISTINGS: Record<string, (store: Store, cursor: string | undefined) => Promise<Page<unknown>>> = {
  listTokens: (store, cursor) => store.listTokens({ limit: 1, cursor, now: at(0) }),
  listDevices: (store, cursor) => store.listDevices({ limit: 1, cursor }),
  listCertificates: (store, cursor) => store.listCertificates({ limit: 1, cursor }),
  'browseDevices by enrollment': (store, cursor) => store.browseDevices({ sort: 'enrolled', limit: 1, cursor }),
  'browseDevices by expiry': (store, cursor) => store.browseDevices({ sort: 'expiry', limit: 1, cursor }),
  pageAudit: (store, cursor) => store.pageAudit({ limit: 1, cursor }),
  browseAudit: (store, cursor) => store.browseAudit({ limit: 1, cursor }),
};

/** The cursor of each listing's first page. */
async function firstCursors(store: Store): Promise<Record<string, string>> {
  const cursors: Record<string, string> = {};
  for (const [name, list] of Object.entries(LISTINGS)) {
    const { nextCursor } = await list(store, undefined);
    if (nextCursor === null) throw new Error(`${name} handed out no cursor`);
    cursors[name] = nextCursor;
  }
  return cursors;
}

/** `cursor` with one character in its middle changed. */
function edited(cursor: string): string {
  const i = Math.floor(cursor.length / 2);
  return `${cursor.slice(0, i)}${cursor[i] === 'A' ? 'B' : 'A'}${cursor.slice(i + 1)}`;
}

describe.each(STORES)('$name store: listing cursors', (backend) => {
  const stores = useStores(backend);
  /** A second database: its cursors are made under another key. */
  let other: Store | undefined;
  let own: Record<string, string> = {};
  let foreign: Record<string, string> = {};
  beforeAll(async () => {
    other = await backend.open();
    for (const store of [stores.shared(), other]) for (let i = 0; i < 3; i++) await enroll(store);
    own = await firstCursors(stores.shared());
    foreign = await firstCursors(other);
  });
  afterAll(() => other?.close());

  const names = Object.keys(LISTINGS);
  it.each(names)('%s takes back its own cursor and refuses any other', async (name) => {
    const store = stores.shared();
    const list = LISTINGS[name]!;
    expect((await list(store, own[name])).items).toHaveLength(1);
    const forged = {
      'made up': 'garbage',
      empty: '',
      'made up, of the right length': 'A'.repeat(34),
      edited: edited(own[name]!),
      "another database's": foreign[name]!,
      "another listing's": own[names[(names.indexOf(name) + 1) % names.length]!]!,
    };
    for (const [kind, cursor] of Object.entries(forged)) {
      await expect(list(store, cursor), kind).rejects.toBeInstanceOf(InvalidCursorError);
    }
  });
});
