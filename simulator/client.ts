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
    private readonly caPem: string,
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

  private async send(
    method: string,
    path: string,
    agent: Agent,
    json?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: unknown }> {
    const payload = json === undefined ? undefined : Buffer.from(JSON.stringify(json));
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(
        new URL(path, this.url),
        {
          method,
          agent,
          timeout: REQUEST_TIMEOUT_MS,
          headers: { ...headers, ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) },
        },
        resolve,
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${REQUEST_TIMEOUT_MS} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
    const raw = await readBody(res);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new Error(`${method} ${path}: HTTP ${res.statusCode} with a body that is not JSON`);
    }
    const status = res.statusCode ?? 0;
    if (status >= 400) {
      const error = body as { error?: string; message?: string };
      throw new ServerRefusedError(status, error.error ?? 'unknown', error.message ?? '');
    }
    return { status, body };
  }
}
