/** PostgreSQL inventory: devices, their certificates, the server's own, and the console's fleet listings. */
import { InvalidCursorError, type CertificateRecord, type CertificateStatus, type DeviceListing, type DeviceRecord, type DeviceSort, type FleetCounts, type Page, type ServerCertificate } from '../../enrollment/model.js';
import type { InventoryStore } from '../store.js';
import type { Postgres } from './connection.js';
import { containing, type Listings } from './listing.js';
import { Params } from './query.js';
import { READS } from './reads.js';
import { CERTIFICATE_COLUMNS, DEVICE_COLUMNS, qualified } from './columns.js';
import { certificateFromRow, date, deviceFromRow, statusFromRow } from '../rows.js';

const SERVER_CERTIFICATE_STATUS = `SELECT 'active' AS status, NULL AS revoked_at, NULL AS revocation_reason FROM server_certificates WHERE serial = $1`;
const INSERT_SERVER_CERTIFICATE = `INSERT INTO server_certificates (serial, subject, not_before, not_after, issued_at, der)
                                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (serial) DO NOTHING`;
/** Each count from an index: devices_status_pos, certificates_device_expiry. */
const FLEET = `SELECT (SELECT count(*) FROM devices WHERE status = 'active') AS active,
                      (SELECT count(*) FROM devices WHERE status = 'revoked') AS revoked,
                      (SELECT count(*) FROM certificates WHERE kind = 'device' AND not_after > $1 AND not_after <= $2
                         AND status = 'active') AS expiring`;
const EXPIRING = `SELECT count(*) AS later, count(*) FILTER (WHERE not_after <= $2) AS soon FROM certificates
                  WHERE status = 'active' AND not_after > $1 AND not_after <= $3`;
/** A browse cursor's row: its sort key is read back, and never changes. */
const DEVICE_KEY = 'SELECT enrolled_at, id FROM devices WHERE pos = $1';
const CERTIFICATE_KEY = `SELECT not_after, status FROM certificates WHERE pos = $1 AND kind = 'device'`;

/** A substring search of `column`, case-insensitive as SQLite's LIKE is (it folds ASCII case). */
const contains = (params: Params, column: string, q: string): string => `${column} ILIKE ${params.add(containing(q))} ESCAPE '\\'`;

/** Devices and certificates. */
export class PostgresInventory implements InventoryStore {
  constructor(
    private readonly db: Postgres,
    private readonly listings: Listings,
  ) {}

  async findDevice(id: string): Promise<DeviceRecord | undefined> {
    const [row] = await this.db.rows(READS.device, [id]);
    return row && deviceFromRow(row);
  }

  async existingDeviceIds(ids: readonly string[]): Promise<string[]> {
    const rows = await this.db.rows<{ id: string }>('SELECT id FROM devices WHERE id = ANY($1::text[]) ORDER BY id', [ids]);
    return rows.map((row) => row.id);
  }

  async listDevices(query: {
    status?: DeviceRecord['status'] | undefined;
    q?: string | undefined;
    limit: number;
    cursor?: string | undefined;
  }): Promise<Page<DeviceRecord>> {
    const params = new Params();
    const where: string[] = [];
    if (query.status) where.push(`status = ${params.add(query.status)}`);
    if (query.q) where.push(contains(params, 'id', query.q));
    return this.listings.page('devices', DEVICE_COLUMNS, where, params, query, deviceFromRow);
  }

  async browseDevices(query: {
    sort: DeviceSort;
    status?: DeviceRecord['status'] | undefined;
    q?: string | undefined;
    limit: number;
    cursor?: string | undefined;
  }): Promise<Page<DeviceListing>> {
    // A cursor names the last row's position (a device's, or its certificate's when sorted
    // by expiry); the row's sort key is read back from it, and neither enrolled_at nor a
    // certificate's not_after ever changes, so the next page starts where this one ended.
    const listing = query.sort === 'enrolled' ? 'devices.enrolled' : 'certificates.device_expiry';
    const after = query.cursor === undefined ? undefined : this.listings.position(listing, query.cursor);
    const params = new Params();
    const where: string[] = [];
    let sql: string;
    if (query.sort === 'enrolled') {
      if (after !== undefined) {
        const [key] = await this.db.rows(DEVICE_KEY, [after]);
        if (!key) throw new InvalidCursorError();
        where.push(`(d.enrolled_at, d.id) < (${params.add(key.enrolled_at)}, ${params.add(key.id)})`);
      }
      if (query.status) where.push(`d.status = ${params.add(query.status)}`);
      if (query.q) where.push(contains(params, 'd.id', query.q));
      // Read from devices_enrolled, or devices_status_enrolled with a status.
      sql = `SELECT d.pos AS _key, ${qualified('d', DEVICE_COLUMNS)}, c.not_after AS current_not_after FROM devices d
             LEFT JOIN certificates c ON c.serial = d.current_serial
             ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
             ORDER BY d.enrolled_at DESC, d.id DESC LIMIT ${params.add(query.limit + 1)}`;
    } else {
      where.push(`c.kind = 'device'`);
      if (after !== undefined) {
        const [key] = await this.db.rows(CERTIFICATE_KEY, [after]);
        if (!key) throw new InvalidCursorError();
        where.push(`(c.not_after, c.status, c.pos) > (${params.add(key.not_after)}, ${params.add(key.status)}, ${params.add(after)})`);
      }
      if (query.status) where.push(`d.status = ${params.add(query.status)}`);
      // A revoked device's certificates are all revoked (revokeDevice), so the revoked ones
      // are found from the index alone; an active device may hold a revoked current
      // certificate (one revoked by serial), so for them the device row decides.
      if (query.status === 'revoked') where.push(`c.status = 'revoked'`);
      if (query.q) where.push(contains(params, 'd.id', query.q));
      // Read from certificates_device_expiry.
      sql = `SELECT c.pos AS _key, ${qualified('d', DEVICE_COLUMNS)}, c.not_after AS current_not_after FROM certificates c
             JOIN devices d ON d.id = c.device_id AND d.current_serial = c.serial
             WHERE ${where.join(' AND ')}
             ORDER BY c.not_after, c.status, c.pos LIMIT ${params.add(query.limit + 1)}`;
    }
    const rows = await this.db.rows(sql, params.values);
    return this.listings.pageOf(listing, rows, query.limit, (row) => row._key as number, (row) => ({
      ...deviceFromRow(row),
      currentNotAfter: date(row.current_not_after),
    }));
  }

  async countFleet(now: Date, soon: Date): Promise<FleetCounts> {
    const [row] = await this.db.rows<{ active: number; revoked: number; expiring: number }>(FLEET, [now.getTime(), soon.getTime()]);
    return { active: row!.active, revoked: row!.revoked, expiringSoon: row!.expiring };
  }

  async countExpiring(now: Date, soon: Date, later: Date): Promise<{ soon: number; later: number }> {
    const [row] = await this.db.rows<{ soon: number; later: number }>(EXPIRING, [now.getTime(), soon.getTime(), later.getTime()]);
    return { soon: row!.soon, later: row!.later };
  }

  async findCertificate(serial: string): Promise<CertificateRecord | undefined> {
    const [row] = await this.db.rows(READS.certificate, [serial]);
    return row && certificateFromRow(row);
  }

  async certificateStatus(serial: string): Promise<CertificateStatus | undefined> {
    const [row] = await this.db.rows(READS.certificateStatus, [serial]);
    if (row) return statusFromRow(row);
    const [server] = await this.db.rows(SERVER_CERTIFICATE_STATUS, [serial]);
    return server && statusFromRow(server);
  }

  async listCertificates(query: {
    deviceId?: string | undefined;
    kind?: CertificateRecord['kind'] | undefined;
    status?: CertificateRecord['status'] | undefined;
    limit: number;
    cursor?: string | undefined;
  }): Promise<Page<CertificateRecord>> {
    const params = new Params();
    const where: string[] = [];
    if (query.deviceId !== undefined) where.push(`device_id = ${params.add(query.deviceId)}`);
    if (query.kind) where.push(`kind = ${params.add(query.kind)}`);
    if (query.status) where.push(`status = ${params.add(query.status)}`);
    return this.listings.page('certificates', CERTIFICATE_COLUMNS, where, params, query, certificateFromRow);
  }

  async recordServerCertificate(certificate: ServerCertificate): Promise<void> {
    await this.db.changes(INSERT_SERVER_CERTIFICATE, [
      certificate.serial,
      certificate.subject,
      certificate.notBefore.getTime(),
      certificate.notAfter.getTime(),
      certificate.issuedAt.getTime(),
      certificate.der,
    ]);
  }
}
