-- imprint's PostgreSQL schema 3: a group-committed batch of enrollments records their audit
-- events in the same call (src/store/postgres/redemption.ts), and a statement of it that
-- fails rolls back the call alone. A batch of enrollments is then BEGIN, this call and
-- COMMIT: the savepoint around 0002's call and the audit INSERT before COMMIT were two more
-- round trips. 0002's function goes: an instance still running the code that calls it
-- redeems each enrollment alone (its fallback when the call fails), until it is upgraded.
--
-- items: as 0002's, each with `audit`, its audit event as the columns of audit_events, hashed
-- by the caller into the chain on the assumption that every item before it redeems. The
-- events of the items up to the first conflict are inserted, in order; after one, the chain
-- the caller computed no longer holds, and the caller appends the remaining events itself.
-- Returns one outcome per item as 0002 does; NULL when a statement failed (not a conflict: a
-- serial already taken), in which case nothing was written.
DROP FUNCTION imprint_redeem_batch(json);

CREATE FUNCTION imprint_redeem_batch_audited(items json) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
  r record;
  outcomes text[] := '{}';
  -- How many items from the first redeemed, none in conflict: their events are inserted.
  chained integer := 0;
  conflicted boolean := false;
BEGIN
  FOR r IN SELECT * FROM json_to_recordset(items) AS i(
             token_id text, now bigint, csr_sha256 text, unbound boolean, via text, label text,
             serial text, kind text, subject text, device_id text, spki_sha256 text, not_before bigint,
             not_after bigint, issued_at bigint, cert_token_id text, der text, renewed_from text, cert_csr_sha256 text,
             audit json)
  LOOP
    -- FOR UPDATE: as the conditional UPDATE it replaces, it waits for a writer that took no
    -- writer lock and re-checks the row once that one committed.
    PERFORM 1 FROM tokens WHERE id = r.token_id AND used_at IS NULL AND revoked_at IS NULL AND expires_at > r.now FOR UPDATE;
    IF NOT FOUND THEN
      outcomes := outcomes || 'token_unavailable'::text;
      conflicted := true;
    -- A key is never certified again once it was on another device, on an operator, or on
    -- any certificate revoked for keyCompromise (redemption.ts: keyTaken).
    ELSIF EXISTS (SELECT 1 FROM certificates WHERE spki_sha256 = r.spki_sha256
                    AND (device_id IS NULL OR device_id <> r.device_id OR revocation_reason = 'keyCompromise')) THEN
      outcomes := outcomes || 'key_reused'::text;
      conflicted := true;
    -- An id bound to a token still waiting for its device is that device's: an unbound
    -- token may not take it first.
    ELSIF r.unbound AND EXISTS (SELECT 1 FROM tokens WHERE device_id = r.device_id AND used_at IS NULL
                                  AND revoked_at IS NULL AND expires_at > r.now) THEN
      outcomes := outcomes || 'device_exists'::text;
      conflicted := true;
    ELSIF EXISTS (SELECT 1 FROM devices WHERE id = r.device_id) THEN
      outcomes := outcomes || 'device_exists'::text;
      conflicted := true;
    ELSE
      UPDATE tokens SET used_at = r.now, used_by_device = r.device_id, csr_sha256 = r.csr_sha256, serial = r.serial
        WHERE id = r.token_id;
      INSERT INTO devices (id, status, enrolled_at, updated_at, current_serial, enrolled_via, enrollment_label)
        VALUES (r.device_id, 'active', r.now, r.now, r.serial, r.via, r.label);
      INSERT INTO certificates (serial, kind, subject, device_id, spki_sha256, not_before, not_after,
                                issued_at, status, token_id, der, renewed_from, csr_sha256)
        VALUES (r.serial, r.kind, r.subject, r.device_id, r.spki_sha256, r.not_before, r.not_after,
                r.issued_at, 'active', r.cert_token_id, decode(r.der, 'base64'), r.renewed_from, r.cert_csr_sha256);
      IF NOT conflicted THEN
        chained := chained + 1;
      END IF;
      outcomes := outcomes || NULL::text;
    END IF;
  END LOOP;
  -- One statement for the events, in the items' order: ids are taken as the sorted rows are
  -- inserted, so id order is chain order.
  INSERT INTO audit_events (at, actor, action, outcome, source, token_id, device_id, serial, detail, prev_hash, hash)
    SELECT e.at, e.actor, e.action, e.outcome, e.source, e.token_id, e.device_id, e.serial, e.detail, e.prev_hash, e.hash
    FROM json_array_elements(items) WITH ORDINALITY AS i(item, n), json_populate_record(NULL::audit_events, i.item->'audit') AS e
    WHERE i.n <= chained
    ORDER BY i.n;
  RETURN outcomes;
EXCEPTION WHEN OTHERS THEN
  -- The block's subtransaction rolled back everything above: the caller redeems each alone.
  RETURN NULL;
END
$$;
