-- imprint schema 7: which protocol enrolled a device (imprint's JSON API, EST or SCEP)
-- and the EST path label it came through (RFC 7030 3.2.2, e.g. a factory line), so the
-- inventory tells how each device arrived. Devices enrolled before this came by JSON.
ALTER TABLE devices ADD COLUMN enrolled_via TEXT NOT NULL DEFAULT 'json' CHECK (enrolled_via IN ('json', 'est', 'scep'));
ALTER TABLE devices ADD COLUMN enrollment_label TEXT;
