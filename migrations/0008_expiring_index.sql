-- imprint schema 8: certificates that are still honoured, by expiry. The expiring-soon
-- gauges and listings sorted by expiry read this index alone instead of the whole table.

CREATE INDEX certificates_active_not_after ON certificates (not_after) WHERE status = 'active';
