-- A published CRL is kept as what reproduces it, not as its DER (SQLite's migration 12 says why).

DROP TABLE published_crls;
CREATE TABLE published_crls (
  scope          TEXT PRIMARY KEY CHECK (scope IN ('issuer', 'root')),
  revocation_seq BIGINT NOT NULL,  -- the CRL lists the certificates revoked up to this sequence
  crl_number     BIGINT NOT NULL,
  built_at       BIGINT NOT NULL,  -- ... that had not expired at this time
  this_update    BIGINT NOT NULL,
  next_update    BIGINT NOT NULL,
  signature      BYTEA NOT NULL
);

-- The CRL's entries in revocation order, from the index alone.
CREATE INDEX certificates_revocation_seq_crl ON certificates (revocation_seq, serial) INCLUDE (revoked_at, revocation_reason, not_after)
  WHERE revocation_seq IS NOT NULL;
DROP INDEX certificates_revocation_seq;
