-- imprint schema 3: the CRLs last built, one per scope, shared by every process on this
-- store. All workers serve the same CRL for a revocation state, so a client fetching the
-- CRL twice never sees its number go backwards, and a rebuild happens once, not per worker.

CREATE TABLE published_crls (
  scope          TEXT PRIMARY KEY CHECK (scope IN ('issuer', 'root')),
  -- the revocation sequence the CRL includes at least
  revocation_seq INTEGER NOT NULL,
  crl_number     INTEGER NOT NULL,
  built_at       INTEGER NOT NULL,
  der            BLOB NOT NULL
) STRICT;
