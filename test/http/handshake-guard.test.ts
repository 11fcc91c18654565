/**
 * The handshake guard: which addresses count as one source and for how long, and what arms it
 * (a failed TLS handshake does; a client that just hangs up, as devices on flaky networks and
 * TCP health checks do all day, does not).
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createServer, type Server } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACK_OFF_MS, guardHandshakes, SourceBackOff } from '../../src/http/handshake-guard.js';
import { sourceKey } from '../../src/http/source-key.js';
import { openssl, tempDir } from '../helpers/openssl.js';

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

/** A TLS server that asks for client certificates, behind the guard; counts each time it arms. */
async function guardedServer(options: { armedMs?: number } = {}) {
  const dir = tempDir();
  const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=127.0.0.1', '-days', '1']);
  const server: Server = createServer({ key: readFileSync(key), cert: readFileSync(cert), requestCert: true, rejectUnauthorized: false });
  let armed = 0;
  guardHandshakes(server, { trustedCaPem: [readFileSync(cert, 'utf8')], onArmed: () => armed++, ...options });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    armed: () => armed,
    /** Sends `bytes` (none: a bare TCP check) over a new connection, then hangs up. */
    async send(bytes: string | undefined): Promise<void> {
      const socket = netConnect({ host: '127.0.0.1', port });
      await once(socket, 'connect');
      if (bytes !== undefined) socket.write(bytes);
      await new Promise((resolve) => setTimeout(resolve, 50));
      socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 50));
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** A request where a ClientHello belongs: the handshake fails in TLS. */
const NOT_TLS = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
/** The start of a ClientHello (a TLS record header and a little of it). */
const HELLO_START = '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03';

describe('what arms the guard', () => {
  let server: Awaited<ReturnType<typeof guardedServer>>;
  beforeAll(async () => {
    server = await guardedServer();
  });
  afterAll(() => server.close());

  it('is not armed by clients that hang up before or during their handshake', async () => {
    await server.send(undefined);
    await server.send(HELLO_START);
    expect(server.armed()).toBe(0);
  });

  it('is armed by a handshake that fails in TLS', async () => {
    await server.send(NOT_TLS);
    expect(server.armed()).toBe(1);
  });
});

describe('how long the guard stays armed', () => {
  const ARMED = 1_500;
  let server: Awaited<ReturnType<typeof guardedServer>>;
  beforeAll(async () => {
    server = await guardedServer({ armedMs: ARMED });
  });
  afterAll(() => server.close());

  const sleepUntil = (at: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, at - performance.now())));

  it('its period after the last sign: a client hanging up mid-handshake on a guarded connection renews nothing', async () => {
    const started = performance.now();
    await server.send(NOT_TLS);
    expect(server.armed()).toBe(1);
    // Armed: this goes through the guard, and is a plain hang-up.
    await sleepUntil(started + ARMED / 2);
    await server.send(HELLO_START);
    // Past the first period (not the one a renewal at the hang-up would have made): disarmed, so a sign arms it anew.
    await sleepUntil(started + ARMED + 300);
    await server.send(NOT_TLS);
    expect(server.armed()).toBe(2);
  });
});
