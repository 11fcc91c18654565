/** SQLite inventory: devices, their certificates, the server's own, and the console's fleet listings. */
import type Database from 'better-sqlite3';
import { InvalidCursorError, type CertificateRecord, type CertificateStatus, type DeviceListing, type DeviceRecord, type DeviceSort, type FleetCounts, type Page, type ServerCertificate } from '../../enrollment/model.js';
import type { InventoryStore } from '../store.js';
import { containing, type Listings } from './listings.js';
import type { SharedReads } from './reads.js';
import { certificateFromRow, date, deviceFromRow, statusFromRow, type Row } from '../rows.js';

/** Devices and certificates. */
export class SqliteInventory implements InventoryStore {
  private readonly statements;

  constructor(
    private readonly db: Database.Database,
    private readonly reads: SharedReads,
    private readonly listings: Listings,
  ) {
    const s = (sql: string) => db.prepare(sql);
    this.statements = {
      existingDevices: s('SELECT id FROM devices WHERE id IN (SELECT value FROM json_each(?))'),
      serverCertificateStatus: s(`SELECT 'active' AS status, NULL AS revoked_at, NULL AS revocation_reason FROM server_certificates WHERE serial = ?`),
      insertServerCertificate: s(`INSERT INTO server_certificates (serial, subject, not_before, not_after, issued_at, der)
                                  VALUES (@serial, @subject, @notBefore, @notAfter, @issuedAt, @der) ON CONFLICT (serial) DO NOTHING`),
    };
  }

  async findDevice(id: string): Promise<DeviceRecord | undefined> {
    const row = this.reads.device.get(id) as Row | undefined;
    return row && deviceFromRow(row);
  }

  async existingDeviceIds(ids: readonly string[]): Promise<string[]> {
    return (this.statements.existingDevices.all(JSON.stringify(ids)) as { id: string }[]).map((row) => row.id);
  }

  async listDevices(query: {
    status?: DeviceRecord['status'] | undefined;
    q?: string | undefined;
    limit: number;
    cursor?: string | undefined;
  }): Promise<Page<DeviceRecord>> {
    const where: string[] = [];
    if (query.status) where.push('status = @status');
    if (query.q) where.push("id LIKE @pattern ESCAPE '\\'");
    return this.listings.page('devices', where, query, deviceFromRow, {
      status: query.status ?? null,
      pattern: containing(query.q ?? ''),
    });
  }

  /** The console's statements, prepared on first use. */
  private console: ReturnType<typeof prepareConsoleStatements> | undefined;

  async browseDevices(query: {
    sort: DeviceSort;
    status?: DeviceRecord['status'] | undefined;
    q?: string | undefined;
    limit: number;
    cursor?: string | undefined;
  }): Promise<Page<DeviceListing>> {
    const statements = (this.console ??= prepareConsoleStatements(this.db));
    // A cursor names the last row's rowid (a device's, or its certificate's when sorted by
    // expiry); the row's sort key is read back from it, and neither enrolled_at nor a
    // certificate's not_after ever changes, so the next page starts where this one ended.
    const listing = query.sort === 'enrolled' ? 'devices.enrolled' : 'certificates.device_expiry';
    const after = query.cursor === undefined ? undefined : this.listings.cursors.decode(listing, query.cursor);
    if (query.cursor !== undefined && after === undefined) throw new InvalidCursorError();
    const params: Record<string, unknown> = {
      status: query.status ?? null,
      pattern: query.q ? containing(query.q) : null,
      limit: query.limit + 1,
    };
    let rows: Row[];
    if (query.sort === 'enrolled') {
      const key = after === undefined ? undefined : (statements.deviceKey.get(after) as Row | undefined);
      if (after !== undefined && !key) throw new InvalidCursorError();
      Object.assign(params, { at: key?.enrolled_at ?? Number.MAX_SAFE_INTEGER, id: key?.id ?? '\u{10ffff}' });
      rows = (query.status ? statements.enrolledByStatus : statements.enrolled).all(params) as Row[];
    } else {
      const key = after === undefined ? undefined : (statements.certificateKey.get(after) as Row | undefined);
      if (after !== undefined && !key) throw new InvalidCursorError();
      Object.assign(params, { at: key?.not_after ?? -1, certStatus: key?.status ?? '', after: after ?? 0 });
      rows = (query.status ? statements.expiryByStatus : statements.expiry).all(params) as Row[];
    }
    const items = rows.slice(0, query.limit);
    const last = items[items.length - 1];
    return {
      items: items.map((row) => ({ ...deviceFromRow(row), currentNotAfter: date(row.current_not_after) })),
      nextCursor: rows.length > query.limit && last ? this.listings.cursors.encode(listing, last._key as number) : null,
    };
  }

  async countFleet(now: Date, soon: Date): Promise<FleetCounts> {
    const statements = (this.console ??= prepareConsoleStatements(this.db));
    const byStatus = new Map((statements.devicesByStatus.all() as { status: string; n: number }[]).map((row) => [row.status, row.n]));
    const expiring = statements.expiringDevices.get({ now: now.getTime(), soon: soon.getTime() }) as { n: number };
    return { active: byStatus.get('active') ?? 0, revoked: byStatus.get('revoked') ?? 0, expiringSoon: expiring.n };
  }

  private expiring: Database.Statement | undefined;

  async countExpiring(now: Date, soon: Date, later: Date): Promise<{ soon: number; later: number }> {
    // Devices' certificates from their expiry index alone, operators' (who have no device) from
    // certificates_device: each part reads only the certificates it counts.
    this.expiring ??= this.db.prepare(`SELECT COUNT(*) AS later, COALESCE(SUM(not_after <= @soon), 0) AS soon FROM (
                                         SELECT not_after FROM certificates INDEXED BY certificates_device_expiry
                                         WHERE kind = 'device' AND status = 'active' AND not_after > @now AND not_after <= @later
                                         UNION ALL
                                         SELECT not_after FROM certificates INDEXED BY certificates_device
                                         WHERE device_id IS NULL AND kind <> 'device' AND status = 'active' AND not_after > @now AND not_after <= @later)`);
    const row = this.expiring.get({ now: now.getTime(), soon: soon.getTime(), later: later.getTime() }) as { soon: number; later: number };
    return { soon: row.soon, later: row.later };
  }

  async findCertificate(serial: string): Promise<CertificateRecord | undefined> {
    const row = this.reads.certificate.get(serial) as Row | undefined;
    return row && certificateFromRow(row);
  }

  async certificateStatus(serial: string): Promise<CertificateStatus | undefined> {
    const row = (this.reads.certificateStatus.get(serial) ?? this.statements.serverCertificateStatus.get(serial)) as Row | undefined;
    return row && statusFromRow(row);
  }

  async listCertificates(query: {
    deviceId?: string | undefined;
    kind?: CertificateRecord['kind'] | undefined;
    status?: CertificateRecord['status'] | undefined;
    limit: number;
    cursor?: string | undefined;
  }): Promise<Page<CertificateRecord>> {
    const where: string[] = [];
    if (query.deviceId !== undefined) where.push('device_id = @deviceId');
    if (query.kind) where.push('kind = @kind');
    if (query.status) where.push('status = @status');
    return this.listings.page('certificates', where, query, certificateFromRow, {
      deviceId: query.deviceId ?? null,
      kind: query.kind ?? null,
      status: query.status ?? null,
    });
  }

  async recordServerCertificate(certificate: ServerCertificate): Promise<void> {
    this.statements.insertServerCertificate.run({
      ...certificate,
      notBefore: certificate.notBefore.getTime(),
      notAfter: certificate.notAfter.getTime(),
      issuedAt: certificate.issuedAt.getTime(),
    });
  }
}

function prepareConsoleStatements(db: Database.Database) {
  const s = (sql: string) => db.prepare(sql);
  // Each listing exists with and without a status filter, so that SQLite plans each one
  // once against the index that fits it. The id search is a LIKE over the index's own id
  // column: it never reads the table for rows that do not match.
  const search = "(@pattern IS NULL OR d.id LIKE @pattern ESCAPE '\\')";
  const enrolled = (status: boolean, index: string) =>
    s(`SELECT d.rowid AS _key, d.*, c.not_after AS current_not_after FROM devices d INDEXED BY ${index}
       LEFT JOIN certificates c ON c.serial = d.current_serial
       WHERE ${status ? 'd.status = @status AND ' : ''}(d.enrolled_at, d.id) < (@at, @id) AND ${search}
       ORDER BY ${status ? 'd.status DESC, ' : ''}d.enrolled_at DESC, d.id DESC LIMIT @limit`);
  // A revoked device's certificates are all revoked (revokeDevice), so the revoked ones are
  // found from the index alone instead of reading a device row per certificate (~0.6 s
  // against a few ms with a million devices); an active device may hold a revoked current
  // certificate (one revoked by serial), so for them the device row decides.
  const expiryStatus = "AND d.status = @status AND (@status = 'active' OR c.status = 'revoked')";
  const expiry = (status: boolean) =>
    s(`SELECT c.rowid AS _key, d.*, c.not_after AS current_not_after FROM certificates c INDEXED BY certificates_device_expiry
       JOIN devices d ON d.id = c.device_id AND d.current_serial = c.serial
       WHERE c.kind = 'device' AND (c.not_after, c.status, c.rowid) > (@at, @certStatus, @after)
         ${status ? expiryStatus : ''} AND ${search}
       ORDER BY c.not_after, c.status, c.rowid LIMIT @limit`);
  return {
    enrolled: enrolled(false, 'devices_enrolled'),
    enrolledByStatus: enrolled(true, 'devices_status_enrolled'),
    expiry: expiry(false),
    expiryByStatus: expiry(true),
    deviceKey: s('SELECT enrolled_at, id FROM devices WHERE rowid = ?'),
    certificateKey: s(`SELECT not_after, status FROM certificates WHERE rowid = ? AND kind = 'device'`),
    // Both read an index alone (devices_status_enrolled, certificates_device_expiry).
    devicesByStatus: s('SELECT status, count(*) AS n FROM devices INDEXED BY devices_status_enrolled GROUP BY status'),
    expiringDevices: s(`SELECT count(*) AS n FROM certificates INDEXED BY certificates_device_expiry
                        WHERE kind = 'device' AND not_after > @now AND not_after <= @soon AND status = 'active'`),
  };
}
