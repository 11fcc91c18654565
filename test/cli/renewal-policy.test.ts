/** serve's renewal flags and variables: flag over environment over default, and refusals. */
import { describe, expect, it } from 'vitest';
import { renewalPolicyFrom } from '../../src/config.js';

const H = 3_600_000;

describe('renewalPolicyFrom', () => {
  it.each([
    { name: 'defaults', values: {}, env: {}, policy: { overlapMs: 24 * H, perDay: 10, afterExpiryMs: 0 } },
    { name: 'flags', values: { 'renew-overlap': '2h', 'renewals-per-day': '3', 'renew-after-expiry': '30d' }, env: {}, policy: { overlapMs: 2 * H, perDay: 3, afterExpiryMs: 720 * H } },
    { name: 'env', values: {}, env: { IMPRINT_RENEW_OVERLAP: '90m', IMPRINT_RENEWALS_PER_DAY: '50', IMPRINT_RENEW_AFTER_EXPIRY: '7d' }, policy: { overlapMs: 1.5 * H, perDay: 50, afterExpiryMs: 168 * H } },
    { name: 'flag over env', values: { 'renew-after-expiry': 'off' }, env: { IMPRINT_RENEW_AFTER_EXPIRY: '7d' }, policy: { overlapMs: 24 * H, perDay: 10, afterExpiryMs: 0 } },
  ])('$name', ({ values, env, policy }) => {
    expect(renewalPolicyFrom(values, env)).toEqual(policy);
  });

  it.each([
    { 'renew-overlap': '0' },
    { 'renew-overlap': '91d' },
    { 'renew-overlap': 'soon' },
    { 'renewals-per-day': '0' },
    { 'renewals-per-day': '1.5' },
    { 'renewals-per-day': '-1' },
    { 'renew-after-expiry': '400d' },
    { 'renew-after-expiry': 'forever' },
  ])('refuses %o', (values) => {
    expect(() => renewalPolicyFrom(values, {})).toThrow(/renew|duration/);
  });
});
