-- imprint schema 14: two indexes fewer to write on every enrollment (each is one more
-- B-tree insert per certificate or audit event), neither needed by any query.
--
-- Active certificates by expiry: the expiry gauges count active device certificates from
-- certificates_device_expiry (not_after, status, partial on kind = 'device') and operators'
-- from certificates_device (device_id IS NULL); revoking an operator finds its certificates
-- there too. Nothing else read it.
DROP INDEX certificates_active_not_after;

-- Audit events by time: the audit listing walks ids (its `since` is a filter on that walk),
-- and the console's views read the device, actor and action indexes. No query read it.
DROP INDEX audit_events_at;
