/**
 * Reconnecting devices are authenticated from memory (src/enrollment/identity-cache.ts), and
 * that memory never outlives what it stands for: over real mTLS sockets (Node's tls client,
 * full handshakes, TLS 1.3 resumptions and kept-alive connections), a device revoked through
 * the API or through the CLI in another process is refused on its next new, resumed and
 * open connection within a second; a renewed certificate's first use still retires the old
 * one; operators are read afresh on every request.
 */
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CONFIRMED_FOR_MS, DeviceIdentityCache } from '../../src/enrollment/identity-cache.js';
import type { CertificateRecord, DeviceRecord } from '../../src/enrollment/model.js';
import { imprint } from '../helpers/cli.js';
import { call } from '../helpers/https.js';
import { keptAlive } from '../helpers/kept-alive.js';
import { enrollDevice, issueOperator, startTestServer, type TestServer } from '../helpers/server.js';
import { buildCsr } from '../../simulator/csr.js';

/** What one connection saw: its answer, whether it resumed, and the session it ended with. */
interface Reconnect {
  readonly status: number;
  readonly body: any;
  readonly reused: boolean;
  readonly session: Buffer | undefined;
}

/** One GET `path` on a new TLS connection with `identity`, offering `session` when given. */
function reconnect(t: TestServer, identity: { cert: string; key: string }, session?: Buffer, path = '/v1/device'): Promise<Reconnect> {
  return new Promise((resolve, reject) => {
    const url = new URL(t.url);
    let ticket: Buffer | undefined;
    let reused = false;
    let response = '';
    const socket: TLSSocket = connect({ host: url.hostname, port: Number(url.port), ca: t.rootPem, ...identity, session });
    socket.on('session', (data: Buffer) => (ticket = data));
    socket.on('secureConnect', () => {
      reused = socket.isSessionReused();
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`);
    });
    socket.on('data', (chunk: Buffer) => (response += chunk.toString()));
    socket.on('error', reject);
    socket.on('close', () => {
      const status = /^HTTP\/1\.1 (\d{3})/.exec(response);
      if (!status) return reject(new Error(`no answer: ${JSON.stringify(response)}`));
      resolve({ status: Number(status[1]), body: JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)), reused, session: ticket });
    });
  });
}

/** Milliseconds until `attempt` is refused (not 200), polling; throws after `limitMs`. */
async function refusedWithin(limitMs: number, attempt: () => Promise<{ status: number; body: any }>): Promise<{ ms: number; status: number; body: any }> {
  const started = performance.now();
  for (;;) {
    const seen = await attempt();
    const ms = performance.now() - started;
    if (seen.status !== 200) return { ms, ...seen };
    if (ms > limitMs) throw new Error(`still answered 200 after ${Math.round(ms)} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('device identities kept in memory, over mTLS', () => {
  let t: TestServer;
  let admin: { cert: string; key: string };

  /** An enrolled device with a session ticket, an open kept-alive connection, and its identity cached. */
  async function warmDevice(id: string) {
    const enrolled = await enrollDevice(t, id);
    expect(enrolled.response.status).toBe(201);
    const identity = { cert: enrolled.cert, key: enrolled.key.privateKeyPem };
    const first = await reconnect(t, identity);
    expect(first).toMatchObject({ status: 200, reused: false, body: { deviceId: id, status: 'active' } });
    expect(first.session).toBeDefined();
    const open = keptAlive(t.url, { ca: t.rootPem, ...identity });
    expect((await open.get()).status).toBe(200);
    return { ...enrolled, identity, session: first.session!, open };
  }

  beforeAll(async () => {
    t = await startTestServer();
    admin = await issueOperator(t, 'cache-admin', 'admin');
  });
  afterAll(async () => {
    vi.restoreAllMocks();
    await t.destroy();
  });

  it('a reconnecting device costs no store reads: new, resumed and kept-alive connections are answered from memory', async () => {
    const device = await warmDevice('cache-hit');
    const reads = vi.spyOn(t.server.instance.store, 'findCertificate');
    try {
      expect(await reconnect(t, device.identity)).toMatchObject({ status: 200, reused: false, body: { deviceId: 'cache-hit', serial: device.serial } });
      expect(await reconnect(t, device.identity, device.session)).toMatchObject({ status: 200, reused: true, body: { deviceId: 'cache-hit' } });
      expect(await device.open.get()).toMatchObject({ status: 200, body: { deviceId: 'cache-hit' } });
      expect(reads.mock.calls.filter(([serial]) => serial === device.serial)).toHaveLength(0);
    } finally {
      reads.mockRestore();
      device.open.agent.destroy();
    }
  });

  it.each([
    ['the API', 'cache-api'],
    ['the CLI in another process', 'cache-cli'],
  ])('a device revoked through %s is refused on its next new, resumed and open connection within 1 s', async (via, id) => {
    const device = await warmDevice(id);
    try {
      if (via === 'the API') {
        const revoked = await call(`${t.url}/v1/admin/devices/${id}/revoke`, { ca: t.rootPem, json: { reason: 'keyCompromise' }, ...admin });
        expect(revoked.status).toBe(200);
        // This process recorded it: refused at once, no watcher poll needed.
        expect(await reconnect(t, device.identity)).toMatchObject({ status: 403, body: { error: 'device_revoked' } });
      } else {
        const run = await imprint(['devices', 'revoke', id, '--reason', 'keyCompromise', '--data', t.dataDir]);
        expect(run.code, run.stderr).toBe(0);
      }
      const full = await refusedWithin(1000, () => reconnect(t, device.identity));
      const resumed = await refusedWithin(1000, () => reconnect(t, device.identity, device.session));
      expect(full).toMatchObject({ status: 403, body: { error: 'device_revoked' } });
      expect(resumed).toMatchObject({ status: 403, body: { error: 'device_revoked' } });
      // The open connection is closed by the watcher (or, had it asked first, refused).
      expect(await device.open.closedWithin(1000)).toBe(true);
    } finally {
      device.open.agent.destroy();
    }
  });

  it("a renewed certificate's first use retires the one it replaced, which is refused at once though it was in memory", async () => {
    const device = await warmDevice('cache-renew');
    try {
      const renewed = await call(`${t.url}/v1/renew`, { ca: t.rootPem, json: { csr: buildCsr(device.key, 'cache-renew') }, ...device.identity });
      expect(renewed.status).toBe(201);
      // Within the overlap the replaced certificate still answers, from memory or not.
      expect(await reconnect(t, device.identity)).toMatchObject({ status: 200, body: { serial: device.serial } });
      const fresh = { cert: renewed.body.certificate, key: device.identity.key };
      expect(await reconnect(t, fresh)).toMatchObject({ status: 200, body: { deviceId: 'cache-renew', serial: renewed.body.serial } });
      const old = await reconnect(t, device.identity, device.session);
      expect(old).toMatchObject({ status: 401, reused: true, body: { error: 'client_cert_invalid' } });
      expect(old.body.message).toMatch(/revoked \(superseded\)/);
      expect(await device.open.closedWithin(1000)).toBe(true);
      // The new certificate goes on being answered (and is kept now that nothing waits).
      expect(await reconnect(t, fresh)).toMatchObject({ status: 200, body: { serial: renewed.body.serial } });
    } finally {
      device.open.agent.destroy();
    }
  });

  it('operators are read afresh on every request: one revoked by the CLI, then issued again as a provisioner, is refused at once', async () => {
    const operator = await issueOperator(t, 'cache-operator', 'admin');
    const devices = () => reconnect(t, operator, undefined, '/v1/admin/devices?limit=1');
    expect((await devices()).status).toBe(200);
    const reads = vi.spyOn(t.server.instance.store, 'findOperator');
    try {
      expect((await devices()).status).toBe(200);
      expect(reads).toHaveBeenCalledWith('cache-operator');
    } finally {
      reads.mockRestore();
    }
    const run = await imprint(['operators', 'revoke', 'cache-operator', '--data', t.dataDir]);
    expect(run.code, run.stderr).toBe(0);
    expect(await devices()).toMatchObject({ status: 401, body: { error: 'client_cert_invalid' } });
    const again = await issueOperator(t, 'cache-operator', 'provisioner');
    expect(await reconnect(t, again, undefined, '/v1/admin/devices?limit=1')).toMatchObject({ status: 403, body: { error: 'forbidden' } });
    expect(await devices()).toMatchObject({ status: 401, body: { error: 'client_cert_invalid' } });
  });
});

describe('DeviceIdentityCache', () => {
  const entry = (serial: string, over: Partial<DeviceRecord> = {}) => ({
    certificate: { serial, status: 'active', der: Buffer.from(serial) } as CertificateRecord,
    device: { id: `d-${serial}`, status: 'active', retiringSerial: null, ...over } as DeviceRecord,
  });
  /** A cache following a hand-driven sequence and revocation signal. */
  function followed() {
    const cache = new DeviceIdentityCache(2);
    let look: (seq: number) => void = () => undefined;
    let signal: () => void = () => undefined;
    cache.follow({ onLook: (listener) => ((look = listener), () => undefined) }, { onRevocation: (listener) => ((signal = listener), () => undefined) });
    return { cache, look: (seq: number) => look(seq), signal: () => signal() };
  }

  it('answers nothing until the sequence is confirmed, and nothing once confirmations stop', () => {
    vi.useFakeTimers();
    try {
      const { cache, look } = followed();
      cache.set(cache.ticket(), entry('01'));
      expect(cache.get('01', Buffer.from('01'))).toBeUndefined();
      look(7);
      cache.set(cache.ticket(), entry('01'));
      expect(cache.get('01', Buffer.from('01'))?.device.id).toBe('d-01');
      // The same serial with other bytes is not the certificate we issued.
      expect(cache.get('01', Buffer.from('02'))).toBeUndefined();
      vi.advanceTimersByTime(CONFIRMED_FOR_MS + 1);
      expect(cache.get('01', Buffer.from('01'))).toBeUndefined();
      look(7);
      expect(cache.get('01', Buffer.from('01'))).toBeDefined();
    } finally {
      vi.useRealTimers();
    }
  });

  it('forgets everything when the sequence moves or this process revokes, and keeps no read begun before', () => {
    const { cache, look, signal } = followed();
    look(1);
    const before = cache.ticket();
    cache.set(cache.ticket(), entry('01'));
    look(2);
    expect(cache.get('01', Buffer.from('01'))).toBeUndefined();
    cache.set(before, entry('02'));
    expect(cache.get('02', Buffer.from('02'))).toBeUndefined();
    cache.set(cache.ticket(), entry('03'));
    const during = cache.ticket();
    signal();
    expect(cache.get('03', Buffer.from('03'))).toBeUndefined();
    cache.set(during, entry('04'));
    expect(cache.get('04', Buffer.from('04'))).toBeUndefined();
  });

  it('keeps no device in the middle of a renewal, and no more entries than its limit', () => {
    const { cache, look } = followed();
    look(1);
    cache.set(cache.ticket(), entry('01', { retiringSerial: '00' }));
    expect(cache.get('01', Buffer.from('01'))).toBeUndefined();
    for (const serial of ['02', '03', '04']) cache.set(cache.ticket(), entry(serial));
    expect(cache.get('02', Buffer.from('02'))).toBeUndefined();
    expect(cache.get('04', Buffer.from('04'))).toBeDefined();
  });
});
