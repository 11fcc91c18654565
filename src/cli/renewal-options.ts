/** The renewal policy of `imprint serve`, from its flags and environment (flag > env > default). */
import { DEFAULT_RENEWAL_POLICY, type RenewalPolicy } from '../enrollment/enrollment-service.js';
import { parseDuration } from './duration.js';

/** serve's renewal flags, for its option table. */
export const renewalOptions = {
  'renew-overlap': { type: 'string' },
  'renewals-per-day': { type: 'string' },
  'renew-after-expiry': { type: 'string' },
} as const;

const MAX_OVERLAP_SECONDS = 90 * 86_400;
const MAX_AFTER_EXPIRY_SECONDS = 366 * 86_400;

/** Reads --renew-overlap, --renewals-per-day and --renew-after-expiry (IMPRINT_RENEW_*). */
export function renewalPolicyFrom(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): RenewalPolicy {
  const text = (flag: string, name: string) => (values[flag] as string | undefined) ?? env[name];
  const overlap = text('renew-overlap', 'IMPRINT_RENEW_OVERLAP');
  const perDay = text('renewals-per-day', 'IMPRINT_RENEWALS_PER_DAY');
  const afterExpiry = text('renew-after-expiry', 'IMPRINT_RENEW_AFTER_EXPIRY');

  const overlapSeconds = overlap === undefined ? DEFAULT_RENEWAL_POLICY.overlapMs / 1000 : parseDuration(overlap);
  if (overlapSeconds < 1 || overlapSeconds > MAX_OVERLAP_SECONDS) throw new Error('--renew-overlap must be between 1s and 90d');
  const count = perDay === undefined ? DEFAULT_RENEWAL_POLICY.perDay : Number(perDay);
  if (!/^\d{1,4}$/.test(perDay ?? '1') || count < 1 || count > 1000) throw new Error('--renewals-per-day must be between 1 and 1000');
  const afterSeconds = afterExpiry === undefined || afterExpiry === 'off' ? 0 : parseDuration(afterExpiry);
  if (afterSeconds > MAX_AFTER_EXPIRY_SECONDS) throw new Error('--renew-after-expiry must be off or at most 366d');
  return { overlapMs: overlapSeconds * 1000, perDay: count, afterExpiryMs: afterSeconds * 1000 };
}
