/**
 * The operator console at /console: a static page (HTML, one CSS file, plain ES modules, no
 * build step) and the JSON routes under /console/api that it calls. Every route calls the
 * same services as the admin API and the CLI; only the shape of some answers differs.
 *
 * Defences: the client certificate is the credential, and a browser sends it with any
 * request to this origin, a cross-site one included. So every /console/api request must
 * carry the X-Imprint-Console header (a cross-site form cannot set a header, and a
 * cross-site fetch with one needs a CORS preflight we never grant), must not be marked
 * cross-site by Sec-Fetch-Site, and, when it writes, must come with an Origin that is this
 * server. No cookies are used. Every console answer carries a strict Content-Security-Policy
 * (scripts and styles from this origin only, nothing inline) with frame-ancestors 'none'.
 */
import helmet from '@fastify/helmet';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Type } from '../json-schema.js';
import { MAX_PAGE_SIZE } from '../../enrollment/paging.js';
import { packageDirectory } from '../../package-files.js';
import { ImprintError } from '../../errors.js';
import type { AppServices } from '../../instance.js';
import { REVOCATION_REASONS } from '../../enrollment/model.js';
import { VERSION } from '../../version.js';
import { ADMIN_ONLY, ANY_OPERATOR, operatorOf, requireOperator } from '../authenticate.js';
import { presentedCertificate } from '../client-certificate.js';
import { MintRequestSchema, PathName } from '../schemas.js';
import { BODY_LIMITS } from '../limits.js';
import { refuseCrossSite } from '../same-origin.js';
import { metrics } from '../metrics.js';

/** The header every console API request carries; a cross-site form cannot send it. */
export const CONSOLE_HEADER = 'x-imprint-console';

/** The console's policy: nothing inline, nothing from elsewhere, never framed. */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

/** The files the console serves, each with its fixed type; nothing else is read from disk. */
const ASSETS: Readonly<Record<string, string>> = {
  'console.css': 'text/css; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'dom.js': 'text/javascript; charset=utf-8',
  'api.js': 'text/javascript; charset=utf-8',
  'fleet.js': 'text/javascript; charset=utf-8',
  'device.js': 'text/javascript; charset=utf-8',
  'batches.js': 'text/javascript; charset=utf-8',
  'audit.js': 'text/javascript; charset=utf-8',
  'status.js': 'text/javascript; charset=utf-8',
};

/** The console's files, read once at start-up. */
function loadAssets(): { index: Buffer; assets: Map<string, Buffer> } {
  const directory = packageDirectory('console', 'index.html');
  return {
    index: readFileSync(join(directory, 'index.html')),
    assets: new Map(Object.keys(ASSETS).map((name) => [name, readFileSync(join(directory, name))])),
  };
}

/** Sets the console's headers on every answer of this plugin, errors included. */
async function consoleHeaders(_request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> {
  reply.header('content-security-policy', CONSOLE_CSP);
  reply.header('x-frame-options', 'DENY');
  reply.header('cross-origin-resource-policy', 'same-origin');
  if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
  return payload;
}

/**
 * The CSRF check of every console API request (see the module comment). Origin is compared
 * with the Host the request was sent to: a page of another origin, also another port of
 * this host, is refused.
 */
async function sameOriginOnly(request: FastifyRequest): Promise<void> {
  if (request.headers[CONSOLE_HEADER] !== '1') {
    throw new ImprintError('forbidden', `console API requests must carry the ${CONSOLE_HEADER} header`);
  }
  refuseCrossSite(request);
  if (request.method !== 'GET' && request.method !== 'HEAD' && request.headers.origin === undefined) {
    throw new ImprintError('forbidden', 'a console request that changes something must carry Origin');
  }
}

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** The page shown instead of the console when the browser presented no usable operator certificate. */
function certificateNeededPage(reason: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Client certificate needed - imprint console</title>
<link rel="stylesheet" href="/console/assets/console.css">
</head>
<body>
<main class="notice" id="certificate-needed">
<h1>A client certificate is needed</h1>
<p>The imprint console signs you in with your operator certificate, not a password. ${escapeHtml(reason)}</p>
<h2>Get one</h2>
<p>On the CA host an admin runs <code>imprint operators issue NAME --role admin --out DIR</code>
(or <code>--role provisioner</code> for someone who only mints token batches). It writes
<code>NAME.p12</code> and prints its passphrase once.</p>
<h2>Import it into your browser</h2>
<ul>
<li><strong>Chrome or Edge on Windows and Linux</strong>: Settings, Privacy and security, Security, Manage certificates,
Your certificates, Import; choose the .p12 and type its passphrase.</li>
<li><strong>Firefox</strong>: Settings, Privacy &amp; Security, Certificates, View Certificates, Your Certificates, Import.</li>
<li><strong>macOS (Safari and Chrome)</strong>: open the .p12 in Keychain Access (double-click it), import into the
login keychain; the browser offers it on the next visit.</li>
</ul>
<p>Also make sure the browser trusts this server: import <code>ca/root.pem</code> as an authority (Firefox: Authorities tab),
or use a server certificate your browsers already trust.
Then reload this page and pick the imprint certificate when the browser asks.</p>
</main>
</body>
</html>
`;
}

const Limit = Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE }));
const Cursor = Type.Optional(Type.String({ minLength: 1, maxLength: 64 }));
const Status = Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('revoked')]));

/** The console: its page, its files and its API. */
export const consoleRoutes: FastifyPluginAsyncTypebox<{ services: AppServices }> = async (app, { services }) => {
  const { index, assets } = loadAssets();
  app.decorateRequest('operator', undefined);
  const anyOperator = requireOperator(services, ANY_OPERATOR);
  const adminOnly = requireOperator(services, ADMIN_ONLY);
  const api = { anyOperator: [sameOriginOnly, anyOperator], adminOnly: [sameOriginOnly, adminOnly] };
  const startedAt = Date.now();
  // Helmet's full set for the one HTML surface; its CSP is the console's own (consoleHeaders).
  await app.register(helmet, { contentSecurityPolicy: false });
  app.addHook('onSend', consoleHeaders);

  app.get('/console', { schema: { hide: true } }, async (request, reply) => {
    try {
      await services.clients.operator(presentedCertificate(request), ANY_OPERATOR);
    } catch (error) {
      if (!(error instanceof ImprintError)) throw error;
      const status = error.code === 'forbidden' ? 403 : 401;
      const reason =
        error.code === 'client_cert_required'
          ? 'Your browser did not present one.'
          : error.code === 'forbidden'
            ? 'The certificate your browser presented is not an operator certificate.'
            : `The certificate your browser presented was refused: ${error.message}.`;
      return reply.code(status).type('text/html; charset=utf-8').send(certificateNeededPage(reason));
    }
    return reply.type('text/html; charset=utf-8').send(index);
  });
  app.get('/console/', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/console'));

  app.get(
    '/console/assets/:name',
    { schema: { hide: true, params: Type.Object({ name: Type.String({ maxLength: 64 }) }) } },
    async (request, reply) => {
      const { name } = request.params;
      const body = Object.hasOwn(ASSETS, name) ? assets.get(name) : undefined;
      if (!body) throw new ImprintError('not_found', `no console file ${name}`);
      return reply.type(ASSETS[name]!).header('x-content-type-options', 'nosniff').header('cache-control', 'no-cache').send(body);
    },
  );

  app.get('/console/api/session', { onRequest: api.anyOperator, schema: { hide: true } }, async (request) => {
    const operator = operatorOf(request);
    return { operator: operator.name, role: operator.role, version: VERSION, reasons: REVOCATION_REASONS };
  });

  app.get(
    '/console/api/devices',
    {
      onRequest: api.adminOnly,
      config: { audit: 'devices.list' },
      schema: {
        hide: true,
        querystring: Type.Object(
          {
            sort: Type.Optional(Type.Union([Type.Literal('enrolled'), Type.Literal('expiry')])),
            status: Status,
            q: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
            limit: Limit,
            cursor: Cursor,
          },
          { additionalProperties: false },
        ),
      },
    },
    async (request) => services.fleet.browseDevices(request.query),
  );

  app.get('/console/api/fleet-counts', { onRequest: api.adminOnly, schema: { hide: true } }, async () => services.fleet.counts());

  app.get(
    '/console/api/devices/:id',
    {
      onRequest: api.adminOnly,
      config: { audit: 'devices.show' },
      schema: { hide: true, params: Type.Object({ id: PathName(128) }) },
    },
    async (request) => {
      request.audit = { deviceId: request.params.id };
      return services.fleet.inspectDevice(request.params.id);
    },
  );

  app.post(
    '/console/api/devices/:id/revoke',
    {
      onRequest: api.adminOnly,
      config: { audit: 'devices.revoke' },
      schema: {
        hide: true,
        params: Type.Object({ id: PathName(128) }),
        body: Type.Object({ reason: Type.Union(REVOCATION_REASONS.map((reason) => Type.Literal(reason))) }, { additionalProperties: false }),
      },
    },
    async (request) => {
      request.audit = { deviceId: request.params.id };
      const revoked = await services.fleet.revokeDevice(request.params.id, request.body.reason, operatorOf(request));
      request.audit.count = revoked.revokedSerials.length;
      return { revokedSerials: [...revoked.revokedSerials], device: await services.fleet.inspectDevice(request.params.id) };
    },
  );

  app.get('/console/api/batches', { onRequest: api.anyOperator, config: { audit: 'tokens.list' }, schema: { hide: true } }, async () => ({
    items: await services.tokens.listBatches(),
  }));

  app.post(
    '/console/api/batches',
    {
      onRequest: api.anyOperator,
      config: { audit: 'tokens.mint' },
      bodyLimit: BODY_LIMITS.tokenBatch,
      schema: {
        hide: true,
        body: MintRequestSchema,
      },
    },
    async (request, reply) => {
      const minted = await services.tokens.mint(request.body, operatorOf(request));
      request.audit = { count: minted.tokens.length };
      return reply.code(201).send(minted);
    },
  );

  app.post(
    '/console/api/batches/revoke',
    {
      onRequest: api.adminOnly,
      config: { audit: 'tokens.revoke_batch' },
      schema: { hide: true, body: Type.Object({ label: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false }) },
    },
    async (request) => {
      const result = await services.tokens.revokeBatch(request.body.label, operatorOf(request));
      request.audit = { count: result.revoked };
      return result;
    },
  );

  app.get(
    '/console/api/audit',
    {
      onRequest: api.adminOnly,
      config: { audit: 'audit.list' },
      schema: {
        hide: true,
        querystring: Type.Object(
          {
            actor: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
            deviceId: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
            action: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
            limit: Limit,
            cursor: Cursor,
          },
          { additionalProperties: false },
        ),
      },
    },
    async (request) => services.audit.browse(request.query),
  );

  app.get('/console/api/audit/verify', { onRequest: api.adminOnly, schema: { hide: true } }, async () => services.audit.verify());

  app.get('/console/api/status', { onRequest: api.adminOnly, schema: { hide: true } }, async () => ({
    version: VERSION,
    node: process.version,
    uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
    processUptimeSeconds: Math.round(process.uptime()),
    crl: await services.crls.issuerStatus(),
    ocsp: await ocspCounters(),
  }));
};

/**
 * This process's OCSP answers by status, from the metrics registry; under `--workers N` it
 * is the answering worker's share (GET /metrics sums the workers).
 */
async function ocspCounters(): Promise<{ status: string; kind: string; count: number }[]> {
  const metric = metrics().registry.getSingleMetric('imprint_ocsp_responses_total');
  if (!metric) return [];
  const { values } = await metric.get();
  return values
    .filter((value) => value.value > 0 || (value.labels.status === 'good' && value.labels.kind === 'fresh'))
    .map((value) => ({ status: String(value.labels.status), kind: String(value.labels.kind), count: value.value }));
}
