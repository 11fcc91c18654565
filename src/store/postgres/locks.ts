/**
 * The advisory locks imprint takes on a PostgreSQL database (two-key form: imprint's
 * namespace, then which lock), so several instances on one database act as one store.
 *
 * WRITER: every write transaction takes it (pg_advisory_xact_lock) as its first statement
 * and holds it to its commit, so write transactions from every instance run one at a time,
 * as SQLite's BEGIN IMMEDIATE makes them. That is what the audit hash chain needs anyway
 * (read the last hash, insert the next; ids taken under the lock are in chain order), and
 * nearly every write appends to the chain. It also serialises the checks that span rows:
 * a key on two devices at once (key_reused), an unbound token taking an id a bound token
 * reserves, a renewal limit, a device inserted twice. Finer locks (per key, per device id)
 * would buy no concurrency, as each of those transactions then waits for this lock to
 * append its audit event; and since this lock comes first, a writer never holds a row
 * lock while it waits for it, so writers cannot deadlock on each other. And every row a
 * listing pages through is inserted under it, so its position (`pos`, an audit id) is
 * taken in commit order: a cursor never passes a row that commits later. Group commit
 * (group-commit.ts) makes the serialised unit a batch of writes, not one.
 *
 * MIGRATION: a session lock held while migrating, so instances starting at once migrate
 * one after the other (the later ones find nothing left to do).
 */

/** 'impr': imprint's advisory lock namespace, the first key of each lock. */
export const LOCK_NAMESPACE = 0x696d7072;

/** The second key of each lock. */
export const LOCK = { writer: 1, migration: 2 } as const;
