/** The operator API under /v1/admin: tokens, devices, certificates, audit. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { MAX_TOKENS_PER_REQUEST, MAX_TOKEN_TTL_SECONDS, MIN_TOKEN_TTL_SECONDS } from '../../enrollment/tokens.js';
import { MAX_PAGE_SIZE } from '../../enrollment/paging.js';
import type { AppServices } from '../../instance.js';
import { REVOCATION_REASONS } from '../../store/store.js';
import { BODY_LIMITS } from '../limits.js';
import { ADMIN_ONLY, ANY_OPERATOR, operatorOf, requireOperator } from '../authenticate.js';

const Limit = Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE }));
const Cursor = Type.Optional(Type.String({ minLength: 1, maxLength: 64 }));
const Reason = Type.Object(
  { reason: Type.Optional(Type.Union(REVOCATION_REASONS.map((reason) => Type.Literal(reason)))) },
  { additionalProperties: false },
);
const IdParam = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });

/** A revocation without a body is a revocation without a reason (the reason is optional). */
async function emptyBodyIsNoReason(request: { body: unknown }): Promise<void> {
  request.body ??= {};
}

export const adminRoutes: FastifyPluginAsyncTypebox<{ services: AppServices }> = async (app, { services }) => {
  app.decorateRequest('operator', undefined);
  const anyOperator = requireOperator(services, ANY_OPERATOR);
  const adminOnly = requireOperator(services, ADMIN_ONLY);

  app.post(
    '/v1/admin/tokens',
    {
      onRequest: anyOperator,
      bodyLimit: BODY_LIMITS.tokenBatch,
      schema: {
        body: Type.Object(
          {
            count: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TOKENS_PER_REQUEST })),
            ttlSeconds: Type.Optional(Type.Integer({ minimum: MIN_TOKEN_TTL_SECONDS, maximum: MAX_TOKEN_TTL_SECONDS })),
            deviceIds: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, maxItems: MAX_TOKENS_PER_REQUEST })),
            label: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (request, reply) => reply.code(201).send(await services.tokens.mint(request.body, operatorOf(request))),
  );

  app.get(
    '/v1/admin/tokens',
    {
      onRequest: anyOperator,
      schema: {
        querystring: Type.Object(
          {
            status: Type.Optional(Type.Union([Type.Literal('unused'), Type.Literal('used'), Type.Literal('expired'), Type.Literal('revoked')])),
            label: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
            limit: Limit,
            cursor: Cursor,
          },
          { additionalProperties: false },
        ),
      },
    },
    async (request) => services.tokens.list(request.query),
  );

  app.post(
    '/v1/admin/tokens/revoke',
    {
      onRequest: adminOnly,
      schema: {
        body: Type.Object({ label: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false }),
      },
    },
    async (request) => services.tokens.revokeBatch(request.body.label, operatorOf(request)),
  );

  app.post('/v1/admin/tokens/:id/revoke', { onRequest: adminOnly, schema: { params: IdParam } }, async (request) =>
    services.tokens.revoke(request.params.id, operatorOf(request)),
  );

  app.get(
    '/v1/admin/devices',
    {
      onRequest: adminOnly,
      schema: {
        querystring: Type.Object(
          {
            status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('revoked')])),
            q: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
            limit: Limit,
            cursor: Cursor,
          },
          { additionalProperties: false },
        ),
      },
    },
    async (request) => services.fleet.listDevices(request.query),
  );

  app.get('/v1/admin/devices/:id', { onRequest: adminOnly, schema: { params: IdParam } }, async (request) =>
    services.fleet.getDevice(request.params.id),
  );

  app.post(
    '/v1/admin/devices/:id/revoke',
    { onRequest: adminOnly, preValidation: emptyBodyIsNoReason, schema: { params: IdParam, body: Reason } },
    async (request) => services.fleet.revokeDevice(request.params.id, request.body.reason, operatorOf(request)),
  );

  app.post(
    '/v1/admin/certificates/:serial/revoke',
    {
      onRequest: adminOnly,
      preValidation: emptyBodyIsNoReason,
      schema: { params: Type.Object({ serial: Type.String({ minLength: 1, maxLength: 64 }) }), body: Reason },
    },
    async (request) => services.fleet.revokeCertificate(request.params.serial, request.body.reason, operatorOf(request)),
  );

  app.get(
    '/v1/admin/audit',
    {
      onRequest: adminOnly,
      schema: {
        querystring: Type.Object(
          {
            since: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
            limit: Limit,
            cursor: Cursor,
          },
          { additionalProperties: false },
        ),
      },
    },
    async (request) => services.audit.list(request.query),
  );
};
