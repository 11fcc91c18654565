-- imprint's PostgreSQL schema 7: keys seen on a keyCompromise revocation, never to be
-- certified again (SQLite's schema 13 says why: a device revoked for keyCompromise marked
-- only the certificates it still held active). imprint_enroll_batch (0006) and the renewal
-- and re-provisioning statements (src/store/postgres/redemption.ts) look here.
CREATE TABLE compromised_keys (
  spki_sha256 text PRIMARY KEY,
  marked_at   bigint NOT NULL,
  -- The certificate through which the key was marked.
  serial      text NOT NULL
);

-- What earlier revocations marked: keyCompromise certificates, and every certificate of a
-- device still revoked for keyCompromise.
INSERT INTO compromised_keys (spki_sha256, marked_at, serial)
  SELECT c.spki_sha256, coalesce(c.revoked_at, d.revoked_at, c.issued_at), c.serial
  FROM certificates c LEFT JOIN devices d ON d.id = c.device_id
  WHERE c.revocation_reason = 'keyCompromise' OR (d.status = 'revoked' AND d.revocation_reason = 'keyCompromise')
  ORDER BY c.revoked_at
ON CONFLICT DO NOTHING;
