-- imprint schema 2: operators with roles, and the revocation sequence that CRLs,
-- OCSP and every running server follow.

CREATE TABLE operators (
  name       TEXT PRIMARY KEY,
  role       TEXT NOT NULL CHECK (role IN ('admin', 'provisioner')),
  status     TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
  created_at INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  revoked_at INTEGER
) STRICT;

-- seq: every revocation takes the next value, so a server sees another process's
-- revocations by polling one row. crl_number: every CRL issued takes the next value
-- (RFC 5280 5.2.3: increasing for each CRL, also when only thisUpdate changes).
CREATE TABLE revocation_state (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  seq        INTEGER NOT NULL,
  crl_number INTEGER NOT NULL
) STRICT;
INSERT INTO revocation_state (id, seq, crl_number)
  VALUES (1, (SELECT count(*) > 0 FROM certificates WHERE status = 'revoked'), 0);

ALTER TABLE certificates ADD COLUMN revocation_seq INTEGER;
UPDATE certificates SET revocation_seq = 1 WHERE status = 'revoked';
CREATE INDEX certificates_revocation_seq ON certificates (revocation_seq) WHERE revocation_seq IS NOT NULL;
