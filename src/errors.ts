/**
 * The one error catalogue. Any layer throws an ImprintError with a stable code; the HTTP
 * layer renders it as {"error", "message"} with the status named here, and the CLI prints
 * its message. Codes are part of the contract: never rename one.
 */
export const ERROR_STATUS = {
  bad_request: 400,
  csr_malformed: 400,
  csr_signature_invalid: 400,
  csr_key_unsupported: 400,
  csr_subject_invalid: 400,
  token_missing: 401,
  token_invalid: 401,
  token_expired: 401,
  token_revoked: 401,
  client_cert_required: 401,
  client_cert_invalid: 401,
  forbidden: 403,
  csr_subject_mismatch: 403,
  device_revoked: 403,
  not_found: 404,
  method_not_allowed: 405,
  token_used: 409,
  device_exists: 409,
  key_reused: 409,
  operator_exists: 409,
  request_timeout: 408,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  headers_too_large: 431,
  internal_error: 500,
  service_unavailable: 503,
} as const;

/** A stable, client-facing error code. */
export type ErrorCode = keyof typeof ERROR_STATUS;

/** An expected failure with a stable code; its message is safe to show to the client. */
export class ImprintError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryAfterSeconds: number | undefined;
  /** What the refusal was about, for the operator's log line (never shown to the client). */
  subject: ErrorSubject | undefined;

  constructor(code: ErrorCode, message: string, options: { retryAfterSeconds?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'ImprintError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  /** Records what the refusal was about (the layer that knows it adds it on the way out). */
  about(subject: ErrorSubject): this {
    this.subject = { ...subject, ...this.subject };
    return this;
  }
}

/** The token and device a refusal concerned, as far as known. */
export interface ErrorSubject {
  readonly tokenId?: string | undefined;
  readonly deviceId?: string | undefined;
}
