-- imprint's PostgreSQL schema 5: a redemption costs the database less.
--
-- Redeeming a token updates its row in place (a HOT update: no new index entries, and the
-- new version stays on its page). That needs two things. No index may name a column the
-- redemption sets (used_at, used_by_device, csr_sha256, serial), predicates included: the
-- two partial indexes on `used_at IS NULL` are replaced by ones on `revoked_at IS NULL`,
-- which still serve their queries (the few used tokens left in them are filtered out). And
-- the page needs room for the new version, which is about twice the size of a fresh row:
-- pages are filled to 45% when tokens are minted. This applies to tokens minted from now on.
ALTER TABLE tokens SET (fillfactor = 45);

DROP INDEX tokens_waiting_bound;
-- An id bound to a token still waiting for its device is reserved for that device.
CREATE INDEX tokens_bound ON tokens (device_id) WHERE device_id IS NOT NULL AND revoked_at IS NULL;
DROP INDEX tokens_unused_by_creator;
-- Revoking an operator revokes the unused tokens it minted that have not expired: the used
-- ones it holds too are only those minted within one token lifetime, not every one ever.
CREATE INDEX tokens_unrevoked_by_creator ON tokens (created_by, expires_at) WHERE revoked_at IS NULL;

-- 0003's call, leaner. The audit events come as a parameter of their own (`events`, the
-- columns of audit_events, one per item in the items' order), so the items' JSON is read
-- once, not three times over. The token is redeemed by a conditional UPDATE, first, as
-- 0003's SELECT ... FOR UPDATE was (it waits for a writer that took no writer lock and
-- re-checks the row once that one committed), without locking the row a step before; a
-- redemption refused by a later check is undone before the next item. Outcomes, and what is
-- inserted, are as 0003's. 0003's function stays for instances still running the code
-- that calls it, until they are upgraded.
CREATE FUNCTION imprint_redeem_batch_audited(items json, events json) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
  r record;
  outcomes text[] := '{}';
  conflict text;
  -- How many items from the first redeemed, none in conflict: their events are inserted.
  chained integer := 0;
  conflicted boolean := false;
BEGIN
  FOR r IN SELECT * FROM json_to_recordset(items) AS i(
             token_id text, now bigint, csr_sha256 text, unbound boolean, via text, label text,
             serial text, kind text, subject text, device_id text, spki_sha256 text, not_before bigint,
             not_after bigint, issued_at bigint, cert_token_id text, der text, renewed_from text, cert_csr_sha256 text)
  LOOP
    conflict := NULL;
    UPDATE tokens SET used_at = r.now, used_by_device = r.device_id, csr_sha256 = r.csr_sha256, serial = r.serial
      WHERE id = r.token_id AND used_at IS NULL AND revoked_at IS NULL AND expires_at > r.now;
    IF NOT FOUND THEN
      conflict := 'token_unavailable';
    -- A key is never certified again once it was on another device, on an operator, or on
    -- any certificate revoked for keyCompromise (redemption.ts: keyTaken).
    ELSIF EXISTS (SELECT 1 FROM certificates WHERE spki_sha256 = r.spki_sha256
                    AND (device_id IS NULL OR device_id <> r.device_id OR revocation_reason = 'keyCompromise')) THEN
      conflict := 'key_reused';
    -- An id bound to a token still waiting for its device is that device's: an unbound
    -- token may not take it first.
    ELSIF r.unbound AND EXISTS (SELECT 1 FROM tokens WHERE device_id = r.device_id AND used_at IS NULL
                                  AND revoked_at IS NULL AND expires_at > r.now) THEN
      conflict := 'device_exists';
    ELSIF EXISTS (SELECT 1 FROM devices WHERE id = r.device_id) THEN
      conflict := 'device_exists';
    END IF;
    IF conflict IS NULL THEN
      INSERT INTO devices (id, status, enrolled_at, updated_at, current_serial, enrolled_via, enrollment_label)
        VALUES (r.device_id, 'active', r.now, r.now, r.serial, r.via, r.label);
      INSERT INTO certificates (serial, kind, subject, device_id, spki_sha256, not_before, not_after,
                                issued_at, status, token_id, der, renewed_from, csr_sha256)
        VALUES (r.serial, r.kind, r.subject, r.device_id, r.spki_sha256, r.not_before, r.not_after,
                r.issued_at, 'active', r.cert_token_id, decode(r.der, 'base64'), r.renewed_from, r.cert_csr_sha256);
      IF NOT conflicted THEN
        chained := chained + 1;
      END IF;
    ELSE
      -- The token was unused (the UPDATE's condition), so these columns were empty.
      IF conflict <> 'token_unavailable' THEN
        UPDATE tokens SET used_at = NULL, used_by_device = NULL, csr_sha256 = NULL, serial = NULL WHERE id = r.token_id;
      END IF;
      conflicted := true;
    END IF;
    outcomes := outcomes || conflict;
  END LOOP;
  -- One statement for the events, in the items' order: ids are taken as the sorted rows are
  -- inserted, so id order is chain order.
  INSERT INTO audit_events (at, actor, action, outcome, source, token_id, device_id, serial, detail, prev_hash, hash)
    SELECT e.at, e.actor, e.action, e.outcome, e.source, e.token_id, e.device_id, e.serial, e.detail, e.prev_hash, e.hash
    FROM ROWS FROM (json_to_recordset(events) AS (at bigint, actor text, action text, outcome text, source text, token_id text,
                                                  device_id text, serial text, detail text, prev_hash text, hash text))
         WITH ORDINALITY AS e(at, actor, action, outcome, source, token_id, device_id, serial, detail, prev_hash, hash, n)
    WHERE e.n <= chained
    ORDER BY e.n;
  RETURN outcomes;
EXCEPTION WHEN OTHERS THEN
  -- The block's subtransaction rolled back everything above: the caller redeems each alone.
  RETURN NULL;
END
$$;

-- A write transaction's first statement (src/store/postgres/transaction.ts): takes the writer
-- lock (keys given by the caller, locks.ts), then reads the audit chain's last hash. One
-- call whose plan each session keeps, where two statements were parsed and planned anew
-- for every transaction.
CREATE FUNCTION imprint_writer_head(namespace integer, lock integer) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(namespace, lock);
  RETURN (SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1);
END
$$;
