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
import { BACK_OFF_MS, guardHandshakes, SourceBackOff, sourceKey } from '../../src/http/handshake-guard.js';
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

describe('what arms the guard', () => {
  let server: Server;
  let port: number;
  let armed = 0;

  beforeAll(async () => {
    const dir = tempDir();
    const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=127.0.0.1', '-days', '1']);
    server = createServer({ key: readFileSync(key), cert: readFileSync(cert), requestCert: true, rejectUnauthorized: false });
    guardHandshakes(server, { trustedCaPem: [readFileSync(cert, 'utf8')], onArmed: () => armed++ });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  /** Sends `bytes` (none: a bare TCP check) over a new connection, then hangs up. */
  async function send(bytes: string | undefined): Promise<void> {
    const socket = netConnect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    if (bytes !== undefined) socket.write(bytes);
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  it('is not armed by clients that hang up before or during their handshake', async () => {
    await send(undefined);
    // The start of a ClientHello (a TLS record header and a little of it), then gone.
    await send('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03');
    expect(armed).toBe(0);
  });

  it('is armed by a handshake that fails in TLS', async () => {
    await send('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(armed).toBe(1);
  });
});

describe('how long the guard stays armed', () => {
  const ARMED = 1_500;
  let server: Server;
  let port: number;
  let armed = 0;

  beforeAll(async () => {
    const dir = tempDir();
    const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=127.0.0.1', '-days', '1']);
    server = createServer({ key: readFileSync(key), cert: readFileSync(cert), requestCert: true, rejectUnauthorized: false });
    guardHandshakes(server, { trustedCaPem: [readFileSync(cert, 'utf8')], onArmed: () => armed++, armedMs: ARMED });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  const send = async (bytes: string) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    socket.write(bytes);
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
  };
  const sleepUntil = (at: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, at - performance.now())));

  it('its period after the last sign: a client hanging up mid-handshake on a guarded connection renews nothing', async () => {
    const started = performance.now();
    await send('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(armed).toBe(1);
    // Armed: this goes through the guard, and is a plain hang-up.
    await sleepUntil(started + ARMED / 2);
    await send('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03');
    // Past the first period (not the one a renewal at the hang-up would have made): disarmed, so a sign arms it anew.
    await sleepUntil(started + ARMED + 300);
    await send('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(armed).toBe(2);
  });
});
