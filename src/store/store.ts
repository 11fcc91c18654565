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
}

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

/** A certificate to insert (always active when recorded). */
export type NewCertificate = Omit<CertificateRecord, 'status' | 'revokedAt' | 'revocationReason'>;

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
   * `create` requires the device not to exist; `reprovision` (bound tokens) reactivates an
   * existing device and revokes its unexpired certificates as superseded.
   */
  readonly mode: 'create' | 'reprovision';
  readonly certificate: NewCertificate & { readonly deviceId: string };
  readonly audit: AuditEventInput;
}

/** Why a redemption did not commit; nothing was written. */
export type RedemptionConflict = 'token_unavailable' | 'device_exists' | 'key_reused';

/** Record a renewal: a new certificate for an existing active device. */
export interface Renewal {
  readonly now: Date;
  readonly certificate: NewCertificate & { readonly deviceId: string };
  readonly audit: AuditEventInput;
}

/** Why a renewal did not commit; nothing was written. */
export type RenewalConflict = 'device_not_active' | 'key_reused';

/** The domain operations of imprint's storage. */
export interface Store {
  getSettings(): Promise<Record<string, string>>;
  putSettings(settings: Record<string, string>): Promise<void>;

  createTokens(tokens: readonly NewToken[], audit: AuditEventInput): Promise<void>;
  findTokenByHash(hash: Buffer): Promise<TokenRecord | undefined>;
  listTokens(query: {
    status?: TokenStatus | undefined;
    label?: string | undefined;
    limit: number;
    cursor?: string | undefined;
    now: Date;
  }): Promise<Page<TokenRecord>>;
  /** Revokes one unused token; undefined when no token has that id. */
  revokeToken(id: string, audit: AuditEventInput): Promise<TokenRecord | undefined>;

  findDevice(id: string): Promise<DeviceRecord | undefined>;
  findCertificate(serial: string): Promise<CertificateRecord | undefined>;
  /** Another device that already has a certificate for this key, if any. */
  findKeyOwner(spkiSha256: string, exceptDeviceId: string): Promise<string | undefined>;

  redeemTokenAndRecordCertificate(
    redemption: Redemption,
  ): Promise<{ ok: true } | { ok: false; conflict: RedemptionConflict }>;
  recordRenewal(renewal: Renewal): Promise<{ ok: true } | { ok: false; conflict: RenewalConflict }>;

  appendAudit(event: AuditEventInput): Promise<void>;
  listAudit(query: { since?: Date | undefined; limit: number }): Promise<AuditEvent[]>;

  close(): Promise<void>;
}
