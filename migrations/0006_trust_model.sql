-- imprint schema 6: who may re-provision, renewal that retires the certificate it
-- replaces, tokens that go with the operator who minted them, the server's own TLS
-- certificates for OCSP, and device ids that are SPIFFE path segments.

-- A bound token re-provisions an existing device only when an admin minted it; a
-- provisioner's bound token can only create. Tokens minted before this migration keep
-- what their minter could do then only when that minter was an admin or the CLI.
ALTER TABLE tokens ADD COLUMN may_reprovision INTEGER NOT NULL DEFAULT 0 CHECK (may_reprovision IN (0, 1));
UPDATE tokens SET may_reprovision = 1
  WHERE device_id IS NOT NULL
    AND (created_by NOT LIKE 'operator:%'
         OR substr(created_by, 10) IN (SELECT name FROM operators WHERE role = 'admin'));
-- An id bound to a token still waiting for its device is reserved for that device.
CREATE INDEX tokens_waiting_bound ON tokens (device_id)
  WHERE device_id IS NOT NULL AND used_at IS NULL AND revoked_at IS NULL;
-- Revoking an operator revokes the unused tokens it minted.
CREATE INDEX tokens_unused_by_creator ON tokens (created_by) WHERE used_at IS NULL AND revoked_at IS NULL;

-- After a renewal the certificate it replaced keeps working until the device first uses
-- the new one, or until retire_at, whichever comes first.
ALTER TABLE devices ADD COLUMN retiring_serial TEXT;
ALTER TABLE devices ADD COLUMN retire_at INTEGER;
CREATE INDEX devices_retire_at ON devices (retire_at) WHERE retire_at IS NOT NULL;

-- The server's TLS certificates, issued by the same CA: OCSP answers good for them.
CREATE TABLE server_certificates (
  serial     TEXT PRIMARY KEY,
  subject    TEXT NOT NULL,
  not_before INTEGER NOT NULL,
  not_after  INTEGER NOT NULL,
  issued_at  INTEGER NOT NULL,
  der        BLOB NOT NULL
) STRICT;

-- Device ids are SPIFFE path segments: the old default also allowed ':'.
UPDATE settings SET value = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'
  WHERE key = 'device_id_pattern' AND value = '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$';
