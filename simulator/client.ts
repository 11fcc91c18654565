/**
 * The device's HTTP client: enrollment over server-authenticated TLS, then everything
 * else over mutual TLS with the device certificate. It trusts only the root CA, as a
 * device does, and speaks to the server only through the public API.
 */
import type { IncomingMessage } from 'node:http';
import { Agent, request } from 'node:https';
import { readBody } from './read-body.js';

/** The enroll/renew response body. */
export interface EnrollmentResponse {
  readonly deviceId: string;
  readonly serial: string;
  readonly certificate: string;
  readonly chain: string[];
  readonly notAfter: string;
}

/** GET /v1/device. */
export interface DeviceResponse {
  readonly deviceId: string;
  readonly status: string;
  readonly serial: string;
  readonly notAfter: string;
  readonly enrolledAt: string;
}

/** The server refused a request; `code` is its stable error code. */
export class ServerRefusedError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ServerRefusedError';
  }
}

/** A device certificate and key to present. */
export interface ClientIdentity {
  readonly certificatePem: string;
  readonly keyPem: string;
}

const REQUEST_TIMEOUT_MS = 30_000;

/** Talks to one imprint server. */
export class ImprintClient {
  private readonly url: URL;

  constructor(
    baseUrl: string,
    /** The root CA certificate: the device's trust anchor. */
    readonly caPem: string,
    /** Agent for requests without a client certificate; a keep-alive one lets enrollments share connections. */
    private readonly agent: Agent = new Agent({ keepAlive: false, ca: caPem }),
  ) {
    this.url = new URL(baseUrl);
  }

  /** POST /v1/enroll; `status` tells a fresh certificate (201) from a retry answered again (200). */
  async enroll(token: string, csrPem: string): Promise<EnrollmentResponse & { status: number }> {
    const { status, body } = await this.send('POST', '/v1/enroll', this.agent, { csr: csrPem }, { authorization: `Bearer ${token}` });
    return { ...(body as EnrollmentResponse), status };
  }

  /** GET /v1/device over a fresh mutual-TLS connection. */
  async device(identity: ClientIdentity, agent = this.mtlsAgent(identity)): Promise<DeviceResponse> {
    return (await this.send('GET', '/v1/device', agent)).body as DeviceResponse;
  }

  /** POST /v1/renew over mutual TLS with the current certificate. */
  async renew(identity: ClientIdentity, csrPem: string): Promise<EnrollmentResponse> {
    return (await this.send('POST', '/v1/renew', this.mtlsAgent(identity), { csr: csrPem })).body as EnrollmentResponse;
  }

  /** An agent presenting a client certificate; no keep-alive, so each call is a new TLS session. */
  mtlsAgent(identity: ClientIdentity, keepAlive = false): Agent {
    return new Agent({ keepAlive, ca: this.caPem, cert: identity.certificatePem, key: identity.keyPem, maxCachedSessions: 0 });
  }

  /** EST simpleenroll (RFC 7030 4.2.1): base64 DER CSR in, the certificate as certs-only CMS out; the token as Bearer. */
  async estEnroll(token: string, csrDer: Buffer, label?: string): Promise<Buffer> {
    return this.estPost('simpleenroll', this.agent, csrDer, { authorization: `Bearer ${token}` }, label);
  }

  /** EST simplereenroll (RFC 7030 4.2.2) over mutual TLS with the current certificate. */
  async estReenroll(identity: ClientIdentity, csrDer: Buffer, label?: string): Promise<Buffer> {
    const agent = this.mtlsAgent(identity);
    try {
      return await this.estPost('simplereenroll', agent, csrDer, {}, label);
    } finally {
      agent.destroy();
    }
  }

  /** SCEP GetCACert (RFC 8894 4.2): the RA, the issuing CA and the root as degenerate PKCS#7. */
  async scepCaCertificates(): Promise<Buffer> {
    return (await this.exchange('GET', '/scep?operation=GetCACert', this.agent)).body;
  }

  /** SCEP PKIOperation by POST (RFC 8894 4.3): a pkiMessage in, the RA's CertRep out (also for a refusal). */
  async scepPkiOperation(message: Buffer): Promise<Buffer> {
    return (await this.exchange('POST', '/scep?operation=PKIOperation', this.agent, { type: 'application/x-pki-message', bytes: message })).body;
  }

  private async estPost(operation: string, agent: Agent, csrDer: Buffer, headers: Record<string, string>, label?: string): Promise<Buffer> {
    const path = `/.well-known/est/${label ? `${label}/` : ''}${operation}`;
    const body = { type: 'application/pkcs10', bytes: Buffer.from(csrDer.toString('base64')) };
    const answer = await this.exchange('POST', path, agent, body, headers);
    return Buffer.from(answer.body.toString('ascii').replace(/\s+/g, ''), 'base64');
  }

  private async send(
    method: string,
    path: string,
    agent: Agent,
    json?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: unknown }> {
    const payload = json === undefined ? undefined : { type: 'application/json', bytes: Buffer.from(JSON.stringify(json)) };
    const answer = await this.exchange(method, path, agent, payload, headers);
    try {
      return { status: answer.status, body: JSON.parse(answer.body.toString('utf8')) };
    } catch {
      throw new Error(`${method} ${path}: HTTP ${answer.status} with a body that is not JSON`);
    }
  }

  /** One request; a 4xx or 5xx becomes a ServerRefusedError with the server's error code. */
  private async exchange(
    method: string,
    path: string,
    agent: Agent,
    payload?: { type: string; bytes: Buffer },
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: Buffer }> {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(
        new URL(path, this.url),
        {
          method,
          agent,
          timeout: REQUEST_TIMEOUT_MS,
          headers: { ...headers, ...(payload ? { 'content-type': payload.type, 'content-length': payload.bytes.length } : {}) },
        },
        resolve,
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${REQUEST_TIMEOUT_MS} ms`)));
      req.on('error', reject);
      req.end(payload?.bytes);
    });
    const body = await readBody(res);
    const status = res.statusCode ?? 0;
    if (status >= 400) {
      let error: { error?: string; message?: string } = {};
      try {
        error = JSON.parse(body.toString('utf8')) as typeof error;
      } catch {
        throw new Error(`${method} ${path}: HTTP ${status} with a body that is not JSON`);
      }
      throw new ServerRefusedError(status, error.error ?? 'unknown', error.message ?? '');
    }
    return { status, body };
  }
}
