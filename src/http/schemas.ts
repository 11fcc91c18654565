/** Schemas shared by routes: request bodies and the contract's response shapes. */
import { Type } from './json-schema.js';
import { MAX_CSR_DER_BYTES } from '../ca/csr.js';
import { MAX_TOKENS_PER_REQUEST, MAX_TOKEN_TTL_SECONDS, MIN_TOKEN_TTL_SECONDS } from '../enrollment/tokens.js';

/** {"error", "message"} */
export const ErrorBodySchema = Type.Object({ error: Type.String(), message: Type.String() });

/** A CSR as PEM or base64 DER; the length cap leaves room for PEM armour and line breaks. */
export const CsrBodySchema = Type.Object(
  { csr: Type.String({ minLength: 1, maxLength: Math.ceil((MAX_CSR_DER_BYTES * 4) / 3) * 2 }) },
  { additionalProperties: false },
);

/**
 * A name or id in a URL path, as the router decoded it: printable, so that no control
 * character reaches a pattern or the store (PostgreSQL refuses a NUL with an error, which
 * would be a 500). Query parameters get the same check in installRequestChecks.
 */
export const PathName = (maxLength: number) => Type.String({ minLength: 1, maxLength, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });

/** The enroll and renew response. */
export const EnrollmentResultSchema = Type.Object({
  deviceId: Type.String(),
  serial: Type.String(),
  certificate: Type.String(),
  chain: Type.Array(Type.String()),
  notAfter: Type.String(),
});

/** Error responses a route may give, for the schema's `response` map. */
export const errorResponses = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((status) => [status, ErrorBodySchema]));

/** A value or null (a JSON field that is always present). */
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);

/** A page of a listing: the items and the opaque cursor of the next page (null on the last). */
export const Page = <T extends Parameters<typeof Type.Array>[0]>(item: T) => Type.Object({ items: Type.Array(item), nextCursor: Nullable(Type.String()) });

/** `POST /v1/admin/tokens`: the tokens, shown this once. */
export const MintedTokensSchema = Type.Object({
  tokens: Type.Array(Type.Object({ id: Type.String(), token: Type.String(), deviceId: Nullable(Type.String()), expiresAt: Type.String() })),
});

/** A token as listed (never the secret). */
export const TokenViewSchema = Type.Object({
  id: Type.String(),
  status: Type.String(),
  label: Nullable(Type.String()),
  deviceId: Nullable(Type.String()),
  createdAt: Type.String(),
  createdBy: Type.String(),
  expiresAt: Type.String(),
  usedAt: Nullable(Type.String()),
  usedByDevice: Nullable(Type.String()),
  revokedAt: Nullable(Type.String()),
});
export const TokenPageSchema = Page(TokenViewSchema);

/** `POST /v1/admin/tokens/revoke`: the batch and how many of its unused tokens were revoked. */
export const RevokedBatchSchema = Type.Object({ label: Type.String(), revoked: Type.Integer() });

const deviceFields = {
  id: Type.String(),
  status: Type.String(),
  enrolledAt: Type.String(),
  updatedAt: Type.String(),
  currentSerial: Nullable(Type.String()),
  revokedAt: Nullable(Type.String()),
  revocationReason: Nullable(Type.String()),
};

/** A certificate as operators see it (`pem` only when one certificate is asked for). */
export const CertificateViewSchema = Type.Object({
  serial: Type.String(),
  kind: Type.String(),
  subject: Type.String(),
  deviceId: Nullable(Type.String()),
  status: Type.String(),
  notBefore: Type.String(),
  notAfter: Type.String(),
  issuedAt: Type.String(),
  revokedAt: Nullable(Type.String()),
  revocationReason: Nullable(Type.String()),
  pem: Type.Optional(Type.String()),
});

/**
 * A device as listed. Fields added to the view later pass through until described here
 * (the response serializer would otherwise drop them silently).
 */
export const DeviceViewSchema = Type.Object(deviceFields, { additionalProperties: true });
export const DevicePageSchema = Page(DeviceViewSchema);
/** One device with its certificate history. */
export const DeviceDetailSchema = Type.Object({ ...deviceFields, certificates: Type.Array(CertificateViewSchema) }, { additionalProperties: true });
/** A device after a revocation, with the serials it revoked. */
export const DeviceRevocationSchema = Type.Object(
  { ...deviceFields, certificates: Type.Array(CertificateViewSchema), revokedSerials: Type.Array(Type.String()) },
  { additionalProperties: true },
);

/** An audit event as shown to operators. */
export const AuditEventSchema = Type.Object({
  id: Type.Integer(),
  at: Type.String(),
  actor: Type.String(),
  action: Type.String(),
  outcome: Type.String(),
  source: Nullable(Type.String()),
  tokenId: Nullable(Type.String()),
  deviceId: Nullable(Type.String()),
  serial: Nullable(Type.String()),
  detail: Nullable(Type.Object({}, { additionalProperties: true })),
});
export const AuditPageSchema = Page(AuditEventSchema);

/** A token minting request (the admin API and the console take the same). */
export const MintRequestSchema = Type.Object(
  {
    count: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TOKENS_PER_REQUEST })),
    ttlSeconds: Type.Optional(Type.Integer({ minimum: MIN_TOKEN_TTL_SECONDS, maximum: MAX_TOKEN_TTL_SECONDS })),
    deviceIds: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, maxItems: MAX_TOKENS_PER_REQUEST })),
    label: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  },
  { additionalProperties: false },
);
