/** Routes for enrolled devices, authenticated by their client certificate. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Static } from 'typebox';
import { Type } from '../json-schema.js';
import type { ClientAuthenticator, DeviceIdentity } from '../../enrollment/client-authenticator.js';
import type { SigningServices } from '../../instance.js';
import { authenticateDevice, deviceOf, requireDevice } from '../authenticate.js';
import { presentedCertificate, presentedOnSocket } from '../client-certificate.js';
import { plainHost, type FastPath } from '../fast-path.js';
import { BODY_LIMITS, type Limits } from '../limits.js';
import { metrics } from '../metrics.js';
import { REQUEST_ID_HEADER, requestIdOf } from '../observability.js';
import { CsrBodySchema, EnrollmentResultSchema, errorResponses } from '../schemas.js';
import { sourceKey } from '../source-key.js';

const DeviceSchema = Type.Object({
  deviceId: Type.String(),
  status: Type.String(),
  serial: Type.String(),
  notAfter: Type.String(),
  enrolledAt: Type.String(),
});

/** What GET /v1/device answers. */
const deviceView = (identity: DeviceIdentity): Static<typeof DeviceSchema> => ({
  deviceId: identity.deviceId,
  status: identity.device.status,
  serial: identity.certificate.serial,
  notAfter: identity.certificate.notAfter.toISOString(),
  enrolledAt: identity.device.enrolledAt.toISOString(),
});

const DEVICE_ROUTE = '/v1/device';

/**
 * True for a plain GET /v1/device: no query, no body, one plain Host header, and none of
 * the headers a browser marks its requests with (the route's cross-site check reads them).
 */
function plainDeviceRequest(request: IncomingMessage): boolean {
  if (request.url !== DEVICE_ROUTE || request.method !== 'GET') return false;
  const headers = request.headers;
  if (headers['content-length'] !== undefined || headers['transfer-encoding'] !== undefined) return false;
  if (headers['sec-fetch-site'] !== undefined || headers.origin !== undefined) return false;
  return plainHost(request);
}

/**
 * GET /v1/device of a device this process already knows (ClientAuthenticator.knownDevice),
 * answered before Fastify's routing. A reconnecting device sends this one request on each
 * new TLS connection, and Fastify's request cycle (request and reply objects, hooks,
 * promises, the serializer) was most of what the server added to Node's own TLS and HTTP
 * work. The answer is the route's: the same body and headers (the listener's security
 * headers, X-Request-Id), and the request-duration metric under the route's name.
 * Anything else (a device the store must be asked about or that is refused, another method,
 * a query, a body, a browser's request, a closing server) goes to the route untouched.
 */
export function deviceFastPath(options: {
  readonly clients: ClientAuthenticator;
  /** False once the server is closing: Fastify then answers, and closes each connection. */
  readonly open: () => boolean;
  /** Headers every answer of this listener carries (the HTTPS listener's security headers). */
  readonly headers?: Readonly<Record<string, string>> | undefined;
}): FastPath {
  const { clients, open } = options;
  const observe = metrics().answeredObserver(DEVICE_ROUTE, 'GET');
  const fixedHeaders = ['content-type', 'application/json; charset=utf-8', ...Object.entries(options.headers ?? {}).flat()];
  /**
   * Each known identity's body and headers, made on its first answer: the cache hands back
   * the same identity object until the store is read again, and what the answer says of it
   * does not change meanwhile.
   */
  const answers = new WeakMap<DeviceIdentity, { readonly body: string; readonly headers: readonly string[] }>();
  const answerOf = (identity: DeviceIdentity) => {
    const body = JSON.stringify(deviceView(identity));
    const answer = { body, headers: [...fixedHeaders, 'content-length', String(Buffer.byteLength(body))] };
    answers.set(identity, answer);
    return answer;
  };
  return function answerDevice(request, response) {
    if (!plainDeviceRequest(request) || !open()) return false;
    const started = performance.now();
    let identity: DeviceIdentity | undefined;
    try {
      identity = clients.knownDevice(presentedOnSocket(request.socket as TLSSocket));
    } catch {
      return false; // refused: the route says why, in the contract's words
    }
    if (!identity) return false;
    const { body, headers } = answers.get(identity) ?? answerOf(identity);
    response.writeHead(200, [...headers, REQUEST_ID_HEADER, requestIdOf(request)]);
    response.end(body);
    observe(200, (performance.now() - started) / 1000);
    return true;
  };
}

/** Renewals (also EST re-enrollments) counted per device certificate (a NAT's devices share an address), else per address. */
export const renewRateKey = (request: FastifyRequest): string => {
  const serial = presentedCertificate(request).serial;
  return serial === undefined ? `ip:${sourceKey(request.ip)}` : `cert:${serial}`;
};

export const deviceRoutes: FastifyPluginAsyncTypebox<{ services: SigningServices; limits: Limits }> = async (app, { services, limits }) => {
  // A known device's plain request is answered before routing (deviceFastPath); this answers the rest.
  app.get(DEVICE_ROUTE, { schema: { response: { 200: DeviceSchema, ...errorResponses(401, 403) } } }, async (request) =>
    deviceView(await authenticateDevice(services, request)),
  );

  app.post(
    '/v1/renew',
    {
      bodyLimit: BODY_LIMITS.csr,
      config: {
        audit: 'renew',
        ...(limits.renewPerMinute === null ? {} : { rateLimit: { max: limits.renewPerMinute, timeWindow: 60_000, keyGenerator: renewRateKey } }),
      },
      onRequest: requireDevice(services, { renewing: true }),
      schema: { body: CsrBodySchema, response: { 201: EnrollmentResultSchema, ...errorResponses(400, 401, 403, 409, 413, 415, 429) } },
    },
    async (request, reply) => {
      const identity = deviceOf(request);
      request.audit = { deviceId: identity.deviceId };
      const result = await services.enrollment.renew(identity, { csr: request.body.csr, source: request.ip });
      request.audit.serial = result.serial;
      return reply.code(201).send(result);
    },
  );
};
