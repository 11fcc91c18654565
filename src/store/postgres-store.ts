/**
 * The PostgreSQL store: several imprint instances, each with its own pool, sharing one
 * database. Each role is a part of its own in postgres/; this file puts them together.
 * Write transactions hold one advisory lock from their first statement to their commit
 * (postgres/locks.ts says why), and the writes that come in floods share transactions
 * (postgres/group-commit.ts).
 */
import type {
  AuditEvent,
  AuditEventInput,
  AuditFilter,
  CertificateRecord,
  CertificateStatus,
  CrlScope,
  DeviceListing,
  DeviceRecord,
  FleetCounts,
  NewCertificate,
  NewToken,
  OperatorRecord,
  OperatorRole,
  Page,
  PublishedCrl,
  Redemption,
  RedemptionConflict,
  Renewal,
  RenewalConflict,
  RevocationReason,
  RevocationResult,
  RevokedEntry,
  ServerCertificate,
  TokenBatchRecord,
  TokenRecord,
} from '../enrollment/model.js';
import { PostgresAudit } from './postgres/audit.js';
import { connectClient, Postgres } from './postgres/connection.js';
import { PostgresCrls } from './postgres/crls.js';
import { GroupCommit } from './postgres/group-commit.js';
import { PostgresInventory } from './postgres/inventory.js';
import { Listings } from './postgres/listing.js';
import { migrate } from './postgres/migrate.js';
import { RevocationNotifications } from './postgres/notifications.js';
import { PostgresOperators } from './postgres/operators.js';
import { PostgresRedemption } from './postgres/redemption.js';
import { PostgresRevocation } from './postgres/revocation.js';
import { PostgresSettings } from './postgres/settings.js';
import { PostgresTokens } from './postgres/tokens.js';
import type { Store } from './store.js';

/** Applies pending migrations to the database at `url` (`imprint migrate`); returns their versions. */
export async function migratePostgres(url: string): Promise<number[]> {
  const client = await connectClient(url);
  try {
    return await migrate(client);
  } finally {
    await client.end();
  }
}

/** PostgreSQL implementation of Store. */
export class PostgresStore implements Store {
  private readonly settings: PostgresSettings;
  private readonly tokens: PostgresTokens;
  private readonly redemption: PostgresRedemption;
  private readonly inventory: PostgresInventory;
  private readonly revocation: PostgresRevocation;
  private readonly crls: PostgresCrls;
  private readonly operators: PostgresOperators;
  private readonly audit: PostgresAudit;

  private constructor(
    private readonly db: Postgres,
    listings: Listings,
    /** Enrollments, renewals and refusals' audit events: the writes that come in floods. */
    private readonly groupCommit: GroupCommit,
    private readonly notifications: RevocationNotifications,
  ) {
    this.settings = new PostgresSettings(db);
    this.tokens = new PostgresTokens(db, listings);
    this.redemption = new PostgresRedemption(db, groupCommit);
    this.inventory = new PostgresInventory(db, listings);
    this.revocation = new PostgresRevocation(db, notifications);
    this.crls = new PostgresCrls(db);
    this.operators = new PostgresOperators(db);
    this.audit = new PostgresAudit(db, groupCommit, listings);
  }

  /** Opens a store on the database at `url`, applying pending migrations first. */
  static async open(url: string): Promise<PostgresStore> {
    await migratePostgres(url);
    const db = Postgres.connect(url);
    try {
      return new PostgresStore(db, await Listings.open(db), new GroupCommit(db), new RevocationNotifications(url));
    } catch (error) {
      await db.end();
      throw error;
    }
  }

  // Settings
  getSettings(): Promise<Record<string, string>> {
    return this.settings.getSettings();
  }
  putSettings(settings: Record<string, string>, unlessPresent?: string): Promise<boolean> {
    return this.settings.putSettings(settings, unlessPresent);
  }

  // Tokens
  createTokens(tokens: readonly NewToken[], audit: AuditEventInput, minter?: string): Promise<{ ok: boolean }> {
    return this.tokens.createTokens(tokens, audit, minter);
  }
  findTokenByHash(hash: Buffer): Promise<TokenRecord | undefined> {
    return this.tokens.findTokenByHash(hash);
  }
  listTokens(query: Parameters<Store['listTokens']>[0]): Promise<Page<TokenRecord>> {
    return this.tokens.listTokens(query);
  }
  revokeToken(id: string, audit: AuditEventInput): Promise<TokenRecord | undefined> {
    return this.tokens.revokeToken(id, audit);
  }
  revokeTokensByLabel(label: string, audit: AuditEventInput): Promise<number> {
    return this.tokens.revokeTokensByLabel(label, audit);
  }
  listTokenBatches(query: { now: Date; limit: number }): Promise<TokenBatchRecord[]> {
    return this.tokens.listTokenBatches(query);
  }

  // Redemption
  redeemTokenAndRecordCertificate(redemption: Redemption): Promise<{ ok: true } | { ok: false; conflict: RedemptionConflict }> {
    return this.redemption.redeemTokenAndRecordCertificate(redemption);
  }
  recordRenewal(renewal: Renewal): Promise<{ ok: true } | ({ ok: false } & RenewalConflict)> {
    return this.redemption.recordRenewal(renewal);
  }
  findRenewal(presentedSerial: string, csrSha256: string): Promise<CertificateRecord | undefined> {
    return this.redemption.findRenewal(presentedSerial, csrSha256);
  }
  renewalCount(deviceId: string, since: Date): Promise<{ count: number; oldest: Date | null }> {
    return this.redemption.renewalCount(deviceId, since);
  }

  // Inventory
  findDevice(id: string): Promise<DeviceRecord | undefined> {
    return this.inventory.findDevice(id);
  }
  existingDeviceIds(ids: readonly string[]): Promise<string[]> {
    return this.inventory.existingDeviceIds(ids);
  }
  listDevices(query: Parameters<Store['listDevices']>[0]): Promise<Page<DeviceRecord>> {
    return this.inventory.listDevices(query);
  }
  browseDevices(query: Parameters<Store['browseDevices']>[0]): Promise<Page<DeviceListing>> {
    return this.inventory.browseDevices(query);
  }
  countFleet(now: Date, soon: Date): Promise<FleetCounts> {
    return this.inventory.countFleet(now, soon);
  }
  countExpiring(now: Date, soon: Date, later: Date): Promise<{ readonly soon: number; readonly later: number }> {
    return this.inventory.countExpiring(now, soon, later);
  }
  findCertificate(serial: string): Promise<CertificateRecord | undefined> {
    return this.inventory.findCertificate(serial);
  }
  certificateStatus(serial: string): Promise<CertificateStatus | undefined> {
    return this.inventory.certificateStatus(serial);
  }
  listCertificates(query: Parameters<Store['listCertificates']>[0]): Promise<Page<CertificateRecord>> {
    return this.inventory.listCertificates(query);
  }
  recordServerCertificate(certificate: ServerCertificate): Promise<void> {
    return this.inventory.recordServerCertificate(certificate);
  }

  // Revocation
  revokeDevice(id: string, reason: RevocationReason, audit: AuditEventInput): Promise<(RevocationResult & { device: DeviceRecord }) | undefined> {
    return this.revocation.revokeDevice(id, reason, audit);
  }
  revokeCertificate(
    serial: string,
    reason: RevocationReason,
    audit: AuditEventInput,
  ): Promise<(RevocationResult & { certificate: CertificateRecord }) | undefined> {
    return this.revocation.revokeCertificate(serial, reason, audit);
  }
  retireReplaced(deviceId: string, serial: string, reason: RevocationReason, audit: AuditEventInput): Promise<RevocationResult> {
    return this.revocation.retireReplaced(deviceId, serial, reason, audit);
  }
  retireOverdue(reason: RevocationReason, audit: AuditEventInput): Promise<RevocationResult> {
    return this.revocation.retireOverdue(reason, audit);
  }
  onRevocation(listener: () => void): () => void {
    return this.revocation.onRevocation(listener);
  }
  revocationSeq(): Promise<number> {
    return this.revocation.revocationSeq();
  }
  revokedSince(seq: number): Promise<string[]> {
    return this.revocation.revokedSince(seq);
  }
  listRevoked(now: Date): Promise<RevokedEntry[]> {
    return this.revocation.listRevoked(now);
  }
  countRevoked(now: Date): Promise<number> {
    return this.revocation.countRevoked(now);
  }

  // CRLs
  nextCrlNumber(): Promise<number> {
    return this.crls.nextCrlNumber();
  }
  publishedCrlNumber(scope: CrlScope): Promise<number | undefined> {
    return this.crls.publishedCrlNumber(scope);
  }
  publishedCrl(scope: CrlScope): Promise<PublishedCrl | undefined> {
    return this.crls.publishedCrl(scope);
  }
  publishCrl(crl: PublishedCrl): Promise<PublishedCrl> {
    return this.crls.publishCrl(crl);
  }
  claimCrlBuild(scope: CrlScope, now: Date, until: Date): Promise<boolean> {
    return this.crls.claimCrlBuild(scope, now, until);
  }
  releaseCrlBuild(scope: CrlScope): Promise<void> {
    return this.crls.releaseCrlBuild(scope);
  }

  // Operators
  recordOperator(
    operator: { name: string; role: OperatorRole; createdBy: string; certificate: NewCertificate },
    audit: AuditEventInput,
  ): Promise<{ ok: true } | { ok: false; conflict: 'operator_exists' }> {
    return this.operators.recordOperator(operator, audit);
  }
  findOperator(name: string): Promise<OperatorRecord | undefined> {
    return this.operators.findOperator(name);
  }
  listOperators(): Promise<OperatorRecord[]> {
    return this.operators.listOperators();
  }
  revokeOperator(
    name: string,
    tokensCreatedBy: string,
    reason: RevocationReason,
    audit: AuditEventInput,
  ): Promise<(RevocationResult & { operator: OperatorRecord; revokedTokens: number }) | undefined> {
    return this.operators.revokeOperator(name, tokensCreatedBy, reason, audit);
  }

  // Audit
  appendAudit(event: AuditEventInput): Promise<void> {
    return this.audit.appendAudit(event);
  }
  listAudit(query: { since?: Date | undefined; afterId?: number | undefined; limit: number }): Promise<AuditEvent[]> {
    return this.audit.listAudit(query);
  }
  pageAudit(query: { since?: Date | undefined; cursor?: string | undefined; limit: number }): Promise<Page<AuditEvent>> {
    return this.audit.pageAudit(query);
  }
  browseAudit(query: AuditFilter & { limit: number; cursor?: string | undefined }): Promise<Page<AuditEvent>> {
    return this.audit.browseAudit(query);
  }

  // Lifecycle
  async backup(): Promise<{ readonly bytes: number }> {
    throw new Error(
      'imprint backup copies SQLite stores only: back up PostgreSQL with its own tools (pg_dump, or base backups with WAL archiving for point-in-time recovery)',
    );
  }

  /** Commits the writes still queued, then closes every connection. */
  async close(): Promise<void> {
    await this.notifications.close();
    await this.groupCommit.drain();
    await this.db.end();
  }
}
