/**
 * The fleet operations as calls to a server's admin API (/v1/admin/...), authenticated by
 * an operator certificate. What the server refuses comes back as a RemoteError carrying
 * its code and message, so the CLI prints the same line as it would locally.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AuditEventView } from '../enrollment/audit-service.js';
import type { DeviceDetail, DeviceRevocation } from '../enrollment/fleet-service.js';
import type { MintRequest, MintedToken, TokenView } from '../enrollment/tokens.js';
import type { CertificateView, DeviceView } from '../enrollment/views.js';
import type { Page } from '../enrollment/model.js';
import type { AuditQuery, CertificateQuery, Crls, DeviceQuery, FleetClient, TokenQuery } from './fleet-client.js';
import { RemoteError } from './remote-error.js';

/** Where and as whom to call. */
export interface RemoteOptions {
  readonly server: string;
  readonly cert: string;
  readonly key: string;
  readonly cacert?: string | undefined;
}

/** A server that stops answering ends the command rather than hanging it. */
const TIMEOUT_MS = 30_000;
/** No admin answer is anywhere near this; a bigger one is not ours. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

function readPem(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${what} ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

const query = (params: Readonly<Record<string, string | number | undefined>>): string => {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== undefined) search.set(name, String(value));
  const text = search.toString();
  return text ? `?${text}` : '';
};

/** The admin API client. */
export class RemoteFleetClient implements FleetClient {
  readonly target: string;
  private readonly agent: Agent;

  constructor(options: RemoteOptions) {
    this.target = options.server.replace(/\/+$/, '');
    this.agent = new Agent({
      keepAlive: true,
      cert: readPem(options.cert, 'operator certificate'),
      key: readPem(options.key, 'operator key'),
      ...(options.cacert ? { ca: readPem(options.cacert, 'CA certificate') } : {}),
    });
  }

  /** One request; JSON in, JSON (or bytes) out; a non-2xx answer throws RemoteError. */
  private async call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Buffer> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const url = `${this.target}${path}`;
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(
        url,
        {
          method,
          agent: this.agent,
          timeout: TIMEOUT_MS,
          headers: { accept: 'application/json', ...(payload ? { 'content-type': 'application/json' } : {}) },
        },
        resolve,
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
      req.on('error', (error: NodeJS.ErrnoException) => reject(new Error(`cannot reach ${this.target}: ${error.code ?? error.message}${error.code ? ` (${error.message})` : ''}`)));
      req.end(payload);
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of response) {
      size += (chunk as Buffer).length;
      if (size > MAX_RESPONSE_BYTES) {
        response.destroy();
        throw new Error(`${url}: answer larger than ${MAX_RESPONSE_BYTES} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
    const raw = Buffer.concat(chunks);
    const status = response.statusCode ?? 0;
    if (status >= 200 && status < 300) return raw;
    let error: { error?: unknown; message?: unknown } = {};
    try {
      error = JSON.parse(raw.toString('utf8')) as typeof error;
    } catch {
      // not the contract's JSON: say what came back
    }
    const code = typeof error.error === 'string' ? error.error : `http_${status}`;
    const message = typeof error.message === 'string' ? error.message : `${method} ${path} answered ${status}`;
    throw new RemoteError(code, message, status);
  }

  private async json<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const raw = await this.call(method, path, body);
    try {
      return JSON.parse(raw.toString('utf8')) as T;
    } catch {
      throw new Error(`${this.target}${path} did not answer JSON: is --server an imprint server?`);
    }
  }

  mintTokens(request: MintRequest) {
    return this.json<{ tokens: MintedToken[] }>('POST', '/v1/admin/tokens', request);
  }
  listTokens(q: TokenQuery) {
    return this.json<Page<TokenView>>('GET', `/v1/admin/tokens${query({ ...q })}`);
  }
  revokeToken(id: string) {
    return this.json<TokenView>('POST', `/v1/admin/tokens/${encodeURIComponent(id)}/revoke`);
  }
  revokeTokenBatch(label: string) {
    return this.json<{ label: string; revoked: number }>('POST', '/v1/admin/tokens/revoke', { label });
  }
  listDevices(q: DeviceQuery) {
    return this.json<Page<DeviceView>>('GET', `/v1/admin/devices${query({ ...q })}`);
  }
  getDevice(id: string) {
    return this.json<DeviceDetail>('GET', `/v1/admin/devices/${encodeURIComponent(id)}`);
  }
  revokeDevice(id: string, reason: string | undefined) {
    return this.json<DeviceRevocation>('POST', `/v1/admin/devices/${encodeURIComponent(id)}/revoke`, reason === undefined ? {} : { reason });
  }
  listCertificates(q: CertificateQuery) {
    return this.json<Page<CertificateView>>('GET', `/v1/admin/certificates${query({ ...q })}`);
  }
  getCertificate(serial: string) {
    return this.json<CertificateView>('GET', `/v1/admin/certificates/${encodeURIComponent(serial)}`);
  }
  revokeCertificate(serial: string, reason: string | undefined) {
    return this.json<CertificateView>('POST', `/v1/admin/certificates/${encodeURIComponent(serial)}/revoke`, reason === undefined ? {} : { reason });
  }
  listAudit(q: AuditQuery) {
    return this.json<Page<AuditEventView>>('GET', `/v1/admin/audit${query({ ...q })}`);
  }

  /** GET /crl and /crl/root: public routes, the same bytes relying parties fetch. */
  async crls(withRoot: boolean): Promise<Crls> {
    const issuer = await this.call('GET', '/crl');
    return withRoot ? { issuer, root: await this.call('GET', '/crl/root') } : { issuer };
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}
