/**
 * The CLI's commands. Each parses its flags, opens the data directory and calls the same
 * services as the HTTP API.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, userInfo } from 'node:os';
import type { ParseArgsConfig } from 'node:util';
import { SqliteStore } from '../store/sqlite-store.js';
import { databasePath, initInstance, openInstance, resolveDataDir, type Instance } from '../instance.js';
import { limitsFrom } from '../http/limits.js';
import { serve } from '../serve.js';
import type { TokenStatus } from '../store/store.js';
import { toPem } from '../ca/pem.js';
import { backupStore } from '../enrollment/backup.js';
import { checkOperatorName } from '../enrollment/operator-service.js';
import type { CertificateView } from '../enrollment/views.js';
import type { Actor } from '../enrollment/actor.js';
import { writeFileAtomic } from '../files.js';
import { REVOCATION_REASONS } from '../store/store.js';
import { parseDuration } from './duration.js';
import { renewalOptions, renewalPolicyFrom } from './renewal-options.js';
import { operatorFiles, writeOperatorFiles } from './operator-files.js';
import { table } from './table.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** One CLI command. */
export interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly options: Options;
  run(values: Values, positionals: string[], out: Output): Promise<void>;
}

/** Where commands write: stdout for results, stderr for messages. */
export interface Output {
  stdout(text: string): void;
  stderr(text: string): void;
}

const dataOption: Options = { data: { type: 'string' } };
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const int = (value: unknown, name: string): number | undefined => {
  if (value === undefined) return undefined;
  const text = String(value);
  if (!/^\d{1,9}$/.test(text)) throw new Error(`--${name} must be a whole number`);
  return Number(text);
};
const passphrase = () => process.env.IMPRINT_CA_PASSPHRASE || undefined;
const cliActor = (): Actor => ({ actor: `cli:${userInfo().username}`, role: 'admin' });

async function withInstance<T>(values: Values, body: (instance: Instance) => Promise<T>): Promise<T> {
  const instance = await openInstance(resolveDataDir(str(values.data)), { passphrase: passphrase() });
  try {
    return await body(instance);
  } finally {
    await instance.close();
  }
}

const initOptions: Options = {
  hostname: { type: 'string', multiple: true },
  org: { type: 'string' },
  'trust-domain': { type: 'string' },
  'public-url': { type: 'string' },
  'device-validity': { type: 'string' },
};

function initFrom(values: Values, port?: number) {
  const validity = str(values['device-validity']);
  return {
    hostnames: values.hostname as string[] | undefined,
    org: str(values.org),
    trustDomain: str(values['trust-domain']),
    publicUrl: str(values['public-url']),
    deviceValidityDays: validity === undefined ? undefined : Math.round(parseDuration(validity.replace(/^(\d+)$/, '$1d')) / 86_400),
    port,
  };
}

/** `tokens create` output formats. */
function formatTokens(tokens: { id: string; token: string; deviceId: string | null; expiresAt: string }[], format: string): string {
  if (format === 'json') return JSON.stringify({ tokens }, null, 2);
  if (format === 'csv') {
    return ['id,token,deviceId,expiresAt', ...tokens.map((t) => [t.id, t.token, t.deviceId ?? '', t.expiresAt].join(','))].join('\n');
  }
  return tokens.map((t) => t.token).join('\n');
}

/** Reads device ids from a file: one per line, blank lines and # comments ignored. */
function readDeviceIds(path: string): string[] {
  return readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
}

const TOKEN_STATUSES: readonly TokenStatus[] = ['unused', 'used', 'expired', 'revoked'];

const listOptions: Options = { limit: { type: 'string' }, cursor: { type: 'string' }, json: { type: 'boolean' } };

const optional = <K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } =>
  (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };

function pageQuery(values: Values): { limit?: number; cursor?: string } {
  return { ...optional('limit', int(values.limit, 'limit')), ...optional('cursor', str(values.cursor)) };
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], name: string): T | undefined {
  if (value === undefined) return undefined;
  if (!allowed.includes(value as T)) throw new Error(`--${name} must be one of ${allowed.join(', ')}`);
  return value as T;
}

function onePositional(positionals: string[], usage: string): string {
  if (positionals.length !== 1) throw new Error(`usage: imprint ${usage}`);
  return positionals[0]!;
}

/** Prints a listing as a table (stdout) with the next cursor on stderr, or as JSON. */
function printPage<T>(
  out: Output,
  values: Values,
  page: { items: T[]; nextCursor: string | null },
  headers: readonly string[],
  row: (item: T) => (string | null | undefined)[],
): void {
  if (values.json) return out.stdout(JSON.stringify(page, null, 2));
  out.stdout(table(headers, page.items.map(row)));
  if (page.nextCursor) out.stderr(`more: --cursor ${page.nextCursor}`);
}

const CERTIFICATE_HEADERS = ['SERIAL', 'KIND', 'SUBJECT', 'STATUS', 'NOT AFTER', 'REVOKED', 'REASON'];
const certificateRow = (c: CertificateView) => [c.serial, c.kind, c.subject, c.status, c.notAfter, c.revokedAt, c.revocationReason];
const certificateTable = (certificates: CertificateView[]) => table(CERTIFICATE_HEADERS, certificates.map(certificateRow));

export const COMMANDS: Readonly<Record<string, Command>> = {
  init: {
    summary: 'create a root CA, an issuing CA, a server certificate and the database',
    usage:
      'init [--data DIR] [--hostname NAME]... [--org ORG] [--trust-domain DOMAIN] [--public-url URL] [--device-validity 90d]\n' +
      '     [--import-issuer CERT.pem --import-key KEY.pem --import-chain CHAIN.pem [--import-key-passphrase-env VAR]]',
    options: {
      ...dataOption,
      ...initOptions,
      'import-issuer': { type: 'string' },
      'import-key': { type: 'string' },
      'import-chain': { type: 'string' },
      'import-key-passphrase-env': { type: 'string' },
    },
    async run(values, _positionals, out) {
      const dataDir = resolveDataDir(str(values.data));
      const importing = [values['import-issuer'], values['import-key'], values['import-chain']];
      if (importing.some(Boolean) && !importing.every(Boolean)) {
        throw new Error('--import-issuer, --import-key and --import-chain go together');
      }
      const keyPassphraseEnv = str(values['import-key-passphrase-env']);
      const settings = await initInstance(dataDir, {
        ...initFrom(values),
        passphrase: passphrase(),
        importCa: importing.every(Boolean)
          ? {
              certificatePem: readFileSync(str(values['import-issuer'])!, 'utf8'),
              keyPem: readFileSync(str(values['import-key'])!, 'utf8'),
              chainPem: readFileSync(str(values['import-chain'])!, 'utf8'),
              keyPassphrase: keyPassphraseEnv ? process.env[keyPassphraseEnv] : undefined,
            }
          : undefined,
      });
      out.stdout(`initialised ${dataDir} (trust domain ${settings.trustDomain}, public URL ${settings.publicUrl})`);
    },
  },

  serve: {
    summary: 'serve the HTTPS API (initialises an empty data directory first)',
    usage:
      'serve [--data DIR] [--host 127.0.0.1] [--port 8443] [--status-port PORT] [--workers N] [--rate-limit on|off] ' +
      '[--renew-overlap 24h] [--renewals-per-day 10] [--renew-after-expiry off|DURATION] [init options for a first run]',
    options: {
      ...dataOption,
      ...initOptions,
      host: { type: 'string' },
      port: { type: 'string' },
      'status-port': { type: 'string' },
      workers: { type: 'string' },
      'rate-limit': { type: 'string' },
      ...renewalOptions,
    },
    async run(values, _positionals, out) {
      const port = int(values.port ?? process.env.IMPRINT_PORT, 'port') ?? 8443;
      const workers = int(values.workers ?? process.env.IMPRINT_WORKERS, 'workers') ?? availableParallelism();
      if (workers < 1 || workers > 64) throw new Error('--workers must be between 1 and 64');
      await serve(
        {
          dataDir: resolveDataDir(str(values.data)),
          host: str(values.host) ?? process.env.IMPRINT_HOST ?? '127.0.0.1',
          port,
          statusPort: int(values['status-port'] ?? process.env.IMPRINT_STATUS_PORT, 'status-port'),
          passphrase: passphrase(),
          init: initFrom(values, port),
          logger: true,
          limits: limitsFrom(process.env, str(values['rate-limit'])),
          renewal: renewalPolicyFrom(values),
        },
        workers,
        out,
      );
    },
  },

  migrate: {
    summary: 'apply pending database migrations',
    usage: 'migrate [--data DIR]',
    options: dataOption,
    async run(values, _positionals, out) {
      const store = SqliteStore.open(databasePath(resolveDataDir(str(values.data))));
      await store.close();
      out.stdout('database schema is up to date');
    },
  },

  'tokens create': {
    summary: 'mint one-time bootstrap tokens (shown once)',
    usage:
      'tokens create [--data DIR] [--count N] [--ttl 7d] [--label LABEL] [--device-id ID]... [--device-ids-file F] [--format lines|json|csv]',
    options: {
      ...dataOption,
      count: { type: 'string' },
      ttl: { type: 'string' },
      label: { type: 'string' },
      'device-id': { type: 'string', multiple: true },
      'device-ids-file': { type: 'string' },
      format: { type: 'string' },
    },
    async run(values, _positionals, out) {
      const format = str(values.format) ?? 'lines';
      if (!['lines', 'json', 'csv'].includes(format)) throw new Error('--format must be lines, json or csv');
      const fileIds = str(values['device-ids-file']);
      const ids = [...((values['device-id'] as string[] | undefined) ?? []), ...(fileIds ? readDeviceIds(fileIds) : [])];
      const ttl = str(values.ttl);
      await withInstance(values, async (instance) => {
        const { tokens } = await instance.tokens.mint(
          {
            count: int(values.count, 'count'),
            ttlSeconds: ttl === undefined ? undefined : parseDuration(ttl),
            deviceIds: ids.length ? ids : undefined,
            label: str(values.label),
          },
          cliActor(),
        );
        out.stdout(formatTokens(tokens, format));
      });
    },
  },

  'tokens list': {
    summary: 'list bootstrap tokens (never the secrets)',
    usage: 'tokens list [--data DIR] [--status unused|used|expired|revoked] [--label L] [--limit N] [--cursor C] [--json]',
    options: {
      ...dataOption,
      status: { type: 'string' },
      label: { type: 'string' },
      limit: { type: 'string' },
      cursor: { type: 'string' },
      json: { type: 'boolean' },
    },
    async run(values, _positionals, out) {
      const status = str(values.status);
      if (status !== undefined && !TOKEN_STATUSES.includes(status as TokenStatus)) {
        throw new Error(`--status must be one of ${TOKEN_STATUSES.join(', ')}`);
      }
      await withInstance(values, async (instance) => {
        const page = await instance.tokens.list({
          status: status as TokenStatus | undefined,
          label: str(values.label),
          limit: int(values.limit, 'limit') ?? 100,
          cursor: str(values.cursor),
        });
        if (values.json) return out.stdout(JSON.stringify(page, null, 2));
        out.stdout(
          table(
            ['ID', 'STATUS', 'LABEL', 'DEVICE', 'EXPIRES', 'USED BY'],
            page.items.map((t) => [t.id, t.status, t.label, t.deviceId, t.expiresAt, t.usedByDevice]),
          ),
        );
        if (page.nextCursor) out.stderr(`more: --cursor ${page.nextCursor}`);
      });
    },
  },

  'tokens revoke': {
    summary: 'revoke an unused token, or every unused token of a batch (--label)',
    usage: 'tokens revoke [--data DIR] TOKEN_ID | --label LABEL',
    options: { ...dataOption, label: { type: 'string' } },
    async run(values, positionals, out) {
      const label = str(values.label);
      const [id] = positionals;
      if ((label === undefined) === (positionals.length !== 1)) {
        throw new Error('usage: imprint tokens revoke TOKEN_ID | --label LABEL');
      }
      await withInstance(values, async (instance) => {
        if (label !== undefined) {
          const result = await instance.tokens.revokeBatch(label, cliActor());
          return out.stdout(`revoked ${result.revoked} unused tokens of batch ${label}`);
        }
        const token = await instance.tokens.revoke(id!, cliActor());
        out.stdout(`${token.id} ${token.status}`);
      });
    },
  },

  'devices list': {
    summary: 'list and search the fleet',
    usage: 'devices list [--data DIR] [--status active|revoked] [--q TEXT] [--limit N] [--cursor C] [--json]',
    options: { ...dataOption, ...listOptions, status: { type: 'string' }, q: { type: 'string' } },
    async run(values, _positionals, out) {
      const status = oneOf(values.status, ['active', 'revoked'] as const, 'status');
      await withInstance(values, async (instance) => {
        const page = await instance.fleet.listDevices({ ...pageQuery(values), ...(status ? { status } : {}), ...optional('q', str(values.q)) });
        printPage(out, values, page, ['DEVICE', 'STATUS', 'ENROLLED', 'SERIAL'], (d) => [d.id, d.status, d.enrolledAt, d.currentSerial]);
      });
    },
  },

  'devices show': {
    summary: 'show one device with its certificate history',
    usage: 'devices show [--data DIR] DEVICE_ID [--json]',
    options: { ...dataOption, json: { type: 'boolean' } },
    async run(values, positionals, out) {
      const id = onePositional(positionals, 'devices show DEVICE_ID');
      await withInstance(values, async (instance) => {
        const device = await instance.fleet.getDevice(id);
        if (values.json) return out.stdout(JSON.stringify(device, null, 2));
        out.stdout(`${device.id}  ${device.status}  enrolled ${device.enrolledAt}${device.revokedAt ? `  revoked ${device.revokedAt} (${device.revocationReason})` : ''}\n`);
        out.stdout(certificateTable(device.certificates));
      });
    },
  },

  'devices revoke': {
    summary: 'revoke a device and all its unexpired certificates',
    usage: `devices revoke [--data DIR] DEVICE_ID [--reason ${REVOCATION_REASONS.join('|')}]`,
    options: { ...dataOption, reason: { type: 'string' } },
    async run(values, positionals, out) {
      const id = onePositional(positionals, 'devices revoke DEVICE_ID');
      await withInstance(values, async (instance) => {
        const device = await instance.fleet.revokeDevice(id, str(values.reason), cliActor());
        out.stdout(`${device.id} ${device.status} (${device.revokedSerials.length} certificate(s) revoked now)`);
      });
    },
  },

  'certs list': {
    summary: 'list issued certificates',
    usage: 'certs list [--data DIR] [--device ID] [--kind device|operator] [--status active|revoked] [--limit N] [--cursor C] [--json]',
    options: { ...dataOption, ...listOptions, device: { type: 'string' }, kind: { type: 'string' }, status: { type: 'string' } },
    async run(values, _positionals, out) {
      const kind = oneOf(values.kind, ['device', 'operator'] as const, 'kind');
      const status = oneOf(values.status, ['active', 'revoked'] as const, 'status');
      await withInstance(values, async (instance) => {
        const page = await instance.fleet.listCertificates({
          ...pageQuery(values),
          ...optional('deviceId', str(values.device)),
          ...(kind ? { kind } : {}),
          ...(status ? { status } : {}),
        });
        printPage(out, values, page, CERTIFICATE_HEADERS, certificateRow);
      });
    },
  },

  'certs show': {
    summary: 'show one certificate (with its PEM)',
    usage: 'certs show [--data DIR] SERIAL [--json]',
    options: { ...dataOption, json: { type: 'boolean' } },
    async run(values, positionals, out) {
      const serial = onePositional(positionals, 'certs show SERIAL');
      await withInstance(values, async (instance) => {
        const certificate = await instance.fleet.getCertificate(serial);
        if (values.json) return out.stdout(JSON.stringify(certificate, null, 2));
        out.stdout(certificateTable([certificate]));
        out.stdout(certificate.pem ?? '');
      });
    },
  },

  'certs revoke': {
    summary: 'revoke one certificate by serial (the device stays active)',
    usage: `certs revoke [--data DIR] SERIAL [--reason ${REVOCATION_REASONS.join('|')}]`,
    options: { ...dataOption, reason: { type: 'string' } },
    async run(values, positionals, out) {
      const serial = onePositional(positionals, 'certs revoke SERIAL');
      await withInstance(values, async (instance) => {
        const certificate = await instance.fleet.revokeCertificate(serial, str(values.reason), cliActor());
        out.stdout(`${certificate.serial} ${certificate.status} (${certificate.revocationReason})`);
      });
    },
  },

  'operators issue': {
    summary: 'issue an operator identity: NAME.pem, NAME.key (0600) and NAME.p12 in --out',
    usage: 'operators issue [--data DIR] NAME --role admin|provisioner --out DIR [--validity 365d]',
    options: { ...dataOption, role: { type: 'string' }, out: { type: 'string' }, validity: { type: 'string' } },
    async run(values, positionals, out) {
      const name = onePositional(positionals, 'operators issue NAME --role admin|provisioner --out DIR');
      const outDir = str(values.out);
      if (!outDir) throw new Error('--out DIR is required');
      const validity = str(values.validity);
      checkOperatorName(name);
      const files = operatorFiles(outDir, name);
      await withInstance(values, async (instance) => {
        const issued = await instance.signing().operators.issue(
          {
            name,
            role: str(values.role) ?? '',
            validityDays: validity === undefined ? undefined : Math.round(parseDuration(validity.replace(/^(\d+)$/, '$1d')) / 86_400),
          },
          cliActor(),
        );
        const written = writeOperatorFiles(files, issued, out);
        out.stdout(`issued ${issued.role} ${issued.name} (serial ${issued.serial}, valid until ${issued.notAfter}): ${written.join(', ')}`);
      });
    },
  },

  'operators list': {
    summary: 'list operators',
    usage: 'operators list [--data DIR] [--json]',
    options: { ...dataOption, json: { type: 'boolean' } },
    async run(values, _positionals, out) {
      await withInstance(values, async (instance) => {
        const operators = await instance.signing().operators.list();
        if (values.json) return out.stdout(JSON.stringify({ items: operators }, null, 2));
        out.stdout(table(['NAME', 'ROLE', 'STATUS', 'CREATED', 'BY'], operators.map((o) => [o.name, o.role, o.status, o.createdAt, o.createdBy])));
      });
    },
  },

  'operators revoke': {
    summary: 'revoke an operator, its certificates and the unused tokens it minted',
    usage: 'operators revoke [--data DIR] NAME',
    options: dataOption,
    async run(values, positionals, out) {
      const name = onePositional(positionals, 'operators revoke NAME');
      await withInstance(values, async (instance) => {
        const operator = await instance.signing().operators.revoke(name, cliActor());
        out.stdout(
          `${operator.name} ${operator.status} (${operator.revokedSerials.length} certificate(s) and ${operator.revokedTokens} unused token(s) revoked)`,
        );
      });
    },
  },

  crl: {
    summary: 'write the current CRL as PEM (for nginx, mosquitto, ...)',
    usage: 'crl [--data DIR] [--out FILE] [--with-root] [--der]',
    options: { ...dataOption, out: { type: 'string' }, 'with-root': { type: 'boolean' }, der: { type: 'boolean' } },
    async run(values, _positionals, out) {
      if (values.der && values['with-root']) throw new Error('--der writes one CRL; --with-root needs PEM');
      await withInstance(values, async (instance) => {
        const crls = instance.signing().crls;
        const ders = [await crls.issuerCrl(), ...(values['with-root'] ? [await crls.rootCrl()] : [])];
        const content = values.der ? ders[0]! : ders.map((der) => toPem(der, 'X509 CRL')).join('');
        const file = str(values.out);
        if (file) writeFileAtomic(file, content);
        else if (values.der) process.stdout.write(content);
        else out.stdout(content as string);
      });
    },
  },

  backup: {
    summary: 'write an online, consistent copy of the database to FILE (0600) while the server serves',
    usage: 'backup [--data DIR] FILE',
    options: dataOption,
    async run(values, positionals, out) {
      const file = onePositional(positionals, 'backup FILE');
      await withInstance(values, async (instance) => {
        const written = await backupStore(instance.store, instance.clock, file, cliActor());
        out.stdout(`backup written to ${written.file} (${written.bytes} bytes); to restore, see the README (Shutdown, backup and restore)`);
      });
    },
  },

  audit: {
    summary: 'show the audit log: who did what, when, from where',
    usage: 'audit [--data DIR] [--since ISO-TIME] [--limit N] [--cursor C] [--json]',
    options: { ...dataOption, ...listOptions, since: { type: 'string' } },
    async run(values, _positionals, out) {
      await withInstance(values, async (instance) => {
        const page = await instance.audit.list({ since: str(values.since), ...pageQuery(values) });
        printPage(out, values, page, ['ID', 'TIME', 'ACTOR', 'ACTION', 'OUTCOME', 'SOURCE', 'SUBJECT'], (e) => [
          String(e.id),
          e.at,
          e.actor,
          e.action,
          e.outcome,
          e.source,
          e.deviceId ?? e.serial ?? e.tokenId,
        ]);
      });
    },
  },

  'audit verify': {
    summary: 'check the audit log hash chain; fails if any event was edited or deleted',
    usage: 'audit verify [--data DIR] [--head HASH]',
    options: { ...dataOption, head: { type: 'string' } },
    async run(values, _positionals, out) {
      const head = str(values.head);
      if (head !== undefined && !/^[0-9a-f]{64}$/.test(head)) throw new Error('--head must be a head hash printed by an earlier audit verify');
      await withInstance(values, async (instance) => {
        const result = await instance.audit.verify(head);
        if (!result.ok) throw new Error(`audit log broken at event ${result.problem!.id}: ${result.problem!.reason} (${result.checked} events before it verified)`);
        out.stdout(`audit log intact: ${result.checked} events verified, head ${result.head}`);
      });
    },
  },
};
