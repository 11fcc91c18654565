/** The handshake guard's back-off: which addresses count as one source, and for how long. */
import { describe, expect, it } from 'vitest';
import { BACK_OFF_MS, SourceBackOff, sourceKey } from '../../src/http/handshake-guard.js';

describe('sourceKey', () => {
  it.each([
    ['ipv4', '192.0.2.7', '192.0.2.7'],
    ['ipv4-mapped', '::ffff:192.0.2.7', '192.0.2.7'],
    ['ipv6/full', '2001:0db8:0001:0002:0003:0004:0005:0006', '2001:db8:1:2::/64'],
    ['ipv6/compressed-tail', '2001:db8:1:2::9', '2001:db8:1:2::/64'],
    ['ipv6/compressed-head', '2001:db8::1', '2001:db8:0:0::/64'],
    ['ipv6/loopback', '::1', '0:0:0:0::/64'],
  ])('%s', (_name, address, key) => {
    expect(sourceKey(address)).toBe(key);
  });
});

describe('SourceBackOff', () => {
  it('refuses a source for the period, then lets it in again', () => {
    const backOff = new SourceBackOff();
    backOff.backOff('192.0.2.7', 1_000);
    expect(backOff.refuses('192.0.2.7', 1_000 + BACK_OFF_MS - 1)).toBe(true);
    expect(backOff.refuses('192.0.2.8', 1_001)).toBe(false);
    expect(backOff.refuses('192.0.2.7', 1_000 + BACK_OFF_MS)).toBe(false);
  });

  it('refuses every address of a backed-off IPv6 /64, and no other', () => {
    const backOff = new SourceBackOff();
    backOff.backOff('2001:db8:1:2::9', 0);
    expect(backOff.refuses('2001:db8:1:2:ffff:1:2:3', 1)).toBe(true);
    expect(backOff.refuses('2001:db8:1:3::9', 1)).toBe(false);
  });
});
