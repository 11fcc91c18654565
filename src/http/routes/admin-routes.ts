/** The operator API under /v1/admin: tokens, devices, certificates, audit. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '../json-schema.js';
import { MAX_PAGE_SIZE } from '../../enrollment/paging.js';
import type { AppServices } from '../../instance.js';
import { REVOCATION_REASONS } from '../../enrollment/model.js';
import { BODY_LIMITS } from '../limits.js';
import { ADMIN_ONLY, ANY_OPERATOR, operatorOf, requireOperator } from '../authenticate.js';
import {
  AuditPageSchema,
  CertificateViewSchema,
  DeviceDetailSchema,
  DevicePageSchema,
  DeviceRevocationSchema,
  errorResponses,
  MintedTokensSchema,
  MintRequestSchema,
  Page,
  PathName,
  RevokedBatchSchema,
  TokenPageSchema,
  TokenViewSchema,
} from '../schemas.js';

const Limit = Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE }));
const Cursor = Type.Optional(Type.String({ minLength: 1, maxLength: 64 }));
const Reason = Type.Object(
  { reason: Type.Optional(Type.Union(REVOCATION_REASONS.map((reason) => Type.Literal(reason)))) },
  { additionalProperties: false },
);
const IdParam = Type.Object({ id: PathName(128) });
const SerialParam = Type.Object({ serial: PathName(64) });
/** Every operator route may refuse the caller (401, 403) or the request (400). */
const refusals = errorResponses(400, 401, 403);

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
      config: { audit: 'tokens.mint' },
      bodyLimit: BODY_LIMITS.tokenBatch,
      schema: {
        response: { 201: MintedTokensSchema, ...refusals, ...errorResponses(409) },
        body: MintRequestSchema,
      },
    },
    async (request, reply) => {
      const minted = await services.tokens.mint(request.body, operatorOf(request));
      const only = minted.tokens.length === 1 ? minted.tokens[0] : undefined;
      request.audit = { count: minted.tokens.length, tokenId: only?.id, deviceId: only?.deviceId ?? undefined };
      return reply.code(201).send(minted);
    },
  );

  app.get(
    '/v1/admin/tokens',
    {
      onRequest: anyOperator,
      config: { audit: 'tokens.list' },
      schema: {
        response: { 200: TokenPageSchema, ...refusals },
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
      config: { audit: 'tokens.revoke_batch' },
      schema: {
        body: Type.Object({ label: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false }),
        response: { 200: RevokedBatchSchema, ...refusals },
      },
    },
    async (request) => {
      const result = await services.tokens.revokeBatch(request.body.label, operatorOf(request));
      request.audit = { count: result.revoked };
      return result;
    },
  );

  app.post(
    '/v1/admin/tokens/:id/revoke',
    {
      onRequest: adminOnly,
      config: { audit: 'tokens.revoke' },
      schema: { params: IdParam, response: { 200: TokenViewSchema, ...refusals, ...errorResponses(404, 409) } },
    },
    async (request) => {
      request.audit = { tokenId: request.params.id };
      return services.tokens.revoke(request.params.id, operatorOf(request));
    },
  );

  app.get(
    '/v1/admin/devices',
    {
      onRequest: adminOnly,
      config: { audit: 'devices.list' },
      schema: {
        response: { 200: DevicePageSchema, ...refusals },
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

  app.get(
    '/v1/admin/devices/:id',
    {
      onRequest: adminOnly,
      config: { audit: 'devices.show' },
      schema: { params: IdParam, response: { 200: DeviceDetailSchema, ...refusals, ...errorResponses(404) } },
    },
    async (request) => {
      request.audit = { deviceId: request.params.id };
      return services.fleet.getDevice(request.params.id);
    },
  );

  app.post(
    '/v1/admin/devices/:id/revoke',
    {
      onRequest: adminOnly,
      preValidation: emptyBodyIsNoReason,
      config: { audit: 'devices.revoke' },
      schema: { params: IdParam, body: Reason, response: { 200: DeviceRevocationSchema, ...refusals, ...errorResponses(404) } },
    },
    async (request) => {
      request.audit = { deviceId: request.params.id };
      const revoked = await services.fleet.revokeDevice(request.params.id, request.body.reason, operatorOf(request));
      request.audit.count = revoked.revokedSerials.length;
      return { ...revoked, revokedSerials: [...revoked.revokedSerials] };
    },
  );

  app.get(
    '/v1/admin/certificates',
    {
      onRequest: adminOnly,
      config: { audit: 'certificates.list' },
      schema: {
        response: { 200: Page(CertificateViewSchema), ...refusals },
        querystring: Type.Object(
          {
            deviceId: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
            kind: Type.Optional(Type.Union([Type.Literal('device'), Type.Literal('operator')])),
            status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('revoked')])),
            limit: Limit,
            cursor: Cursor,
          },
          { additionalProperties: false },
        ),
      },
    },
    async (request) => services.fleet.listCertificates(request.query),
  );

  app.get(
    '/v1/admin/certificates/:serial',
    {
      onRequest: adminOnly,
      config: { audit: 'certificates.show' },
      schema: { params: SerialParam, response: { 200: CertificateViewSchema, ...refusals, ...errorResponses(404) } },
    },
    async (request) => services.fleet.getCertificate(request.params.serial),
  );

  app.post(
    '/v1/admin/certificates/:serial/revoke',
    {
      onRequest: adminOnly,
      preValidation: emptyBodyIsNoReason,
      config: { audit: 'certificates.revoke' },
      schema: {
        params: SerialParam,
        body: Reason,
        response: { 200: CertificateViewSchema, ...refusals, ...errorResponses(404) },
      },
    },
    async (request) => {
      request.audit = { serial: request.params.serial };
      const certificate = await services.fleet.revokeCertificate(request.params.serial, request.body.reason, operatorOf(request));
      request.audit = { serial: certificate.serial, deviceId: certificate.deviceId ?? undefined };
      return certificate;
    },
  );

  app.get(
    '/v1/admin/audit',
    {
      onRequest: adminOnly,
      config: { audit: 'audit.list' },
      schema: {
        response: { 200: AuditPageSchema, ...refusals },
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
