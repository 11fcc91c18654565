/** Routes for enrolled devices, authenticated by their client certificate. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { SigningServices } from '../../instance.js';
import { authenticateDevice } from '../authenticate.js';
import { CsrBodySchema, EnrollmentResultSchema, errorResponses } from '../schemas.js';
import { BODY_LIMITS, type Limits } from '../limits.js';
import { presentedCertificate } from '../client-certificate.js';
import type { FastifyRequest } from 'fastify';

const DeviceSchema = Type.Object({
  deviceId: Type.String(),
  status: Type.String(),
  serial: Type.String(),
  notAfter: Type.String(),
  enrolledAt: Type.String(),
});

/** Renewals counted per device certificate (a NAT's devices share an address), else per address. */
const renewRateKey = (request: FastifyRequest): string => {
  const serial = presentedCertificate(request).serial;
  return serial === undefined ? `ip:${request.ip}` : `cert:${serial}`;
};

export const deviceRoutes: FastifyPluginAsyncTypebox<{ services: SigningServices; limits: Limits }> = async (app, { services, limits }) => {
  app.get('/v1/device', { schema: { response: { 200: DeviceSchema, ...errorResponses(401, 403) } } }, async (request) => {
    const identity = await authenticateDevice(services, request);
    return {
      deviceId: identity.deviceId,
      status: identity.device.status,
      serial: identity.certificate.serial,
      notAfter: identity.certificate.notAfter.toISOString(),
      enrolledAt: identity.device.enrolledAt.toISOString(),
    };
  });

  app.post(
    '/v1/renew',
    {
      bodyLimit: BODY_LIMITS.csr,
      config: {
        audit: 'renew',
        ...(limits.renewPerMinute === null ? {} : { rateLimit: { max: limits.renewPerMinute, timeWindow: 60_000, keyGenerator: renewRateKey } }),
      },
      schema: { body: CsrBodySchema, response: { 201: EnrollmentResultSchema, ...errorResponses(400, 401, 403, 409, 413, 415, 429) } },
    },
    async (request, reply) => {
      const identity = await authenticateDevice(services, request, { renewing: true });
      request.audit = { deviceId: identity.deviceId };
      const result = await services.enrollment.renew(identity, { csr: request.body.csr, source: request.ip });
      request.audit.serial = result.serial;
      return reply.code(201).send(result);
    },
  );
};
