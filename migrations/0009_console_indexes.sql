-- imprint schema 9: what the operator console reads, each from an index rather than the
-- table, so that its pages stay fast with a million devices.

-- The fleet sorted by enrollment date (newest first), with or without a status filter; the
-- device id is in the index, so an id search scans the index alone. The status index also
-- makes counting active and revoked devices a scan of the index, not of the table.
CREATE INDEX devices_enrolled ON devices (enrolled_at, id);
CREATE INDEX devices_status_enrolled ON devices (status, enrolled_at, id);

-- The fleet sorted by the expiry of each device's certificates (soonest first), and the count
-- of active device certificates that expire within a window. Certificates never change
-- their notAfter, so a cursor can name a certificate and the listing can find its place.
CREATE INDEX certificates_device_expiry ON certificates (not_after, status) WHERE kind = 'device';

-- The audit log newest first, filtered by device, actor or action.
CREATE INDEX audit_events_device ON audit_events (device_id, id) WHERE device_id IS NOT NULL;
CREATE INDEX audit_events_actor ON audit_events (actor, id);
CREATE INDEX audit_events_action ON audit_events (action, id);
