/**
 * The store's interface: domain operations, each atomic on its own and returning a
 * Promise, grouped in narrow roles that each service declares for what it uses. SQLite
 * (embedded) and PostgreSQL (several instances on one database) implement every role.
 * A store checks the invariants it can check in one transaction (a token is redeemed at
 * most once) but decides no policy: reasons, limits and deadlines come in with the call.
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
  DeviceSort,
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
  TokenStatus,
} from '../enrollment/model.js';

/** Settings chosen at init (public URL, trust domain, ...) and the store's own keys. */
export interface SettingsStore {
  getSettings(): Promise<Record<string, string>>;
  /**
   * Writes `settings` in one transaction; with `unlessPresent`, only when no setting of that
   * key exists yet, decided in the same transaction (init racing another init or a
   * migrate-store on a shared database). False when nothing was written for that reason.
   * `alongside` runs inside that transaction once the write is decided, before it commits:
   * when it throws (or the process dies in it) nothing is written, so init can create the CA
   * files there and a failed or interrupted init leaves no settings claiming the store.
   */
  putSettings(settings: Record<string, string>, unlessPresent?: string, alongside?: () => void): Promise<boolean>;
}

/** Bootstrap tokens: minting, finding, listing and revoking them. */
export interface TokenStore {
  /**
   * Inserts a batch of tokens; with `minter`, only while that operator is active (one
   * revoked while its request was in flight mints nothing: `ok` is false).
   */
  createTokens(tokens: readonly NewToken[], audit: AuditEventInput, minter?: string): Promise<{ ok: boolean }>;
  findTokenByHash(hash: Buffer): Promise<TokenRecord | undefined>;
  listTokens(query: {
    status?: TokenStatus | undefined;
    label?: string | undefined;
    limit: number;
    cursor?: string | undefined;
    now: Date;
  }): Promise<Page<TokenRecord>>;
  /** Revokes one unused token and returns it as it stands after; undefined when no token has that id. */
  revokeToken(id: string, audit: AuditEventInput): Promise<TokenRecord | undefined>;
  /** Revokes every unused token of a batch; returns how many. */
  revokeTokensByLabel(label: string, audit: AuditEventInput): Promise<number>;
  /** Tokens grouped by label (the batch), newest batch first, with how many are in each state at `now`. */
  listTokenBatches(query: { now: Date; limit: number }): Promise<TokenBatchRecord[]>;
}

/** Issuing to devices: a token's one enrollment, and renewals. */
export interface RedemptionStore {
  redeemTokenAndRecordCertificate(redemption: Redemption): Promise<{ ok: true } | { ok: false; conflict: RedemptionConflict }>;
  recordRenewal(renewal: Renewal): Promise<{ ok: true } | ({ ok: false } & RenewalConflict)>;
  /** The certificate a renewal with `presentedSerial` and this CSR already produced (revoked or not), if any. */
  findRenewal(presentedSerial: string, csrSha256: string): Promise<CertificateRecord | undefined>;
  /** How many renewals of a device were issued after `since`, and when the oldest of them was. */
  renewalCount(deviceId: string, since: Date): Promise<{ count: number; oldest: Date | null }>;
}

/** The inventory: devices and the certificates issued to them, to operators and to the server. */
export interface InventoryStore {
  findDevice(id: string): Promise<DeviceRecord | undefined>;
  /** Those of `ids` that are devices (active or revoked). */
  existingDeviceIds(ids: readonly string[]): Promise<string[]>;
  listDevices(query: {
    status?: DeviceRecord['status'] | undefined;
    /** Substring of the device id. */
    q?: string | undefined;
    limit: number;
    cursor?: string | undefined;
  }): Promise<Page<DeviceRecord>>;
  /**
   * Devices in a chosen order (the console's fleet): newest enrollment first, or soonest
   * expiry of the current certificate first; keyset pages, each read from an index.
   */
  browseDevices(query: {
    sort: DeviceSort;
    status?: DeviceRecord['status'] | undefined;
    /** Substring of the device id. */
    q?: string | undefined;
    limit: number;
    cursor?: string | undefined;
  }): Promise<Page<DeviceListing>>;
  /** Devices by status, and active device certificates valid at `now` that expire by `soon`. */
  countFleet(now: Date, soon: Date): Promise<FleetCounts>;
  /** Active certificates still valid at `now` that expire by `soon` and by `later` (the expiry gauges). */
  countExpiring(now: Date, soon: Date, later: Date): Promise<{ readonly soon: number; readonly later: number }>;
  findCertificate(serial: string): Promise<CertificateRecord | undefined>;
  /** Just the status of a certificate (OCSP), the server's own included: skips reading its DER. */
  certificateStatus(serial: string): Promise<CertificateStatus | undefined>;
  listCertificates(query: {
    deviceId?: string | undefined;
    kind?: CertificateRecord['kind'] | undefined;
    status?: CertificateRecord['status'] | undefined;
    limit: number;
    cursor?: string | undefined;
  }): Promise<Page<CertificateRecord>>;
  /** Records a TLS certificate issued to the server itself. */
  recordServerCertificate(certificate: ServerCertificate): Promise<void>;
}

/** Revoking, and following what was revoked (the sequence every process watches). */
export interface RevocationStore {
  /** Revokes a device and all its certificates; undefined when there is no such device. */
  revokeDevice(id: string, reason: RevocationReason, audit: AuditEventInput): Promise<(RevocationResult & { device: DeviceRecord }) | undefined>;
  /** Revokes one certificate; undefined when there is no such certificate. */
  revokeCertificate(serial: string, reason: RevocationReason, audit: AuditEventInput): Promise<(RevocationResult & { certificate: CertificateRecord }) | undefined>;
  /**
   * The device authenticated with its current certificate: revokes, for `reason`, the one a
   * renewal replaced, if it still waits. Nothing happens when `serial` is not current.
   */
  retireReplaced(deviceId: string, serial: string, reason: RevocationReason, audit: AuditEventInput): Promise<RevocationResult>;
  /** Revokes, for `reason`, every replaced certificate whose grace period ended by `audit.at`. */
  retireOverdue(reason: RevocationReason, audit: AuditEventInput): Promise<RevocationResult>;
  /** The current revocation sequence number: cheap enough to poll. */
  revocationSeq(): Promise<number>;
  /**
   * Calls `listener` soon after a revocation is recorded, by this process or (PostgreSQL's
   * notifications) by any process on the database; returns the unsubscription. A hint that
   * shortens the wait, not a guarantee: watchers keep polling revocationSeq.
   */
  onRevocation(listener: () => void): () => void;
  /** Serials revoked after a sequence number. */
  revokedSince(seq: number): Promise<string[]>;
  /**
   * The certificates revoked after sequence `afterSeq` up to `upToSeq` and not yet expired at
   * `now`, in revocation order (sequence, then serial): the CRL's entries, or those to add.
   * In pages, read one at a time as the caller takes them: a first CRL of a million entries
   * never holds them all as rows.
   */
  listRevoked(now: Date, afterSeq: number, upToSeq: number): AsyncIterable<readonly RevokedEntry[]>;
  /** Revoked certificates not yet expired at `now`: the entries of the CRL built now. */
  countRevoked(now: Date): Promise<number>;
}

/** CRLs as built and shared by every process on the store. */
export interface CrlStore {
  /**
   * Takes the next CRL number: above every number taken and every CRL published, so a
   * counter set back or a published row with a number from elsewhere is built past, not
   * stuck under.
   */
  nextCrlNumber(): Promise<number>;
  /**
   * What a CRL request checks, in one small read: the current revocation sequence, and the
   * number of the CRL last published for `scope` (undefined when none is).
   */
  crlState(scope: CrlScope): Promise<{ readonly revocationSeq: number; readonly publishedNumber: number | undefined }>;
  /** What reproduces the CRL last published for `scope`. */
  publishedCrl(scope: CrlScope): Promise<PublishedCrl | undefined>;
  /**
   * Publishes `crl` unless one with a higher number is there already, and ends any claim on
   * building its scope; returns the one published after.
   */
  publishCrl(crl: PublishedCrl): Promise<PublishedCrl>;
  /**
   * Claims the building of `scope`'s next CRL until `until`: true unless another process
   * holds a claim that lasts past `now` (the caller then waits for that one's CRL).
   */
  claimCrlBuild(scope: CrlScope, now: Date, until: Date): Promise<boolean>;
  /** Gives a claim up without publishing (the build failed). */
  releaseCrlBuild(scope: CrlScope): Promise<void>;
}

/** Operator identities and their certificates. */
export interface OperatorStore {
  /** Records a new operator (or re-issues a revoked one) with its certificate. */
  recordOperator(
    operator: { name: string; role: OperatorRole; createdBy: string; certificate: NewCertificate },
    audit: AuditEventInput,
  ): Promise<{ ok: true } | { ok: false; conflict: 'operator_exists' }>;
  findOperator(name: string): Promise<OperatorRecord | undefined>;
  listOperators(): Promise<OperatorRecord[]>;
  /**
   * Revokes an operator, its certificates (for `reason`) and the unused tokens whose
   * creator is `tokensCreatedBy`; undefined when there is no such operator.
   */
  revokeOperator(
    name: string,
    tokensCreatedBy: string,
    reason: RevocationReason,
    audit: AuditEventInput,
  ): Promise<(RevocationResult & { operator: OperatorRecord; revokedTokens: number }) | undefined>;
}

/** The audit log: one hash chain, appended to by every operation that changes something. */
export interface AuditStore {
  appendAudit(event: AuditEventInput): Promise<void>;
  /** Audit events in id order, after `afterId`, from `since`. */
  listAudit(query: { since?: Date | undefined; afterId?: number | undefined; limit: number }): Promise<AuditEvent[]>;
  /** Audit events in id order from `since`, a page at a time with an opaque cursor. */
  pageAudit(query: { since?: Date | undefined; cursor?: string | undefined; limit: number }): Promise<Page<AuditEvent>>;
  /** Audit events newest first, filtered by actor, device and action (all exact), a page at a time. */
  browseAudit(query: AuditFilter & { limit: number; cursor?: string | undefined }): Promise<Page<AuditEvent>>;
}

/** Taking a copy and letting go. */
export interface StoreLifecycle {
  /**
   * Writes a consistent copy of the whole store to `file` (which must not exist) while
   * others keep writing; the copy is checked before it takes the name.
   */
  backup(file: string): Promise<{ readonly bytes: number }>;
  close(): Promise<void>;
}

/** Every role: what a backend implements and what an instance opens. */
export type Store = SettingsStore &
  TokenStore &
  RedemptionStore &
  InventoryStore &
  RevocationStore &
  CrlStore &
  OperatorStore &
  AuditStore &
  StoreLifecycle;
