/**
 * POST /v1/enroll against a real HTTPS listener: every refusal with its status and code,
 * nothing but an audit event written by a refusal, and the one-time semantics under
 * concurrent requests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCsr, generateDeviceKey } from '../../simulator/csr.js';
import { hashToken } from '../../src/enrollment/tokens.js';
import { snapshot, query } from '../helpers/database.js';
import { call, type Response } from '../helpers/https.js';
import { opensslCsr, opensslCsrForKey, type KeyKind } from '../helpers/openssl.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t.destroy();
});

const enroll = (token: string | undefined, csr: string): Promise<Response> =>
  call(`${t.url}/v1/enroll`, {
    ca: t.rootPem,
    json: { csr },
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });

/** Flips one byte of the signature at the end of a CSR's DER. */
function tamperSignature(csrPem: string): string {
  const der = Buffer.from(csrPem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
  der[der.length - 1]! ^= 0x01;
  return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
}

let unique = 0;
const nextId = () => `dev-${Date.now().toString(36)}-${++unique}`;

/** Enrolls a fresh device and returns its id and key path (for the key-reuse case). */
async function enrolledDevice(kind: KeyKind = 'p256') {
  const id = nextId();
  const csr = opensslCsr(kind, `/CN=${id}`);
  const { token } = await t.mintToken();
  const response = await enroll(token, csr.csrPem);
  expect(response.status).toBe(201);
  return { id, keyPath: csr.keyPath, response };
}

interface RefusalCase {
  readonly name: string;
  readonly status: number;
  readonly code: string;
  /** Returns the token to present, the CSR, and whether the token must still enroll afterwards. */
  readonly setup: () => Promise<{ token: string | undefined; csr: string; tokenStillUsable: boolean }>;
}

const p256 = (subject: string) => opensslCsr('p256', subject).csrPem;

const refusals: RefusalCase[] = [
  {
    name: 'token/missing',
    status: 401,
    code: 'token_missing',
    setup: async () => ({ token: undefined, csr: p256(`/CN=${nextId()}`), tokenStillUsable: false }),
  },
  {
    name: 'token/malformed',
    status: 401,
    code: 'token_invalid',
    setup: async () => ({ token: 'not-a-token', csr: p256(`/CN=${nextId()}`), tokenStillUsable: false }),
  },
  {
    name: 'token/unknown',
    status: 401,
    code: 'token_invalid',
    setup: async () => ({ token: `imp_${'A'.repeat(43)}`, csr: p256(`/CN=${nextId()}`), tokenStillUsable: false }),
  },
  {
    name: 'token/used',
    status: 409,
    code: 'token_used',
    setup: async () => {
      const { token } = await t.mintToken();
      expect((await enroll(token, p256(`/CN=${nextId()}`))).status).toBe(201);
      return { token, csr: p256(`/CN=${nextId()}`), tokenStillUsable: false };
    },
  },
  {
    name: 'token/used-then-garbage-csr',
    status: 409,
    code: 'token_used',
    setup: async () => {
      const { token } = await t.mintToken();
      expect((await enroll(token, p256(`/CN=${nextId()}`))).status).toBe(201);
      return { token, csr: 'not a csr', tokenStillUsable: false };
    },
  },
  {
    name: 'token/expired',
    status: 401,
    code: 'token_expired',
    setup: async () => {
      const token = `imp_${Buffer.alloc(32, unique++).toString('base64url')}`;
      const past = new Date(Date.now() - 3_600_000);
      await t.server.instance.store.createTokens(
        [{ id: `tok_expired${unique}`, hash: hashToken(token), label: null, deviceId: null, createdAt: past, createdBy: 'test', expiresAt: past, mayReprovision: false }],
        { at: past, actor: 'test', action: 'tokens.create', outcome: 'ok' },
      );
      return { token, csr: p256(`/CN=${nextId()}`), tokenStillUsable: false };
    },
  },
  {
    name: 'token/revoked',
    status: 401,
    code: 'token_revoked',
    setup: async () => {
      const { id, token } = await t.mintToken();
      await t.server.instance.tokens.revoke(id, { actor: 'cli:test', role: 'admin' });
      return { token, csr: p256(`/CN=${nextId()}`), tokenStillUsable: false };
    },
  },
  {
    name: 'csr/bad-signature',
    status: 400,
    code: 'csr_signature_invalid',
    setup: async () => ({ token: (await t.mintToken()).token, csr: tamperSignature(p256(`/CN=${nextId()}`)), tokenStillUsable: true }),
  },
  {
    name: 'csr/garbage-text',
    status: 400,
    code: 'csr_malformed',
    setup: async () => ({ token: (await t.mintToken()).token, csr: 'hello, I am a CSR', tokenStillUsable: true }),
  },
  {
    name: 'csr/garbage-der',
    status: 400,
    code: 'csr_malformed',
    setup: async () => ({ token: (await t.mintToken()).token, csr: Buffer.from('0\x82\x01\x00garbage').toString('base64'), tokenStillUsable: true }),
  },
  {
    name: 'csr/trailing-bytes',
    status: 400,
    code: 'csr_malformed',
    setup: async () => {
      const der = Buffer.from(p256(`/CN=${nextId()}`).replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
      return { token: (await t.mintToken()).token, csr: Buffer.concat([der, Buffer.from([0, 0])]).toString('base64'), tokenStillUsable: true };
    },
  },
  {
    name: 'csr/rsa-1024',
    status: 400,
    code: 'csr_key_unsupported',
    setup: async () => ({ token: (await t.mintToken()).token, csr: opensslCsr('rsa1024', `/CN=${nextId()}`).csrPem, tokenStillUsable: true }),
  },
  {
    name: 'csr/secp256k1',
    status: 400,
    code: 'csr_key_unsupported',
    setup: async () => ({ token: (await t.mintToken()).token, csr: opensslCsr('secp256k1', `/CN=${nextId()}`).csrPem, tokenStillUsable: true }),
  },
  {
    name: 'csr/two-cns',
    status: 400,
    code: 'csr_subject_invalid',
    setup: async () => ({ token: (await t.mintToken()).token, csr: p256(`/CN=${nextId()}/CN=${nextId()}`), tokenStillUsable: true }),
  },
  {
    name: 'csr/no-cn',
    status: 400,
    code: 'csr_subject_invalid',
    setup: async () => ({ token: (await t.mintToken()).token, csr: p256('/O=Acme'), tokenStillUsable: true }),
  },
  {
    name: 'csr/cn-outside-pattern',
    status: 400,
    code: 'csr_subject_invalid',
    setup: async () => ({ token: (await t.mintToken()).token, csr: p256("/CN=robert'); DROP TABLE devices;--"), tokenStillUsable: true }),
  },
  {
    name: 'bound-token/wrong-cn',
    status: 403,
    code: 'csr_subject_mismatch',
    setup: async () => ({
      token: (await t.mintToken({ deviceId: nextId() })).token,
      csr: p256(`/CN=${nextId()}`),
      tokenStillUsable: true,
    }),
  },
  {
    name: 'unbound-token/existing-device',
    status: 409,
    code: 'device_exists',
    setup: async () => {
      const existing = await enrolledDevice();
      return { token: (await t.mintToken()).token, csr: p256(`/CN=${existing.id}`), tokenStillUsable: true };
    },
  },
  {
    name: 'key/reused-by-another-device',
    status: 409,
    code: 'key_reused',
    setup: async () => {
      const existing = await enrolledDevice();
      return { token: (await t.mintToken()).token, csr: opensslCsrForKey(existing.keyPath, `/CN=${nextId()}`), tokenStillUsable: true };
    },
  },
];

describe('POST /v1/enroll refusals', () => {
  it.each(refusals)('$name -> $status $code, only an audit event written', async ({ status, code, setup }) => {
    const { token, csr, tokenStillUsable } = await setup();
    const before = snapshot(t.dataDir);

    const response = await enroll(token, csr);

    expect(response.status).toBe(status);
    expect(response.body).toEqual({ error: code, message: expect.any(String) });
    const after = snapshot(t.dataDir);
    expect(after.state).toBe(before.state);
    expect(after.auditEvents).toBe(before.auditEvents + 1);
    const [event] = query<{ outcome: string; source: string }>(t.dataDir, 'SELECT outcome, source FROM audit_events ORDER BY id DESC LIMIT 1');
    expect(event).toEqual({ outcome: code, source: '127.0.0.1' });

    if (tokenStillUsable) {
      const good = await enroll(token, p256(`/CN=${nextId()}`));
      if (good.status !== 201) {
        // A bound token only enrolls its own id.
        expect(code).toBe('csr_subject_mismatch');
        const [bound] = query<{ device_id: string }>(t.dataDir, 'SELECT device_id FROM tokens WHERE hash = ?', hashToken(token!));
        expect((await enroll(token, p256(`/CN=${bound!.device_id}`))).status).toBe(201);
      }
    }
  });

  const json = { 'content-type': 'application/json' };
  it.each([
    { name: 'body/not-json', headers: json, body: '{"csr": ', status: 400, code: 'bad_request' },
    { name: 'body/missing-csr', headers: json, body: '{}', status: 400, code: 'bad_request' },
    { name: 'body/csr-not-a-string', headers: json, body: '{"csr": 42}', status: 400, code: 'bad_request' },
    { name: 'body/extra-field', headers: json, body: '{"csr":"x","admin":true}', status: 400, code: 'bad_request' },
    { name: 'body/wrong-content-type', headers: { 'content-type': 'text/plain' }, body: 'csr', status: 415, code: 'unsupported_media_type' },
    { name: 'body/too-large', headers: json, body: JSON.stringify({ csr: 'A'.repeat(70_000) }), status: 413, code: 'payload_too_large' },
  ])('$name -> $status $code', async ({ headers, body, status, code }) => {
    const { token } = await t.mintToken();
    const before = snapshot(t.dataDir);
    const response = await call(`${t.url}/v1/enroll`, { ca: t.rootPem, body, headers: { ...headers, authorization: `Bearer ${token}` } });
    expect(response.status).toBe(status);
    expect(response.body).toEqual({ error: code, message: expect.any(String) });
    expect(snapshot(t.dataDir).state).toBe(before.state);
  });

  it('answers unknown routes with 404 not_found as JSON', async () => {
    const response = await call(`${t.url}/v1/nope`, { ca: t.rootPem });
    expect(response.status).toBe(404);
    expect(response.body.error).toBe('not_found');
  });
});

describe('POST /v1/enroll one-time semantics', () => {
  it('30 racing requests with one token and 30 CSRs: one certificate, one device, 29 token_used', async () => {
    const { token } = await t.mintToken();
    const ids = Array.from({ length: 30 }, () => nextId());
    const csrs = await Promise.all(ids.map(async (id) => buildCsr(await generateDeviceKey(), id)));

    const responses = await Promise.all(csrs.map((csr) => enroll(token, csr)));

    const created = responses.filter((r) => r.status === 201);
    expect(created).toHaveLength(1);
    expect(responses.filter((r) => r.status === 409 && r.body.error === 'token_used')).toHaveLength(29);
    const devices = query<{ id: string }>(t.dataDir, `SELECT id FROM devices WHERE id IN (${ids.map(() => '?').join(',')})`, ...ids);
    expect(devices).toEqual([{ id: created[0]!.body.deviceId }]);
    const certificates = query(t.dataDir, `SELECT serial FROM certificates WHERE device_id IN (${ids.map(() => '?').join(',')})`, ...ids);
    expect(certificates).toHaveLength(1);
  });

  it('30 concurrent retries with the same token and CSR all get the same certificate', async () => {
    const { token } = await t.mintToken();
    const csr = buildCsr(await generateDeviceKey(), nextId());

    const responses = await Promise.all(Array.from({ length: 30 }, () => enroll(token, csr)));

    expect(responses.filter((r) => r.status === 201)).toHaveLength(1);
    expect(responses.filter((r) => r.status === 200)).toHaveLength(29);
    const certificates = new Set(responses.map((r) => r.body.certificate));
    expect(certificates.size).toBe(1);
    expect(new Set(responses.map((r) => r.body.serial)).size).toBe(1);
  });

  it('a retry after the answer was lost returns the same certificate, later and on a new connection', async () => {
    const { token } = await t.mintToken();
    const csr = buildCsr(await generateDeviceKey(), nextId());
    const first = await enroll(token, csr);
    const again = await enroll(token, csr);
    expect([first.status, again.status]).toEqual([201, 200]);
    expect(again.body).toEqual(first.body);
  });

  it('records the enrollment in the audit log with the token id, and the token itself nowhere', async () => {
    const { id, token } = await t.mintToken();
    const response = await enroll(token, p256(`/CN=${nextId()}`));
    expect(response.status).toBe(201);
    const [event] = query(t.dataDir, 'SELECT actor, action, outcome, source, token_id, device_id, serial FROM audit_events ORDER BY id DESC LIMIT 1');
    expect(event).toEqual({
      actor: `token:${id}`,
      action: 'enroll',
      outcome: 'ok',
      source: '127.0.0.1',
      token_id: id,
      device_id: response.body.deviceId,
      serial: response.body.serial,
    });
    const everything = JSON.stringify(
      ['tokens', 'audit_events', 'devices', 'certificates', 'settings'].map((table) => query(t.dataDir, `SELECT * FROM ${table}`)),
    );
    expect(everything).not.toContain(token);
    expect(everything).not.toContain(token.slice(4));
  });

  it('a bound token re-provisions its device and revokes the old certificates as superseded', async () => {
    const device = await enrolledDevice();
    const { token } = await t.mintToken({ deviceId: device.id });
    const response = await enroll(token, p256(`/CN=${device.id}`));
    expect(response.status).toBe(201);
    const rows = query<{ serial: string; status: string; revocation_reason: string | null }>(
      t.dataDir,
      'SELECT serial, status, revocation_reason FROM certificates WHERE device_id = ? ORDER BY issued_at',
      device.id,
    );
    expect(rows).toEqual([
      { serial: device.response.body.serial, status: 'revoked', revocation_reason: 'superseded' },
      { serial: response.body.serial, status: 'active', revocation_reason: null },
    ]);
  });
});
