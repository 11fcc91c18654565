-- imprint's PostgreSQL schema 6: a batch of enrollments is one statement, lock and audit
-- chain included; a batch of token lookups keeps its plan.
--
-- 0005's call needed the audit chain's head before it (the client hashed the events), so a
-- batch was BEGIN with the writer lock and head, then the call, then COMMIT: three round
-- trips under the writer lock. This call hashes the events itself, so when no head is given
-- it takes the writer lock and reads the head first, and the whole batch can run as a
-- transaction of its own: one round trip, commit included (src/store/postgres/redemption.ts).
-- Given a head, it runs inside a write transaction that already holds the lock.
--
-- An event's hash is SHA-256 over the previous hash, a newline and the event's fields as the
-- client serialised them (`audit` of each item: src/store/audit-hash.ts, auditText), as UTF-8:
-- nothing is serialised again here, so the hash is the one `imprint audit verify` computes.
--
-- Items are redeemed and checked as 0005's are, in two statements each instead of six (keys
-- marked compromised are looked up in compromised_keys, made by 0007).
-- Each item that redeemed has its event (the item's row of `events`, the columns of
-- audit_events without the hashes) chained and inserted, conflicts or not between them:
-- the chain goes on from the last one inserted.
-- On a failed statement (a serial already taken) nothing is written and both results are
-- NULL: the caller then redeems each alone. 0005's functions stay for instances still
-- running the code that calls them, until they are upgraded.
CREATE FUNCTION imprint_enroll_batch(namespace integer, lock integer, head text, items json, events json,
                                     OUT outcomes text[], OUT last_hash text) LANGUAGE plpgsql AS $$
DECLARE
  r record;
  conflict text;
  -- Per item, in the items' order: the event's previous hash and its hash (NULL: no event).
  prevs text[] := '{}';
  hashes text[] := '{}';
  prev text;
BEGIN
  IF head IS NULL THEN
    -- Before the block below: a lock taken in its subtransaction would go with a rollback of it.
    PERFORM pg_advisory_xact_lock(namespace, lock);
    head := coalesce((SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1), repeat('0', 64));
  END IF;
  outcomes := '{}';
  BEGIN
    FOR r IN SELECT * FROM json_to_recordset(items) AS i(
               token_id text, now bigint, csr_sha256 text, unbound boolean, via text, label text,
               serial text, kind text, subject text, device_id text, spki_sha256 text, not_before bigint,
               not_after bigint, issued_at bigint, cert_token_id text, der text, renewed_from text, cert_csr_sha256 text,
               audit text)
    LOOP
      -- The token redeemed and the checks made in one statement, as 0005's five were: the
      -- checks read the state before the UPDATE, which changes nothing they look at.
      WITH redeemed AS (
        UPDATE tokens SET used_at = r.now, used_by_device = r.device_id, csr_sha256 = r.csr_sha256, serial = r.serial
          WHERE id = r.token_id AND used_at IS NULL AND revoked_at IS NULL AND expires_at > r.now RETURNING 1)
      SELECT CASE
          WHEN NOT EXISTS (SELECT 1 FROM redeemed) THEN 'token_unavailable'
          WHEN EXISTS (SELECT 1 FROM compromised_keys WHERE spki_sha256 = r.spki_sha256)
            OR EXISTS (SELECT 1 FROM certificates WHERE spki_sha256 = r.spki_sha256
                         AND (device_id IS NULL OR device_id <> r.device_id)) THEN 'key_reused'
          WHEN r.unbound AND EXISTS (SELECT 1 FROM tokens WHERE device_id = r.device_id AND used_at IS NULL
                                       AND revoked_at IS NULL AND expires_at > r.now) THEN 'device_exists'
          WHEN EXISTS (SELECT 1 FROM devices WHERE id = r.device_id) THEN 'device_exists'
        END INTO conflict;
      IF conflict IS NULL THEN
        -- One statement too: the certificate's reference to its device is checked at its end.
        WITH device AS (
          INSERT INTO devices (id, status, enrolled_at, updated_at, current_serial, enrolled_via, enrollment_label)
            VALUES (r.device_id, 'active', r.now, r.now, r.serial, r.via, r.label))
        INSERT INTO certificates (serial, kind, subject, device_id, spki_sha256, not_before, not_after,
                                  issued_at, status, token_id, der, renewed_from, csr_sha256)
          VALUES (r.serial, r.kind, r.subject, r.device_id, r.spki_sha256, r.not_before, r.not_after,
                  r.issued_at, 'active', r.cert_token_id, decode(r.der, 'base64'), r.renewed_from, r.cert_csr_sha256);
        prev := head;
        head := encode(sha256(convert_to(prev || E'\n' || r.audit, 'UTF8')), 'hex');
        prevs := array_append(prevs, prev);
        hashes := array_append(hashes, head);
      ELSE
        -- The token was unused (the UPDATE's condition), so these columns were empty.
        IF conflict <> 'token_unavailable' THEN
          UPDATE tokens SET used_at = NULL, used_by_device = NULL, csr_sha256 = NULL, serial = NULL WHERE id = r.token_id;
        END IF;
        prevs := array_append(prevs, NULL::text);
        hashes := array_append(hashes, NULL::text);
      END IF;
      outcomes := outcomes || conflict;
    END LOOP;
    -- One statement for the events, in the items' order: ids are taken as the sorted rows are
    -- inserted, so id order is chain order.
    INSERT INTO audit_events (at, actor, action, outcome, source, token_id, device_id, serial, detail, prev_hash, hash)
      SELECT e.at, e.actor, e.action, e.outcome, e.source, e.token_id, e.device_id, e.serial, e.detail, c.prev_hash, c.hash
      FROM ROWS FROM (json_to_recordset(events) AS (at bigint, actor text, action text, outcome text, source text,
                                                    token_id text, device_id text, serial text, detail text))
             WITH ORDINALITY AS e(at, actor, action, outcome, source, token_id, device_id, serial, detail, n)
           JOIN unnest(prevs, hashes) WITH ORDINALITY AS c(prev_hash, hash, n) ON c.n = e.n
      WHERE c.hash IS NOT NULL
      ORDER BY e.n;
  EXCEPTION WHEN OTHERS THEN
    -- The block's subtransaction rolled back everything in it.
    outcomes := NULL;
    RETURN;
  END;
  last_hash := head;
END
$$;

-- The tokens of a batch of lookups (src/store/postgres/tokens.ts), with a plan made once per
-- session. Asked as a statement of its own, PostgreSQL planned it anew on every call: it
-- estimates an array parameter at 10 elements, so the plan for the few keys a batch holds
-- under load always looked cheaper than the kept one (backend CPU per 4-key lookup, 60,000
-- tokens: ~110 us planned each time, ~85 us through this function).
CREATE FUNCTION imprint_tokens_by_hash(hashes bytea[]) RETURNS SETOF tokens LANGUAGE plpgsql STABLE
  SET plan_cache_mode = force_generic_plan AS $$
BEGIN
  RETURN QUERY SELECT * FROM tokens WHERE hash = ANY(hashes);
END
$$;
