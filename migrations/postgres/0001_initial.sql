-- imprint's PostgreSQL schema 1: where SQLite's migrations 0001-0010 arrived, in
-- PostgreSQL's types (the comments there say why each part exists). Times are BIGINT
-- milliseconds since the Unix epoch (UTC), binary is BYTEA. Text that a listing sorts or
-- compares by range is COLLATE "C": byte order, as SQLite compares, whatever the
-- database's locale. The tables listings page through have a `pos` identity column: the
-- keyset position a cursor names (SQLite's rowid). The cursor key (SQLite's 0005) is made
-- by the migration runner, in JavaScript: gen_random_bytes would need pgcrypto.

CREATE TABLE settings (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

CREATE TABLE devices (
  id                TEXT COLLATE "C" PRIMARY KEY,
  pos               BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
  status            TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
  enrolled_at       BIGINT NOT NULL,
  updated_at        BIGINT NOT NULL,
  current_serial    TEXT COLLATE "C",
  revoked_at        BIGINT,
  revocation_reason TEXT,
  -- after a renewal, the certificate it replaced, honoured until the new one is used or retire_at
  retiring_serial   TEXT COLLATE "C",
  retire_at         BIGINT,
  enrolled_via      TEXT NOT NULL DEFAULT 'json' CHECK (enrolled_via IN ('json', 'est', 'scep')),
  enrollment_label  TEXT
);
-- listDevices by status, in position order.
CREATE INDEX devices_status_pos ON devices (status, pos);
CREATE INDEX devices_retire_at ON devices (retire_at) WHERE retire_at IS NOT NULL;
-- The console's fleet, newest enrollment first, with or without a status filter.
CREATE INDEX devices_enrolled ON devices (enrolled_at, id);
CREATE INDEX devices_status_enrolled ON devices (status, enrolled_at, id);

-- Only the SHA-256 of a token is stored; the token itself is shown once at creation.
CREATE TABLE tokens (
  id              TEXT PRIMARY KEY,
  pos             BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
  hash            BYTEA NOT NULL UNIQUE,
  label           TEXT,
  device_id       TEXT COLLATE "C",  -- bound device id, NULL for an unbound token
  created_at      BIGINT NOT NULL,
  created_by      TEXT COLLATE "C" NOT NULL,
  expires_at      BIGINT NOT NULL,
  used_at         BIGINT,
  used_by_device  TEXT,
  csr_sha256      TEXT,              -- the CSR that redeemed it: a retry must send the same one
  serial          TEXT,              -- the certificate it was redeemed for
  revoked_at      BIGINT,
  may_reprovision BOOLEAN NOT NULL DEFAULT false
);
-- listTokens by label in position order, and revoking a batch.
CREATE INDEX tokens_label ON tokens (label, pos) WHERE label IS NOT NULL;
-- An id bound to a token still waiting for its device is reserved for that device.
CREATE INDEX tokens_waiting_bound ON tokens (device_id)
  WHERE device_id IS NOT NULL AND used_at IS NULL AND revoked_at IS NULL;
-- Revoking an operator revokes the unused tokens it minted.
CREATE INDEX tokens_unused_by_creator ON tokens (created_by) WHERE used_at IS NULL AND revoked_at IS NULL;

CREATE TABLE certificates (
  serial            TEXT COLLATE "C" PRIMARY KEY,  -- lowercase hex
  pos               BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
  kind              TEXT NOT NULL CHECK (kind IN ('device', 'operator')),
  subject           TEXT NOT NULL,                 -- device id or operator name (the CN)
  device_id         TEXT COLLATE "C" REFERENCES devices (id),
  spki_sha256       TEXT NOT NULL,
  not_before        BIGINT NOT NULL,
  not_after         BIGINT NOT NULL,
  issued_at         BIGINT NOT NULL,
  status            TEXT COLLATE "C" NOT NULL CHECK (status IN ('active', 'revoked')),
  revoked_at        BIGINT,
  revocation_reason TEXT,
  revocation_seq    BIGINT,
  token_id          TEXT,
  -- a renewal: the certificate it was made with and the CSR it answered
  renewed_from      TEXT COLLATE "C",
  csr_sha256        TEXT,
  der               BYTEA NOT NULL
);
CREATE INDEX certificates_device ON certificates (device_id, issued_at);
CREATE INDEX certificates_spki ON certificates (spki_sha256);
CREATE INDEX certificates_revocation_seq ON certificates (revocation_seq) WHERE revocation_seq IS NOT NULL;
-- The CRL's query reads the index alone.
CREATE INDEX certificates_revoked_crl ON certificates (revoked_at, serial) INCLUDE (revocation_reason, not_after)
  WHERE status = 'revoked';
-- The expiry gauges.
CREATE INDEX certificates_active_not_after ON certificates (not_after) WHERE status = 'active';
-- The console's fleet by the expiry of each device's certificates, soonest first.
CREATE INDEX certificates_device_expiry ON certificates (not_after, status, pos) WHERE kind = 'device';
CREATE INDEX certificates_renewed_from ON certificates (renewed_from) WHERE renewed_from IS NOT NULL;
-- Revoking an operator finds its certificates without reading the devices'.
CREATE INDEX certificates_operator ON certificates (subject) WHERE kind = 'operator';

-- The server's TLS certificates, issued by the same CA: OCSP answers good for them.
CREATE TABLE server_certificates (
  serial     TEXT PRIMARY KEY,
  subject    TEXT NOT NULL,
  not_before BIGINT NOT NULL,
  not_after  BIGINT NOT NULL,
  issued_at  BIGINT NOT NULL,
  der        BYTEA NOT NULL
);

-- Append-only; each row carries the hash of the one before it (tamper evidence). Ids are
-- taken under the writer lock (src/store/postgres/locks.ts), so id order is chain order.
CREATE TABLE audit_events (
  id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at        BIGINT NOT NULL,
  actor     TEXT NOT NULL,
  action    TEXT NOT NULL,
  outcome   TEXT NOT NULL,
  source    TEXT,
  token_id  TEXT,
  device_id TEXT,
  serial    TEXT,
  detail    TEXT,  -- JSON as hashed: text, not jsonb, which would reorder its keys
  prev_hash TEXT NOT NULL,
  hash      TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
-- The audit log newest first, filtered by device, actor or action.
CREATE INDEX audit_events_device ON audit_events (device_id, id) WHERE device_id IS NOT NULL;
CREATE INDEX audit_events_actor ON audit_events (actor, id);
CREATE INDEX audit_events_action ON audit_events (action, id);

CREATE TABLE operators (
  name       TEXT COLLATE "C" PRIMARY KEY,
  role       TEXT NOT NULL CHECK (role IN ('admin', 'provisioner')),
  status     TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
  created_at BIGINT NOT NULL,
  created_by TEXT NOT NULL,
  revoked_at BIGINT
);

-- seq: every revocation takes the next value, so a server sees another instance's
-- revocations by polling one row. crl_number: every CRL issued takes the next value
-- (RFC 5280 5.2.3). One row: each is a counter taken with UPDATE ... RETURNING.
CREATE TABLE revocation_state (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  seq        BIGINT NOT NULL,
  crl_number BIGINT NOT NULL
);
INSERT INTO revocation_state (id, seq, crl_number) VALUES (1, 0, 0);

-- The CRLs last built, one per scope, shared by every instance on this database.
CREATE TABLE published_crls (
  scope          TEXT PRIMARY KEY CHECK (scope IN ('issuer', 'root')),
  revocation_seq BIGINT NOT NULL,  -- the revocation sequence the CRL includes at least
  crl_number     BIGINT NOT NULL,
  built_at       BIGINT NOT NULL,
  der            BYTEA NOT NULL
);

-- Who is building a scope's next CRL, and until when (SQLite's migration 11 says why).
CREATE TABLE crl_build_claims (
  scope         TEXT PRIMARY KEY CHECK (scope IN ('issuer', 'root')),
  claimed_until BIGINT NOT NULL
);
