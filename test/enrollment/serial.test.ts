/** Serial numbers typed by operators, in every form openssl and browsers print them. */
import { describe, expect, it } from 'vitest';
import { normaliseSerial } from '../../src/enrollment/fleet-service.js';

describe('normaliseSerial', () => {
  it.each([
    ['0518a0', '0518a0'],
    ['518A0', '0518a0'],
    ['05:18:A0', '0518a0'],
    ['000518a0', '0518a0'],
    ['00f1', 'f1'],
    ['00', '00'],
    ['7', '07'],
  ])('%s -> %s', (input, stored) => {
    expect(normaliseSerial(input)).toBe(stored);
  });

  it.each(['', 'xyz', '0x12', '12 34', 'a'.repeat(43)])('refuses %j', (input) => {
    expect(() => normaliseSerial(input)).toThrow(/serial must be hexadecimal/);
  });
});
