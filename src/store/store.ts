/**
 * The store's interface: domain operations, each atomic on its own and returning a
 * Promise so that another backend (PostgreSQL for several stateless instances) can be
 * added without touching policy code. It checks invariants it can check in one
 * transaction (a token is redeemed at most once) but decides no policy.
 */

/** A bootstrap token as stored (never the token itself, only its hash). */
export interface TokenRecord {
  readonly id: string;
  readonly label: string | null;
  /** The device id the token is bound to, or null for an unbound token. */
  readonly deviceId: string | null;
  readonly createdAt: Date;
  readonly createdBy: string;
  readonly expiresAt: Date;
  readonly usedAt: Date | null;
  readonly usedByDevice: string | null;
  readonly csrSha256: string | null;
  readonly serial: string | null;
  readonly revokedAt: Date | null;
  /** A bound token may re-provision an existing device only when an admin minted it. */
  readonly mayReprovision: boolean;
}

/** A token to insert. */
export interface NewToken {
  readonly id: string;
  readonly hash: Buffer;
  readonly label: string | null;
  readonly deviceId: string | null;
  readonly createdAt: Date;
  readonly createdBy: string;
  readonly expiresAt: Date;
  readonly mayReprovision: boolean;
}

/** Token lifecycle states as listed by operators. */
export type TokenStatus = 'unused' | 'used' | 'expired' | 'revoked';

/** A device in the inventory. */
export interface DeviceRecord {
  readonly id: string;
  readonly status: 'active' | 'revoked';
  readonly enrolledAt: Date;
  readonly updatedAt: Date;
  readonly currentSerial: string | null;
  readonly revokedAt: Date | null;
  readonly revocationReason: string | null;
  /** After a renewal: the certificate it replaced, honoured until the new one is used or `retireAt`. */
  readonly retiringSerial: string | null;
  readonly retireAt: Date | null;
  /** How the device last enrolled: imprint's JSON API, EST or SCEP. */
  readonly enrolledVia: EnrollmentProtocol;
  /** The EST path label (RFC 7030 3.2.2) it enrolled through, if any. */
  readonly enrollmentLabel: string | null;
}

/** The protocols a device may enroll with. */
export type EnrollmentProtocol = 'json' | 'est' | 'scep';

/** A certificate imprint issued. */
export interface CertificateRecord {
  readonly serial: string;
  readonly kind: 'device' | 'operator';
  readonly subject: string;
  readonly deviceId: string | null;
  readonly spkiSha256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly issuedAt: Date;
  readonly status: 'active' | 'revoked';
  readonly revokedAt: Date | null;
  readonly revocationReason: string | null;
  readonly tokenId: string | null;
  readonly der: Buffer;
}

/** Where a certificate stands, without the certificate. */
export type CertificateStatus = Pick<CertificateRecord, 'status' | 'revokedAt' | 'revocationReason'>;

/** A certificate to insert (always active when recorded). */
export type NewCertificate = Omit<CertificateRecord, 'status' | 'revokedAt' | 'revocationReason'> & {
  /** For a renewal: the certificate the device renewed with, and the CSR it sent. */
  readonly renewedFrom?: string | undefined;
  readonly csrSha256?: string | undefined;
};

/** RFC 5280 5.3.1 reason names accepted for end-entity certificates. */
export const REVOCATION_REASONS = [
  'unspecified',
  'keyCompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'privilegeWithdrawn',
] as const;

/** A revocation reason name. */
export type RevocationReason = (typeof REVOCATION_REASONS)[number];

/** A revoked certificate as a CRL or OCSP answer lists it. */
export interface RevokedEntry {
  readonly serial: string;
  readonly revokedAt: Date;
  readonly reason: RevocationReason;
  readonly notAfter: Date;
}

/** Which CA's CRL. */
export type CrlScope = 'issuer' | 'root';

/** A CRL as built and shared by every process on the store. */
export interface PublishedCrl {
  readonly scope: CrlScope;
  /** The revocation sequence the CRL includes at least. */
  readonly revocationSeq: number;
  readonly crlNumber: number;
  readonly builtAt: Date;
  readonly der: Buffer;
}

/** Operator roles: an admin may do everything, a provisioner may only mint and list tokens. */
export type OperatorRole = 'admin' | 'provisioner';

/** An operator identity. */
export interface OperatorRecord {
  readonly name: string;
  readonly role: OperatorRole;
  readonly status: 'active' | 'revoked';
  readonly createdAt: Date;
  readonly createdBy: string;
  readonly revokedAt: Date | null;
}

/** What a revocation did; `revoked` is empty when there was nothing left to revoke. */
export interface RevocationResult {
  readonly revoked: readonly string[];
  /** The revocation sequence number after it (unchanged when nothing was revoked). */
  readonly seq: number;
}

/** One audit event; the store chains it to the one before. */
export interface AuditEventInput {
  readonly at: Date;
  /** Who: `device:<id>`, `operator:<name>`, `cli:<user>` or `anonymous`. */
  readonly actor: string;
  readonly action: string;
  /** `ok` or the error code the request ended with. */
  readonly outcome: string;
  readonly source?: string | undefined;
  readonly tokenId?: string | undefined;
  readonly deviceId?: string | undefined;
  readonly serial?: string | undefined;
  readonly detail?: Record<string, unknown> | undefined;
}

/** A stored audit event. */
export interface AuditEvent extends AuditEventInput {
  readonly id: number;
  readonly prevHash: string;
  readonly hash: string;
}

/** A listing cursor that the store did not hand out. */
export class InvalidCursorError extends Error {
  constructor() {
    super('invalid cursor');
    this.name = 'InvalidCursorError';
  }
}

/** A page of results and the opaque cursor of the next page (null on the last one). */
export interface Page<T> {
  readonly items: T[];
  readonly nextCursor: string | null;
}

/** Redeem a token and record the device and its certificate in one transaction. */
export interface Redemption {
  readonly tokenId: string;
  readonly now: Date;
  readonly csrSha256: string;
  /**
   * `unbound` requires the device not to exist and its id not to be bound to another
   * token still waiting for its device; `create` (a bound token that may not re-provision)
   * requires the device not to exist; `reprovision` reactivates an existing device and
   * revokes its certificates as superseded.
   */
  readonly mode: 'unbound' | 'create' | 'reprovision';
  readonly certificate: NewCertificate & { readonly deviceId: string };
  readonly audit: AuditEventInput;
  /** Recorded with the device; `json` and no label when absent. */
  readonly via?: { readonly protocol: EnrollmentProtocol; readonly label?: string | undefined } | undefined;
}

/** Why a redemption did not commit; nothing was written. */
export type RedemptionConflict = 'token_unavailable' | 'device_exists' | 'key_reused';

/**
 * Record a renewal: a new certificate for an existing active device, made while it
 * authenticated with `presentedSerial`. Every other certificate of the device is revoked
 * as superseded at once; the presented one is kept until the new one is first used or
 * until `retireAt`, so the device has at most two.
 */
export interface Renewal {
  readonly now: Date;
  readonly presentedSerial: string;
  readonly retireAt: Date;
  /** At most `max` renewals of this device issued after `since`. */
  readonly limit: { readonly max: number; readonly since: Date };
  readonly certificate: NewCertificate & { readonly deviceId: string };
  readonly audit: AuditEventInput;
}

/** Why a renewal did not commit; nothing was written. */
export type RenewalConflict =
  | { readonly conflict: 'device_not_active' | 'certificate_not_current' | 'key_reused' }
  /** The same renewal (same certificate, same CSR) was recorded before: `serial` answers it. */
  | { readonly conflict: 'already_renewed'; readonly serial: string }
  | { readonly conflict: 'renewal_limit'; readonly retryAt: Date };

/** A server TLS certificate issued by the issuing CA (OCSP answers for it too). */
export interface ServerCertificate {
  readonly serial: string;
  readonly subject: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly issuedAt: Date;
  readonly der: Buffer;
}

/** The domain operations of imprint's storage. */
export interface Store {
  getSettings(): Promise<Record<string, string>>;
  putSettings(settings: Record<string, string>): Promise<void>;

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
  redeemTokenAndRecordCertificate(
    redemption: Redemption,
  ): Promise<{ ok: true } | { ok: false; conflict: RedemptionConflict }>;
  recordRenewal(renewal: Renewal): Promise<{ ok: true } | ({ ok: false } & RenewalConflict)>;
  /** The certificate a renewal with `presentedSerial` and this CSR already produced (revoked or not), if any. */
  findRenewal(presentedSerial: string, csrSha256: string): Promise<CertificateRecord | undefined>;
  /** How many renewals of a device were issued after `since`, and when the oldest of them was. */
  renewalCount(deviceId: string, since: Date): Promise<{ count: number; oldest: Date | null }>;
  /**
   * The device authenticated with its current certificate: revokes (superseded) the one
   * a renewal replaced, if it still waits. Nothing happens when `serial` is not current.
   */
  retireReplaced(deviceId: string, serial: string, audit: AuditEventInput): Promise<RevocationResult>;
  /** Revokes (superseded) every replaced certificate whose grace period ended by `audit.at`. */
  retireOverdue(audit: AuditEventInput): Promise<RevocationResult>;

  /** Revokes a device and all its unexpired certificates; undefined when there is no such device. */
  revokeDevice(id: string, reason: RevocationReason, audit: AuditEventInput): Promise<(RevocationResult & { device: DeviceRecord }) | undefined>;
  /** Revokes one certificate; undefined when there is no such certificate. */
  revokeCertificate(serial: string, reason: RevocationReason, audit: AuditEventInput): Promise<(RevocationResult & { certificate: CertificateRecord }) | undefined>;
  /** The current revocation sequence number: cheap enough to poll. */
  revocationSeq(): Promise<number>;
  /** Serials revoked after a sequence number. */
  revokedSince(seq: number): Promise<string[]>;
  /** Revoked certificates not yet expired at `now`, for the CRL. */
  listRevoked(now: Date): Promise<RevokedEntry[]>;
  /** Takes the next CRL number. */
  nextCrlNumber(): Promise<number>;
  /** The number of the CRL last published for `scope`, without reading the CRL: cheap per request. */
  publishedCrlNumber(scope: CrlScope): Promise<number | undefined>;
  /** The CRL last published for `scope`. */
  publishedCrl(scope: CrlScope): Promise<PublishedCrl | undefined>;
  /** Publishes `crl` unless one with a higher number is there already; returns the one published after. */
  publishCrl(crl: PublishedCrl): Promise<PublishedCrl>;

  /** Records a new operator (or re-issues a revoked one) with its certificate. */
  recordOperator(
    operator: { name: string; role: OperatorRole; createdBy: string; certificate: NewCertificate },
    audit: AuditEventInput,
  ): Promise<{ ok: true } | { ok: false; conflict: 'operator_exists' }>;
  findOperator(name: string): Promise<OperatorRecord | undefined>;
  listOperators(): Promise<OperatorRecord[]>;
  /**
   * Revokes an operator, its certificates and the unused tokens whose creator is
   * `tokensCreatedBy`; undefined when there is no such operator.
   */
  revokeOperator(
    name: string,
    tokensCreatedBy: string,
    audit: AuditEventInput,
  ): Promise<(RevocationResult & { operator: OperatorRecord; revokedTokens: number }) | undefined>;

  /** Records a TLS certificate issued to the server itself. */
  recordServerCertificate(certificate: ServerCertificate): Promise<void>;

  appendAudit(event: AuditEventInput): Promise<void>;
  /** Audit events in id order, after `afterId`, from `since`. */
  listAudit(query: { since?: Date | undefined; afterId?: number | undefined; limit: number }): Promise<AuditEvent[]>;
  /** Audit events in id order from `since`, a page at a time with an opaque cursor. */
  pageAudit(query: { since?: Date | undefined; cursor?: string | undefined; limit: number }): Promise<Page<AuditEvent>>;

  /**
   * Writes a consistent copy of the whole store to `file` (which must not exist) while
   * others keep writing; the copy is checked before it takes the name.
   */
  backup(file: string): Promise<{ readonly bytes: number }>;

  /**
   * Active certificates still valid at `now` that expire by `soon` and by `later` (for the
   * expiry gauges); optional, a backend without it has no such gauge.
   */
  countExpiring?(now: Date, soon: Date, later: Date): Promise<{ readonly soon: number; readonly later: number }>;

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
  /** Revoked certificates not yet expired at `now`: the entries of the CRL built now. */
  countRevoked(now: Date): Promise<number>;
  /** Tokens grouped by label (the batch), newest batch first, with how many are in each state at `now`. */
  listTokenBatches(query: { now: Date; limit: number }): Promise<TokenBatchRecord[]>;
  /** Audit events newest first, filtered by actor, device and action (all exact), a page at a time. */
  browseAudit(query: AuditFilter & { limit: number; cursor?: string | undefined }): Promise<Page<AuditEvent>>;

  close(): Promise<void>;
}

/** How browseDevices orders the fleet: newest enrollment first, or soonest expiry first. */
export type DeviceSort = 'enrolled' | 'expiry';

/** A device with when its current certificate expires. */
export interface DeviceListing extends DeviceRecord {
  readonly currentNotAfter: Date | null;
}

/** The fleet's size at a glance. */
export interface FleetCounts {
  readonly active: number;
  readonly revoked: number;
  /** Active device certificates that expire within the window asked for. */
  readonly expiringSoon: number;
}

/** The tokens of one label (a batch), by state. */
export interface TokenBatchRecord {
  /** Null for the tokens minted without a label. */
  readonly label: string | null;
  readonly firstCreatedAt: Date;
  readonly lastCreatedAt: Date;
  readonly lastExpiresAt: Date;
  /** Who minted the batch (the first minter when several did). */
  readonly createdBy: string;
  readonly total: number;
  readonly unused: number;
  readonly used: number;
  readonly expired: number;
  readonly revoked: number;
}

/** Which audit events to list; every field matches exactly. */
export interface AuditFilter {
  readonly actor?: string | undefined;
  readonly deviceId?: string | undefined;
  readonly action?: string | undefined;
}
