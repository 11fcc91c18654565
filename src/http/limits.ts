/**
 * What one client may cost us: request rates on the enrollment path, a stricter budget for
 * failed token attempts, open connections per source address, and timeouts against slow
 * clients. Defaults suit a server on the open network; all are configurable.
 */

/**
 * Request body caps by route: small by default (a revocation reason), room for a 16 KiB
 * CSR in PEM on enroll and renew, and for 10,000 bound device ids on token minting.
 */
export const BODY_LIMITS = {
  default: 4 * 1024,
  csr: 64 * 1024,
  tokenBatch: 2 * 1024 * 1024,
} as const;

/** The listener's limits. A null rate means that limit is off. */
export interface Limits {
  /** `POST /v1/enroll` requests per source address per minute. */
  readonly enrollPerMinute: number | null;
  /** Refused token attempts per source address per minute before the source is shut out. */
  readonly failedTokensPerMinute: number | null;
  /** `POST /v1/renew` requests per device certificate per minute (a refusal writes an audit event). */
  readonly renewPerMinute: number | null;
  /** Open TCP connections per source address; further ones are closed at once. */
  readonly connectionsPerSource: number;
  /** Time to complete the TLS handshake. */
  readonly handshakeTimeoutMs: number;
  /** Time to send the whole request header (slowloris). */
  readonly headersTimeoutMs: number;
  /** Time to send the whole request. */
  readonly requestTimeoutMs: number;
  /** How long an idle kept-alive connection stays open. */
  readonly keepAliveTimeoutMs: number;
}

export const DEFAULT_LIMITS: Limits = {
  // Devices behind one carrier NAT share an address: generous for successes...
  enrollPerMinute: 600,
  // ...strict for guesses: a token is 256 bits, so a source failing this often is not a device.
  failedTokensPerMinute: 30,
  // A device renews a few times a year; this only stops one that hammers the route.
  renewPerMinute: 30,
  connectionsPerSource: 256,
  handshakeTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 30_000,
};

/** The rate limits turned off (benchmarks: all load comes from one loopback address). */
export const withoutRateLimits = (limits: Limits): Limits => ({ ...limits, enrollPerMinute: null, failedTokensPerMinute: null, renewPerMinute: null });

/** The variable (and, in the configuration module, the setting) behind each limit. */
export const LIMIT_VARIABLES: Readonly<Record<string, keyof Limits>> = {
  IMPRINT_ENROLL_PER_MINUTE: 'enrollPerMinute',
  IMPRINT_FAILED_TOKENS_PER_MINUTE: 'failedTokensPerMinute',
  IMPRINT_RENEW_PER_MINUTE: 'renewPerMinute',
  IMPRINT_CONNECTIONS_PER_SOURCE: 'connectionsPerSource',
  IMPRINT_HANDSHAKE_TIMEOUT_MS: 'handshakeTimeoutMs',
  IMPRINT_HEADERS_TIMEOUT_MS: 'headersTimeoutMs',
  IMPRINT_REQUEST_TIMEOUT_MS: 'requestTimeoutMs',
  IMPRINT_KEEP_ALIVE_TIMEOUT_MS: 'keepAliveTimeoutMs',
};

/**
 * Limits from the values of the variables above and `IMPRINT_RATE_LIMIT=off`, then
 * `--rate-limit on|off`, which wins. A pure function of what it is given: the
 * configuration module (src/config.ts) reads flags, environment and file, and calls it.
 */
export function limitsFrom(env: Readonly<Record<string, string | undefined>>, rateLimitFlag?: string): Limits {
  let limits: Limits = DEFAULT_LIMITS;
  for (const [variable, field] of Object.entries(LIMIT_VARIABLES)) {
    const text = env[variable];
    if (text === undefined || text === '') continue;
    if (!/^\d{1,9}$/.test(text) || Number(text) < 1) throw new Error(`${variable} must be a positive whole number`);
    limits = { ...limits, [field]: Number(text) };
  }
  const switchText = rateLimitFlag ?? env.IMPRINT_RATE_LIMIT;
  if (switchText === undefined || switchText === 'on') return limits;
  if (switchText === 'off') return withoutRateLimits(limits);
  throw new Error('rate limiting must be "on" or "off"');
}
