-- imprint's PostgreSQL schema 2: a group-committed batch of enrollments in one round trip
-- (src/store/postgres/redemption.ts), where each used to take four. Its caller holds the
-- writer lock (src/store/postgres/locks.ts), so no other writer interleaves: a check made
-- here still holds when the item's writes follow it.
--
-- items: a JSON array of redemptions in the order they are to take effect (mode 'unbound'
-- or 'create'; re-provisioning keeps its own path), the certificate's DER in base64.
-- Returns one outcome per item, in order: NULL when it redeemed the token and recorded the
-- device and its certificate, else its conflict, for which it wrote nothing. Each item
-- sees the writes of those before it (the same token, key or device id twice in a batch).
-- The checks in SQLite's order (src/store/sqlite/redemption.ts): the first that fails
-- answers. Any other failure (a serial already taken) raises, writing nothing at all.
CREATE FUNCTION imprint_redeem_batch(items json) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
  r record;
  outcomes text[] := '{}';
BEGIN
  FOR r IN SELECT * FROM json_to_recordset(items) AS i(
             token_id text, now bigint, csr_sha256 text, unbound boolean, via text, label text,
             serial text, kind text, subject text, device_id text, spki_sha256 text, not_before bigint,
             not_after bigint, issued_at bigint, cert_token_id text, der text, renewed_from text, cert_csr_sha256 text)
  LOOP
    -- FOR UPDATE: as the conditional UPDATE it replaces, it waits for a writer that took no
    -- writer lock and re-checks the row once that one committed.
    PERFORM 1 FROM tokens WHERE id = r.token_id AND used_at IS NULL AND revoked_at IS NULL AND expires_at > r.now FOR UPDATE;
    IF NOT FOUND THEN
      outcomes := outcomes || 'token_unavailable'::text;
    -- A key is never certified again once it was on another device, on an operator, or on
    -- any certificate revoked for keyCompromise (redemption.ts: keyTaken).
    ELSIF EXISTS (SELECT 1 FROM certificates WHERE spki_sha256 = r.spki_sha256
                    AND (device_id IS NULL OR device_id <> r.device_id OR revocation_reason = 'keyCompromise')) THEN
      outcomes := outcomes || 'key_reused'::text;
    -- An id bound to a token still waiting for its device is that device's: an unbound
    -- token may not take it first.
    ELSIF r.unbound AND EXISTS (SELECT 1 FROM tokens WHERE device_id = r.device_id AND used_at IS NULL
                                  AND revoked_at IS NULL AND expires_at > r.now) THEN
      outcomes := outcomes || 'device_exists'::text;
    ELSIF EXISTS (SELECT 1 FROM devices WHERE id = r.device_id) THEN
      outcomes := outcomes || 'device_exists'::text;
    ELSE
      UPDATE tokens SET used_at = r.now, used_by_device = r.device_id, csr_sha256 = r.csr_sha256, serial = r.serial
        WHERE id = r.token_id;
      INSERT INTO devices (id, status, enrolled_at, updated_at, current_serial, enrolled_via, enrollment_label)
        VALUES (r.device_id, 'active', r.now, r.now, r.serial, r.via, r.label);
      INSERT INTO certificates (serial, kind, subject, device_id, spki_sha256, not_before, not_after,
                                issued_at, status, token_id, der, renewed_from, csr_sha256)
        VALUES (r.serial, r.kind, r.subject, r.device_id, r.spki_sha256, r.not_before, r.not_after,
                r.issued_at, 'active', r.cert_token_id, decode(r.der, 'base64'), r.renewed_from, r.cert_csr_sha256);
      outcomes := outcomes || NULL::text;
    END IF;
  END LOOP;
  RETURN outcomes;
END
$$;
