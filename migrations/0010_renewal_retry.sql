-- imprint schema 10: a renewal remembers the certificate it was made with and the CSR it
-- answered, so the same renewal sent again (a lost answer, or a replayed SCEP message) gets
-- the certificate already issued instead of superseding it with another one.

ALTER TABLE certificates ADD COLUMN renewed_from TEXT;
ALTER TABLE certificates ADD COLUMN csr_sha256 TEXT;
CREATE INDEX certificates_renewed_from ON certificates (renewed_from) WHERE renewed_from IS NOT NULL;
