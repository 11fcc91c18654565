/** Schemas shared by routes: request bodies and the contract's response shapes. */
import { Type } from 'typebox';
import { MAX_CSR_DER_BYTES } from '../ca/csr.js';

/** {"error", "message"} */
export const ErrorBodySchema = Type.Object({ error: Type.String(), message: Type.String() });

/** A CSR as PEM or base64 DER; the length cap leaves room for PEM armour and line breaks. */
export const CsrBodySchema = Type.Object(
  { csr: Type.String({ minLength: 1, maxLength: Math.ceil((MAX_CSR_DER_BYTES * 4) / 3) * 2 }) },
  { additionalProperties: false },
);

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
