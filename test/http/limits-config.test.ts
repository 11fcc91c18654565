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
  /** A response that closes when told, as the server's does once its answer is out. */
  const response = () => {
    const listeners: (() => void)[] = [];
    return { once: (_event: 'close', listener: () => void) => listeners.push(listener), close: () => listeners.splice(0).forEach((each) => each()) };
  };

  it('shuts a source out after its budget until the window ends, and only that source', async () => {
    let now = 0;
    const budget = new FailureBudget(3, new LocalWindowCounters(() => now));
    for (let i = 0; i < 3; i++) {
      const answer = response();
      expect(await budget.admit('a', answer)).toBe(0);
      await budget.recordFailure('a');
      answer.close();
    }
    now = 15_000;
    expect(await budget.admit('a', response())).toBe(45);
    expect(await budget.admit('b', response())).toBe(0);
    now = 60_000;
    const answer = response();
    expect(await budget.admit('a', answer)).toBe(0);
    await budget.recordFailure('a');
    answer.close();
    expect(await budget.admit('a', response())).toBe(0);
  });

  it('in-flight attempts count against a source only up to its failures: a burst cannot overshoot, one failure cannot shut a busy line out', async () => {
    const budget = new FailureBudget(4, new LocalWindowCounters());
    // No failure: any number in flight.
    for (let i = 0; i < 40; i++) expect(await budget.admit('factory', response())).toBe(0);

    const fail = async (source: string) => {
      const answer = response();
      expect(await budget.admit(source, answer)).toBe(0);
      await budget.recordFailure(source);
      answer.close();
    };
    await fail('attacker');
    await fail('attacker');
    const inFlight = [response(), response()];
    for (const answer of inFlight) expect(await budget.admit('attacker', answer)).toBe(0);
    // Two failures and two attempts still being checked: a fifth would overshoot the budget of 4.
    expect(await budget.admit('attacker', response())).toBeGreaterThan(0);
    // Those two succeed after all: their answers go out, and the source may try again.
    for (const answer of inFlight) answer.close();
    expect(await budget.admit('attacker', response())).toBe(0);

    // A line behind one address with one refused token: all its 40 concurrent enrollments go through.
    await fail('line');
    const admitted = [];
    for (let i = 0; i < 40; i++) admitted.push(await budget.admit('line', response()));
    expect(admitted.filter((wait) => wait === 0)).toHaveLength(40);
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

  // 100,000 live windows: a flood of new sources, each a window of its own.
  it('full of live windows, a flood of new sources pushes out its own kind, not a source near its limit, and costs no scan per source', async () => {
    let now = 0;
    const counters = new LocalWindowCounters(() => now);
    await counters.add('failed-token:198.51.100.7', 29, 60_000); // near its limit
    await counters.add('handshake-guard:203.0.113.9', 1, 60_000); // backed off, long before the flood
    await counters.add('handshake-guard:203.0.113.9', 1, 60_000);
    now = 1;
    const started = process.cpuUsage();
    for (let i = 0; i < 150_000; i++) await counters.add(`requests:10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 1, 60_000);
    const spent = process.cpuUsage(started);
    expect(counters.peek('failed-token:198.51.100.7')).toBe(29);
    expect(counters.peek('handshake-guard:203.0.113.9')).toBe(2);
    // A scan of the whole table per new key was ~2.6 ms each: 50,000 of them over 2 minutes.
    expect((spent.user + spent.system) / 1e6).toBeLessThan(10);
  });
});

describe('FailureBudget and IPv6', () => {
  it('counts an IPv6 source by its /64: a host cannot get a new budget from each of its addresses', async () => {
    const budget = new FailureBudget(2, new LocalWindowCounters());
    const closed = { once: () => undefined };
    await budget.recordFailure('2001:db8:1:2::1');
    await budget.recordFailure('2001:db8:1:2:ffff::77');
    expect(await budget.admit('2001:db8:1:2:abcd::9', closed)).toBeGreaterThan(0);
    expect(await budget.admit('2001:db8:1:3::1', closed)).toBe(0);
    expect(await budget.admit('198.51.100.1', closed)).toBe(0);
  });
});
