/**
 * The domain's records and vocabulary: what a token, a device, a certificate, an operator
 * and an audit event are, and the inputs of the operations that change them. Services,
 * routes and both stores speak these types; policy (which revocation reason applies
 * when) stays in the services.
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

/**
 * A revoked certificate as a CRL lists it. Times are milliseconds since the epoch: a first
 * CRL reads a million of these, and a Date each would cost more than encoding them.
 */
export interface RevokedEntry {
  readonly serial: string;
  readonly revokedAt: number;
  readonly reason: RevocationReason;
  readonly notAfter: number;
}

/** Which CA's CRL. */
export type CrlScope = 'issuer' | 'root';

/**
 * A CRL as built and shared by every process on the store: not its DER but what reproduces
 * it. Its entries are the certificates revoked up to `revocationSeq` that had not expired
 * at `builtAt`, in revocation order; with these fields and the signature, any process puts
 * the same bytes together.
 */
export interface PublishedCrl {
  readonly scope: CrlScope;
  /** The revocation sequence the CRL includes. */
  readonly revocationSeq: number;
  readonly crlNumber: number;
  readonly builtAt: Date;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  /** The signature over the TBSCertList (its algorithm is the issuer key's). */
  readonly signature: Buffer;
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
  /** Why a re-provisioned device's earlier certificates are revoked. */
  readonly supersede: RevocationReason;
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
  /** Why the device's other certificates are revoked. */
  readonly supersede: RevocationReason;
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
