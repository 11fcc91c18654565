-- imprint schema 11: who is building a scope's next CRL, and until when. Several processes
-- (workers, instances) that find the published CRL out of date at once would each build
-- one; the first to claim builds, the others wait for its CRL, so every process serves the
-- same bytes and a rebuild runs once. A claim past its time (its holder died) is taken over.

CREATE TABLE crl_build_claims (
  scope         TEXT PRIMARY KEY CHECK (scope IN ('issuer', 'root')),
  claimed_until INTEGER NOT NULL
) STRICT;
