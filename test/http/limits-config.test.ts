/** Limits from the environment and flags, and the failure budget's windows. */
import { describe, expect, it } from 'vitest';
import { FailureBudget } from '../../src/http/failure-budget.js';
import { LocalWindowCounters } from '../../src/http/window-counters.js';
import { DEFAULT_LIMITS, limitsFrom } from '../../src/http/limits.js';

describe('limitsFrom', () => {
  it('takes the defaults, then the environment, then --rate-limit', () => {
    expect(limitsFrom({})).toEqual(DEFAULT_LIMITS);
    expect(limitsFrom({ IMPRINT_ENROLL_PER_MINUTE: '5', IMPRINT_HEADERS_TIMEOUT_MS: '2000' })).toMatchObject({ enrollPerMinute: 5, headersTimeoutMs: 2000 });
    expect(limitsFrom({ IMPRINT_RATE_LIMIT: 'off' })).toMatchObject({ enrollPerMinute: null, failedTokensPerMinute: null });
    expect(limitsFrom({ IMPRINT_RATE_LIMIT: 'off' }, 'on')).toMatchObject({ enrollPerMinute: 600 });
    expect(limitsFrom({}, 'off').connectionsPerSource).toBe(DEFAULT_LIMITS.connectionsPerSource);
  });

  it.each([
    [{ IMPRINT_ENROLL_PER_MINUTE: 'lots' }, undefined, /IMPRINT_ENROLL_PER_MINUTE must be a positive whole number/],
    [{ IMPRINT_CONNECTIONS_PER_SOURCE: '0' }, undefined, /must be a positive whole number/],
    [{}, 'maybe', /must be "on" or "off"/],
  ])('refuses %j %s', (env, flag, message) => {
    expect(() => limitsFrom(env, flag)).toThrow(message);
  });
});

describe('FailureBudget', () => {
  it('shuts a source out after its budget until the window ends, and only that source', async () => {
    let now = 0;
    const budget = new FailureBudget(3, new LocalWindowCounters(() => now));
    for (let i = 0; i < 3; i++) {
      expect(await budget.retryAfterSeconds('a')).toBe(0);
      await budget.recordFailure('a');
    }
    now = 15_000;
    expect(await budget.retryAfterSeconds('a')).toBe(45);
    expect(await budget.retryAfterSeconds('b')).toBe(0);
    now = 60_000;
    expect(await budget.retryAfterSeconds('a')).toBe(0);
    await budget.recordFailure('a');
    expect(await budget.retryAfterSeconds('a')).toBe(0);
  });
});

describe('LocalWindowCounters', () => {
  it('takes another process\'s count with its window, which decides when the key comes back', async () => {
    let now = 0;
    const counters = new LocalWindowCounters(() => now);
    expect(await counters.add('k', 2, 60_000)).toEqual({ count: 2, resetInMs: 60_000 });
    now = 30_000;
    counters.raise('k', 10, 1_000);
    expect(await counters.add('k', 0, 60_000)).toEqual({ count: 10, resetInMs: 1_000 });
    expect(await counters.add('k', 1, 60_000)).toEqual({ count: 11, resetInMs: 1_000 });
    counters.raise('k', 5, 500); // never lowers a count
    expect((await counters.add('k', 0, 60_000)).count).toBe(11);
    now = 31_000;
    expect(await counters.add('k', 0, 60_000)).toEqual({ count: 0, resetInMs: 0 });
  });
});
