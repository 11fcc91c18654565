/**
 * Whom a per-source limit counts: an IPv4 address, or an IPv6 address's /64. One host
 * usually holds a whole /64 and may send from any address in it, so a limit per IPv6
 * address would be no limit at all (and each address a new entry to keep).
 */
import { isIPv6 } from 'node:net';

/** The source `address` counts as. */
export function sourceKey(address: string): string {
  // Asked on every accepted connection: a socket's IPv4 address has no colon, and skips isIPv6's long pattern.
  if (!address.includes(':') || !isIPv6(address)) return address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  const [head = '', tail] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((group) => group.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
