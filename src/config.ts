/**
 * imprint's configuration: every setting read once, from the command line, the environment
 * and an optional JSON file (`--config imprint.json`), in that order of precedence over
 * the defaults, and each setting validated against its schema. Secrets also come from files
 * (`NAME_FILE`, as container secrets and systemd's LoadCredential hand them over) and are
 * never printed.
 *
 * Every CLI process reads the configuration first, the cluster primary too, which otherwise
 * only forks: this module loads no schema library (TypeBox alone adds ~20 MB to a process,
 * ajv ~10 MB). The settings' schemas are plain JSON Schema of a few keywords, checked here.
 *
 * Nothing else reads IMPRINT_* variables: commands take the resolved configuration.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { DEFAULT_RENEWAL_POLICY, type RenewalPolicy } from './enrollment/enrollment-service.js';
import { LIMIT_VARIABLES, limitsFrom, type Limits } from './http/limits.js';
import { parseDuration } from './duration.js';
import { withoutPassword } from './store/database-url.js';

/** A configuration problem the user must fix: the CLI prints it as one line and exits 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Where a value came from, strongest first. */
export type Source = 'flag' | 'env' | 'file' | 'default';

const DURATION = '^\\d{1,9}[smhd]?$';
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** A pino log level. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The JSON Schema a setting's value must satisfy: the few keywords settings use, with JSON
 * Schema's meaning (lengths count characters, not UTF-16 units; patterns are unicode).
 */
export type SettingSchema =
  | { readonly type: 'integer'; readonly minimum: number; readonly maximum: number }
  | { readonly type: 'string'; readonly minLength?: number; readonly maxLength?: number; readonly pattern?: string }
  | { readonly type: 'array'; readonly items: SettingSchema; readonly minItems: number }
  | { readonly enum: readonly string[] };

/** Whether `value` satisfies `schema`. */
function conforms(schema: SettingSchema, value: unknown): boolean {
  if ('enum' in schema) return schema.enum.includes(value as string);
  switch (schema.type) {
    case 'integer':
      return Number.isInteger(value) && (value as number) >= schema.minimum && (value as number) <= schema.maximum;
    case 'string': {
      if (typeof value !== 'string') return false;
      const length = [...value].length;
      if (length < (schema.minLength ?? 0) || length > (schema.maxLength ?? Infinity)) return false;
      return schema.pattern === undefined || new RegExp(schema.pattern, 'u').test(value);
    }
    case 'array':
      return Array.isArray(value) && value.length >= schema.minItems && value.every((item) => conforms(schema.items, item));
  }
}

const integer = (minimum: number, maximum: number): SettingSchema => ({ type: 'integer', minimum, maximum });
const NON_EMPTY: SettingSchema = { type: 'string', minLength: 1 };

/** One setting: its names on each channel, its schema, and what `--help` says about it. */
export interface SettingSpec {
  /** The key in the config file and in `config show`. */
  readonly key: string;
  /** The command-line flag, without dashes. */
  readonly flag: string;
  /** The environment variable; `${env}_FILE` too when the setting is secret. */
  readonly env: string;
  readonly schema: SettingSchema;
  /** A list: repeated flags, comma-separated in the environment, an array in the file. */
  readonly list?: boolean;
  readonly secret?: boolean;
  /** How `config show` prints a secret that is only partly secret; masked whole when absent. */
  readonly reveal?: (value: string) => string;
  /** Secrets have no flag: a command line is visible to every user of the host (ps). */
  readonly noFlag?: boolean;
  /** The placeholder in help (`--port N`). */
  readonly placeholder: string;
  /** What help prints as the default (a computed default says how it is computed). */
  readonly defaultText?: string;
  /** What a valid value looks like, for error messages. */
  readonly expect: string;
  readonly help: string;
}

const port = (help: string) => ({ schema: integer(0, 65535), placeholder: 'PORT', expect: 'a port number (0-65535)', help });
const positive = (help: string, defaultText: string) => ({
  schema: integer(1, 999_999_999),
  placeholder: 'N',
  expect: 'a positive whole number',
  defaultText,
  help,
});
const file = (help: string) => ({ schema: NON_EMPTY, placeholder: 'FILE', expect: 'a file name', help });

const LIMIT_HELP: Readonly<Record<keyof Limits, string>> = {
  enrollPerMinute: 'POST /v1/enroll requests per source address per minute',
  failedTokensPerMinute: 'refused token attempts per source address per minute',
  renewPerMinute: 'POST /v1/renew requests per device certificate per minute',
  connectionsPerSource: 'open connections per source address',
  handshakeTimeoutMs: 'time to complete the TLS handshake (ms)',
  headersTimeoutMs: 'time to send the request headers (ms)',
  requestTimeoutMs: 'time to send the whole request (ms)',
  keepAliveTimeoutMs: 'idle keep-alive connection timeout (ms)',
};

const LIMIT_DEFAULTS: Readonly<Record<keyof Limits, string>> = {
  enrollPerMinute: '600',
  failedTokensPerMinute: '30',
  renewPerMinute: '30',
  connectionsPerSource: '256',
  handshakeTimeoutMs: '10000',
  headersTimeoutMs: '10000',
  requestTimeoutMs: '30000',
  keepAliveTimeoutMs: '30000',
};

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Every setting imprint reads, in the order `config show` prints them. */
export const SETTINGS = [
  { key: 'data', flag: 'data', env: 'IMPRINT_DATA', ...file('the data directory (CA, TLS identity, SQLite)'), placeholder: 'DIR', expect: 'a directory', defaultText: './data' },
  {
    key: 'database',
    flag: 'database',
    env: 'IMPRINT_DATABASE_URL',
    schema: { type: 'string', pattern: '^postgres(ql)?://[^\\s]+$', maxLength: 2048 },
    // The URL may hold the password: never in an error, and `config show` masks just it.
    secret: true,
    reveal: withoutPassword,
    placeholder: 'URL',
    expect: 'a postgres://user:password@host:port/database URL',
    defaultText: 'SQLite in the data directory',
    help: 'PostgreSQL to keep the fleet in (several instances share it); the data directory keeps ca/ and tls/',
  },
  {
    key: 'caPassphrase',
    flag: 'ca-passphrase',
    env: 'IMPRINT_CA_PASSPHRASE',
    schema: NON_EMPTY,
    secret: true,
    noFlag: true,
    placeholder: 'TEXT',
    expect: 'a passphrase',
    help: 'passphrase of the issuing CA key (encrypts it at init)',
  },
  {
    key: 'p12Passphrase',
    flag: 'p12-passphrase',
    env: 'IMPRINT_P12_PASSPHRASE',
    schema: NON_EMPTY,
    secret: true,
    noFlag: true,
    placeholder: 'TEXT',
    expect: 'a passphrase',
    help: "passphrase of an operator's .p12 (generated and shown once when unset)",
  },
  {
    key: 'server',
    flag: 'server',
    env: 'IMPRINT_SERVER',
    schema: { type: 'string', pattern: '^https://[^\\s/]+/?$' },
    placeholder: 'URL',
    expect: 'an https:// URL of a server (https://host:port)',
    help: "call this server's admin API instead of opening the data directory",
  },
  { key: 'cert', flag: 'cert', env: 'IMPRINT_CERT', ...file('operator certificate (PEM) for --server') },
  { key: 'key', flag: 'key', env: 'IMPRINT_KEY', ...file('operator private key (PEM) for --server') },
  { key: 'cacert', flag: 'cacert', env: 'IMPRINT_CACERT', ...file("the root CA (PEM) to verify --server with (default: the system's CAs)") },
  {
    key: 'host',
    flag: 'host',
    env: 'IMPRINT_HOST',
    schema: { type: 'string', pattern: '^[A-Za-z0-9.:_-]{1,253}$' },
    placeholder: 'ADDRESS',
    expect: 'an address or host name to listen on',
    defaultText: '127.0.0.1',
    help: 'address the HTTPS (and status) listener binds',
  },
  { key: 'port', flag: 'port', env: 'IMPRINT_PORT', ...port('HTTPS port'), defaultText: '8443' },
  { key: 'statusPort', flag: 'status-port', env: 'IMPRINT_STATUS_PORT', ...port('plain-HTTP port for CRLs, OCSP and health (off when unset)') },
  {
    key: 'workers',
    flag: 'workers',
    env: 'IMPRINT_WORKERS',
    schema: integer(1, 64),
    placeholder: 'N',
    expect: 'a number of processes from 1 to 64',
    defaultText: 'one per CPU core',
    help: 'server processes sharing the port',
  },
  {
    key: 'rateLimit',
    flag: 'rate-limit',
    env: 'IMPRINT_RATE_LIMIT',
    schema: { enum: ['on', 'off'] },
    placeholder: 'on|off',
    expect: '"on" or "off"',
    defaultText: 'on',
    help: 'rate limits (off for benchmarks from one address)',
  },
  {
    key: 'logLevel',
    flag: 'log-level',
    env: 'IMPRINT_LOG_LEVEL',
    schema: { enum: LOG_LEVELS },
    placeholder: 'LEVEL',
    expect: LOG_LEVELS.join(', '),
    defaultText: 'info',
    help: 'server log level',
  },
  {
    key: 'renewOverlap',
    flag: 'renew-overlap',
    env: 'IMPRINT_RENEW_OVERLAP',
    schema: { type: 'string', pattern: DURATION },
    placeholder: 'DURATION',
    expect: 'a duration (e.g. 90m, 24h)',
    defaultText: '24h',
    help: 'how long a renewed certificate stays valid beside its successor',
  },
  {
    key: 'renewalsPerDay',
    flag: 'renewals-per-day',
    env: 'IMPRINT_RENEWALS_PER_DAY',
    schema: integer(1, 1000),
    placeholder: 'N',
    expect: 'a number from 1 to 1000',
    defaultText: '10',
    help: 'renewals issued per device in any 24 hours',
  },
  {
    key: 'renewAfterExpiry',
    flag: 'renew-after-expiry',
    env: 'IMPRINT_RENEW_AFTER_EXPIRY',
    schema: { type: 'string', pattern: `^off$|${DURATION}` },
    placeholder: 'off|DURATION',
    expect: '"off" or a duration (e.g. 30d)',
    defaultText: 'off',
    help: 'how long after expiry a device may still renew',
  },
  ...Object.entries(LIMIT_VARIABLES).map(([env, field]) => ({
    key: field,
    flag: kebab(field),
    env,
    ...positive(LIMIT_HELP[field], LIMIT_DEFAULTS[field]),
  })),
  {
    key: 'hostname',
    flag: 'hostname',
    env: 'IMPRINT_HOSTNAME',
    schema: { type: 'array', items: { type: 'string', pattern: '^[A-Za-z0-9.:-]{1,253}$' }, minItems: 1 },
    list: true,
    placeholder: 'NAME',
    expect: 'host names (repeat the flag; comma-separated in the environment)',
    defaultText: 'localhost',
    help: "names on the server's TLS certificate (init)",
  },
  {
    key: 'org',
    flag: 'org',
    env: 'IMPRINT_ORG',
    schema: { type: 'string', minLength: 1, maxLength: 64 },
    placeholder: 'ORG',
    expect: 'an organisation name (1-64 characters)',
    help: 'O= in CA and device certificates (init)',
  },
  {
    key: 'trustDomain',
    flag: 'trust-domain',
    env: 'IMPRINT_TRUST_DOMAIN',
    schema: { type: 'string', pattern: '^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$' },
    placeholder: 'DOMAIN',
    expect: 'a lowercase DNS-like name',
    defaultText: 'imprint.local',
    help: 'SPIFFE trust domain in certificate SANs (init)',
  },
  {
    key: 'publicUrl',
    flag: 'public-url',
    env: 'IMPRINT_PUBLIC_URL',
    schema: { type: 'string', pattern: '^https?://[^\\s/]+(/\\S*)?$' },
    placeholder: 'URL',
    expect: 'an http(s) URL',
    defaultText: 'https://<first hostname>:<port>, or http://...:<status port>',
    help: 'where certificates point relying parties for CRLs and OCSP (init)',
  },
  {
    key: 'deviceValidity',
    flag: 'device-validity',
    env: 'IMPRINT_DEVICE_VALIDITY',
    schema: { type: 'string', pattern: '^\\d{1,4}d?$' },
    placeholder: 'DAYS',
    expect: 'a number of days (e.g. 90d)',
    defaultText: '90d',
    help: 'validity of device certificates (init)',
  },
] as const satisfies readonly SettingSpec[];

const MAX_OVERLAP_SECONDS = 90 * 86_400;
const MAX_AFTER_EXPIRY_SECONDS = 366 * 86_400;

/**
 * The renewal policy from the text of --renew-overlap, --renewals-per-day and
 * --renew-after-expiry, else of IMPRINT_RENEW_*, else the defaults.
 */
export function renewalPolicyFrom(values: Readonly<Record<string, unknown>>, env: Readonly<Record<string, string | undefined>> = {}): RenewalPolicy {
  const text = (flag: string, name: string) => (values[flag] as string | undefined) ?? env[name];
  const overlap = text('renew-overlap', 'IMPRINT_RENEW_OVERLAP');
  const perDay = text('renewals-per-day', 'IMPRINT_RENEWALS_PER_DAY');
  const afterExpiry = text('renew-after-expiry', 'IMPRINT_RENEW_AFTER_EXPIRY');

  const overlapSeconds = overlap === undefined ? DEFAULT_RENEWAL_POLICY.overlapMs / 1000 : parseDuration(overlap);
  if (overlapSeconds < 1 || overlapSeconds > MAX_OVERLAP_SECONDS) throw new Error('--renew-overlap must be between 1s and 90d');
  const count = perDay === undefined ? DEFAULT_RENEWAL_POLICY.perDay : Number(perDay);
  if (!/^\d{1,4}$/.test(perDay ?? '1') || count < 1 || count > 1000) throw new Error('--renewals-per-day must be between 1 and 1000');
  const afterSeconds = afterExpiry === undefined || afterExpiry === 'off' ? 0 : parseDuration(afterExpiry);
  if (afterSeconds > MAX_AFTER_EXPIRY_SECONDS) throw new Error('--renew-after-expiry must be off or at most 366d');
  return { overlapMs: overlapSeconds * 1000, perDay: count, afterExpiryMs: afterSeconds * 1000 };
}

/** A setting's key. */
export type SettingKey = (typeof SETTINGS)[number]['key'];

const SPECS: ReadonlyMap<string, SettingSpec> = new Map(SETTINGS.map((spec) => [spec.key, spec]));

/** The spec of one setting. */
export const settingSpec = (key: SettingKey): SettingSpec => SPECS.get(key)!;

/** A resolved setting: its value and where it came from. */
export interface Resolved {
  readonly value: unknown;
  readonly source: Source;
  /** The flag, variable or file that gave it ("IMPRINT_CA_PASSPHRASE_FILE", "imprint.json"). */
  readonly origin: string;
}

/** What the configuration is read from. */
export interface ConfigInput {
  /** Parsed command-line values by flag name (only the flags the command has). */
  readonly flags?: Readonly<Record<string, unknown>>;
  readonly env?: NodeJS.ProcessEnv;
  /** `--config FILE`; else IMPRINT_CONFIG. */
  readonly configFile?: string | undefined;
}

/** The effective configuration. */
export interface Config {
  readonly dataDir: string;
  /** PostgreSQL's URL; SQLite in the data directory when absent. */
  readonly database: string | undefined;
  readonly caPassphrase: string | undefined;
  readonly p12Passphrase: string | undefined;
  readonly remote: { readonly server: string; readonly cert: string; readonly key: string; readonly cacert: string | undefined } | undefined;
  readonly host: string;
  readonly port: number;
  readonly statusPort: number | undefined;
  readonly workers: number;
  readonly logLevel: LogLevel;
  readonly limits: Limits;
  readonly renewal: RenewalPolicy;
  readonly init: {
    readonly hostnames: string[] | undefined;
    readonly org: string | undefined;
    readonly trustDomain: string | undefined;
    readonly publicUrl: string | undefined;
    readonly deviceValidityDays: number | undefined;
  };
  /** Every setting with its source, for `config show` and for decisions that depend on it. */
  readonly settings: ReadonlyMap<SettingKey, Resolved>;
  /** The config file read, if any. */
  readonly file: string | undefined;
}

/** A value from a flag or variable (text) in the setting's type; invalid text stays text and fails validation. */
function fromText(spec: SettingSpec, text: string | string[]): unknown {
  if (spec.list) return (Array.isArray(text) ? text : text.split(',')).map((each) => each.trim()).filter(Boolean);
  const one = Array.isArray(text) ? text[text.length - 1]! : text;
  return 'type' in spec.schema && spec.schema.type === 'integer' && /^\d{1,10}$/.test(one.trim()) ? Number(one.trim()) : one;
}

/** Validates one value; the error shows `raw` (text as typed) or the file's JSON, never a secret. */
function check(spec: SettingSpec, value: unknown, origin: string, raw?: string | string[]): unknown {
  if (!conforms(spec.schema, value)) {
    const typed = raw === undefined ? JSON.stringify(value) : Array.isArray(raw) ? raw.join(',') : raw;
    const shown = spec.secret ? '' : `=${typed}`;
    throw new ConfigError(`${origin}${shown}: expected ${spec.expect}`);
  }
  return value;
}

/** Reads a secret's file: its content less one trailing newline (echo and editors add one). */
function readSecretFile(variable: string, path: string): string {
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    throw new ConfigError(`${variable}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`config file ${path} is not valid JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`config file ${path} must hold a JSON object`);
  for (const key of Object.keys(parsed)) {
    if (!SPECS.has(key)) {
      const hint = closest(key, [...SPECS.keys()]);
      throw new ConfigError(`config file ${path}: unknown setting "${key}"${hint ? ` (did you mean "${hint}"?)` : ''}`);
    }
  }
  return parsed as Record<string, unknown>;
}

/** Resolves one setting: flag, then variable (or its _FILE), then the file, else unset. */
function resolveSetting(spec: SettingSpec, input: ConfigInput, env: NodeJS.ProcessEnv, fileValues: Record<string, unknown>, fileName: string): Resolved | undefined {
  const flag = spec.noFlag ? undefined : input.flags?.[spec.flag];
  if (flag !== undefined && !(Array.isArray(flag) && flag.length === 0)) {
    return { value: check(spec, fromText(spec, flag as string | string[]), `--${spec.flag}`, flag as string | string[]), source: 'flag', origin: `--${spec.flag}` };
  }
  const text = env[spec.env];
  const fileVariable = `${spec.env}_FILE`;
  const secretFile = spec.secret ? env[fileVariable] : undefined;
  if (text !== undefined && text !== '' && secretFile) throw new ConfigError(`set ${spec.env} or ${fileVariable}, not both`);
  if (text !== undefined && text !== '') return { value: check(spec, fromText(spec, text), spec.env, text), source: 'env', origin: spec.env };
  if (secretFile) return { value: check(spec, readSecretFile(fileVariable, secretFile), fileVariable), source: 'env', origin: fileVariable };
  if (spec.key in fileValues) return { value: check(spec, fileValues[spec.key], `${fileName}: ${spec.key}`), source: 'file', origin: fileName };
  return undefined;
}

/**
 * Reads and validates the whole configuration. Throws ConfigError, naming the flag,
 * variable or file at fault, for anything invalid.
 */
export function loadConfig(input: ConfigInput = {}): Config {
  const env = input.env ?? process.env;
  const file = input.configFile ?? (env.IMPRINT_CONFIG || undefined);
  const fileValues = file ? readConfigFile(file) : {};
  const settings = new Map<SettingKey, Resolved>();
  for (const spec of SETTINGS) {
    const resolved = resolveSetting(spec, input, env, fileValues, file ?? '');
    if (resolved) settings.set(spec.key, resolved);
  }
  const get = <T>(key: SettingKey): T | undefined => settings.get(key)?.value as T | undefined;
  const text = (key: SettingKey): string | undefined => {
    const value = get<unknown>(key);
    return value === undefined ? undefined : String(value);
  };

  const limitInput: Record<string, string | undefined> = {};
  for (const [variable, field] of Object.entries(LIMIT_VARIABLES)) limitInput[variable] = text(field);
  const renewalInput = {
    'renew-overlap': text('renewOverlap'),
    'renewals-per-day': text('renewalsPerDay'),
    'renew-after-expiry': text('renewAfterExpiry'),
  };
  const policy = (read: () => unknown) => {
    try {
      return read();
    } catch (error) {
      throw new ConfigError((error as Error).message);
    }
  };
  const remote = remoteOf(get<string>('server'), get<string>('cert'), get<string>('key'), get<string>('cacert'));
  const validity = get<string>('deviceValidity');
  return {
    dataDir: resolve(get<string>('data') ?? 'data'),
    database: get<string>('database'),
    caPassphrase: get<string>('caPassphrase'),
    p12Passphrase: get<string>('p12Passphrase'),
    remote,
    host: get<string>('host') ?? '127.0.0.1',
    port: get<number>('port') ?? 8443,
    statusPort: get<number>('statusPort'),
    workers: get<number>('workers') ?? availableParallelism(),
    logLevel: get<LogLevel>('logLevel') ?? 'info',
    limits: policy(() => limitsFrom(limitInput, text('rateLimit'))) as Limits,
    renewal: policy(() => renewalPolicyFrom(renewalInput, {})) as RenewalPolicy,
    init: {
      hostnames: get<string[]>('hostname'),
      org: get<string>('org'),
      trustDomain: get<string>('trustDomain'),
      publicUrl: get<string>('publicUrl'),
      deviceValidityDays: validity === undefined ? undefined : Number(validity.replace(/d$/, '')),
    },
    settings,
    file,
  };
}

function remoteOf(server: string | undefined, cert: string | undefined, key: string | undefined, cacert: string | undefined): Config['remote'] {
  if (server === undefined) {
    return undefined;
  }
  if (!cert || !key) throw new ConfigError('--server needs an operator certificate: --cert FILE --key FILE (or IMPRINT_CERT, IMPRINT_KEY)');
  return { server: server.replace(/\/+$/, ''), cert, key, cacert };
}

/** A row of `config show`. */
export interface ShownSetting {
  readonly key: string;
  readonly value: unknown;
  readonly source: Source;
  readonly origin: string;
  readonly env: string;
  readonly flag: string | null;
}

const MASK = '********';

/** Every setting with its effective value and where it came from; secrets masked. */
export function showConfig(config: Config): ShownSetting[] {
  return SETTINGS.map((spec: SettingSpec) => {
    const resolved = config.settings.get(spec.key as SettingKey);
    const value = resolved ? (spec.secret ? (spec.reveal?.(resolved.value as string) ?? MASK) : resolved.value) : effectiveDefault(spec, config);
    return {
      key: spec.key,
      value,
      source: resolved?.source ?? 'default',
      origin: resolved?.origin ?? 'default',
      env: spec.env,
      flag: spec.noFlag ? null : `--${spec.flag}`,
    };
  });
}

/** What an unset setting means in effect (null when it means "none"). */
function effectiveDefault(spec: SettingSpec, config: Config): unknown {
  switch (spec.key) {
    case 'data':
      return config.dataDir;
    case 'database':
      return `SQLite ${join(config.dataDir, 'imprint.db')}`;
    case 'workers':
      return config.workers;
    case 'host':
      return config.host;
    case 'port':
      return config.port;
    case 'logLevel':
      return config.logLevel;
    case 'rateLimit':
      return 'on';
    case 'renewOverlap':
      return `${DEFAULT_RENEWAL_POLICY.overlapMs / 1000}s`;
    case 'renewalsPerDay':
      return DEFAULT_RENEWAL_POLICY.perDay;
    case 'renewAfterExpiry':
      return 'off';
    default:
      if (spec.key in config.limits) return config.limits[spec.key as keyof Limits];
      return spec.defaultText === undefined || spec.secret ? null : spec.defaultText;
  }
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/** The candidate closest to `word` if it is close enough to be a typo of it. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = distance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.min(3, Math.floor(best.length / 2))) ? best : undefined;
}
