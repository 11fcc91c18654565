-- imprint schema 13: keys seen on a keyCompromise revocation, never to be certified again.
--
-- The mark used to be the certificate's own revocation reason, so a device revoked for
-- keyCompromise marked only the certificates it still held active: a key it had renewed
-- away from (revoked as superseded) or let expire could be certified again, by
-- re-provisioning the device with it. A keyCompromise revocation of a device now marks the
-- key of every certificate it ever had, and one of a certificate already revoked for another
-- reason marks its key; the certificates' reasons, which the CRL lists, stay as they were.
CREATE TABLE compromised_keys (
  spki_sha256 TEXT PRIMARY KEY,
  marked_at   INTEGER NOT NULL,
  -- The certificate through which the key was marked.
  serial      TEXT NOT NULL
) STRICT;

-- What earlier revocations marked: keyCompromise certificates, and every certificate of a
-- device still revoked for keyCompromise.
INSERT OR IGNORE INTO compromised_keys (spki_sha256, marked_at, serial)
  SELECT c.spki_sha256, coalesce(c.revoked_at, d.revoked_at, c.issued_at), c.serial
  FROM certificates c LEFT JOIN devices d ON d.id = c.device_id
  WHERE c.revocation_reason = 'keyCompromise' OR (d.status = 'revoked' AND d.revocation_reason = 'keyCompromise')
  ORDER BY c.revoked_at;
