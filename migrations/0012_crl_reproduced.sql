-- imprint schema 12: a published CRL is kept as what reproduces it, not as its DER (3.5 MB
-- for 100,000 entries, written again at every rebuild). Its entries are the certificates
-- revoked up to revocation_seq that had not expired at built_at, in revocation order
-- (sequence, then serial): revoked rows never change, so every process rebuilds the same
-- TBSCertList from them and attaches the signature stored here. The CRLs published before
-- are dropped; the next one built takes the next number from revocation_state as before.

DROP TABLE published_crls;
CREATE TABLE published_crls (
  scope          TEXT PRIMARY KEY CHECK (scope IN ('issuer', 'root')),
  revocation_seq INTEGER NOT NULL,
  crl_number     INTEGER NOT NULL,
  built_at       INTEGER NOT NULL,
  this_update    INTEGER NOT NULL,
  next_update    INTEGER NOT NULL,
  signature      BLOB NOT NULL
) STRICT;

-- The CRL's entries in revocation order, from the index alone (also the revocations since a
-- sequence number, which the old index served).
CREATE INDEX certificates_revocation_seq_crl ON certificates (revocation_seq, serial, revoked_at, revocation_reason, not_after)
  WHERE revocation_seq IS NOT NULL;
DROP INDEX certificates_revocation_seq;
