-- imprint schema 1: settings, devices, bootstrap tokens, certificates, audit events.
-- Times are integer milliseconds since the Unix epoch (UTC).

CREATE TABLE settings (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;

CREATE TABLE devices (
  id                TEXT PRIMARY KEY,
  status            TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
  enrolled_at       INTEGER NOT NULL,
  updated_at        INTEGER NOT NULL,
  current_serial    TEXT,
  revoked_at        INTEGER,
  revocation_reason TEXT
) STRICT;

-- Only the SHA-256 of a token is stored; the token itself is shown once at creation.
CREATE TABLE tokens (
  id             TEXT PRIMARY KEY,
  hash           BLOB NOT NULL UNIQUE,
  label          TEXT,
  device_id      TEXT,              -- bound device id, NULL for an unbound token
  created_at     INTEGER NOT NULL,
  created_by     TEXT NOT NULL,
  expires_at     INTEGER NOT NULL,
  used_at        INTEGER,
  used_by_device TEXT,
  csr_sha256     TEXT,              -- the CSR that redeemed it: a retry must send the same one
  serial         TEXT,              -- the certificate it was redeemed for
  revoked_at     INTEGER
) STRICT;
CREATE INDEX tokens_label ON tokens (label) WHERE label IS NOT NULL;

CREATE TABLE certificates (
  serial            TEXT PRIMARY KEY,   -- lowercase hex
  kind              TEXT NOT NULL CHECK (kind IN ('device', 'operator')),
  subject           TEXT NOT NULL,      -- device id or operator name (the CN)
  device_id         TEXT REFERENCES devices (id),
  spki_sha256       TEXT NOT NULL,
  not_before        INTEGER NOT NULL,
  not_after         INTEGER NOT NULL,
  issued_at         INTEGER NOT NULL,
  status            TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
  revoked_at        INTEGER,
  revocation_reason TEXT,
  token_id          TEXT,
  der               BLOB NOT NULL
) STRICT;
CREATE INDEX certificates_device ON certificates (device_id, issued_at);
CREATE INDEX certificates_spki ON certificates (spki_sha256);
CREATE INDEX certificates_revoked ON certificates (revoked_at) WHERE status = 'revoked';

-- Append-only; each row carries the hash of the one before it (tamper evidence).
CREATE TABLE audit_events (
  id        INTEGER PRIMARY KEY,
  at        INTEGER NOT NULL,
  actor     TEXT NOT NULL,
  action    TEXT NOT NULL,
  outcome   TEXT NOT NULL,
  source    TEXT,
  token_id  TEXT,
  device_id TEXT,
  serial    TEXT,
  detail    TEXT,
  prev_hash TEXT NOT NULL,
  hash      TEXT NOT NULL
) STRICT;
CREATE INDEX audit_events_at ON audit_events (at);
