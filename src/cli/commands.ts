/**
 * The CLI's commands. Each parses its flags, opens the data directory and calls the same
 * services as the HTTP API.
 */
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SqliteStore } from '../store/sqlite-store.js';
import { databasePath, initInstance, openInstance, resolveDataDir, type Instance } from '../instance.js';
import { banner, startServer } from '../server.js';
import type { TokenStatus } from '../store/store.js';
import { parseDuration } from './duration.js';
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
const cliActor = () => ({ actor: `cli:${userInfo().username}` });

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
    usage: 'serve [--data DIR] [--host 127.0.0.1] [--port 8443] [init options for a first run]',
    options: { ...dataOption, ...initOptions, host: { type: 'string' }, port: { type: 'string' } },
    async run(values, _positionals, out) {
      const port = int(values.port ?? process.env.IMPRINT_PORT, 'port') ?? 8443;
      const server = await startServer({
        dataDir: resolveDataDir(str(values.data)),
        host: str(values.host) ?? process.env.IMPRINT_HOST ?? '127.0.0.1',
        port,
        passphrase: passphrase(),
        init: initFrom(values, port),
        logger: true,
      });
      out.stderr(banner(server, 'npx imprint'));
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) process.exit(1); // a second signal: exit at once
        stopping = true;
        out.stderr(`${signal}: finishing in-flight requests`);
        server.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
      await new Promise(() => undefined); // runs until a signal
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
    summary: 'revoke an unused token',
    usage: 'tokens revoke [--data DIR] TOKEN_ID',
    options: dataOption,
    async run(values, positionals, out) {
      const [id] = positionals;
      if (!id || positionals.length !== 1) throw new Error('usage: imprint tokens revoke TOKEN_ID');
      await withInstance(values, async (instance) => {
        const token = await instance.tokens.revoke(id, cliActor());
        out.stdout(`${token.id} ${token.status}`);
      });
    },
  },
};
