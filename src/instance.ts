/**
 * The composition root: a data directory opened into a store, a CA and the services on
 * top of them. The server and every CLI command start here, so both run the same code.
 */
import { dirname } from 'node:path';
import { CertificateAuthority } from './ca/authority.js';
import { caExists, caPaths, createCa, importCa, issueServerCertificate, loadCa, loadScepRa, type ImportCaOptions } from './ca/ca-directory.js';
import { systemClock, type Clock } from './clock.js';
import { AuditService } from './enrollment/audit-service.js';
import { ClientAuthenticator } from './enrollment/client-authenticator.js';
import { CrlPublisher } from './enrollment/crl-publisher.js';
import { DEFAULT_DEVICE_ID_PATTERN, DeviceIdPolicy } from './enrollment/device-id.js';
import { DEFAULT_RENEWAL_POLICY, EnrollmentService, type RenewalPolicy } from './enrollment/enrollment-service.js';
import { FleetService } from './enrollment/fleet-service.js';
import { OcspService } from './enrollment/ocsp-service.js';
import { OperatorService } from './enrollment/operator-service.js';
import { ScepService } from './enrollment/scep-service.js';
import { TokenService } from './enrollment/tokens.js';
import { openStore, type StoreOptions } from './store/open-store.js';
import type { Store } from './store/store.js';

/** Settings fixed at init time and kept in the store. */
export interface InstanceSettings {
  readonly org: string | undefined;
  readonly trustDomain: string;
  readonly publicUrl: string;
  readonly deviceValidityDays: number;
  readonly deviceIdPattern: string;
  /** Names on the server's TLS certificate besides localhost and 127.0.0.1. */
  readonly hostnames: readonly string[];
}

/** What `imprint init` (or the first `imprint serve`) is told. */
export interface InitOptions {
  readonly org?: string | undefined;
  readonly trustDomain?: string | undefined;
  readonly publicUrl?: string | undefined;
  readonly deviceValidityDays?: number | undefined;
  readonly hostnames?: readonly string[] | undefined;
  readonly port?: number | undefined;
  /** The plain-HTTP status listener's port: when set, the default public URL points there. */
  readonly statusPort?: number | undefined;
  readonly passphrase?: string | undefined;
  /** PostgreSQL's URL; SQLite in the data directory when absent. */
  readonly databaseUrl?: string | undefined;
  readonly importCa?: Omit<ImportCaOptions, 'now' | 'passphrase'> | undefined;
}

const DEFAULT_PORT = 8443;

/**
 * Where certificates point relying parties for CRLs and OCSP: the plain-HTTP status
 * listener when there is one (as RFC 5280 recommends), else the HTTPS API.
 */
function defaultPublicUrl(hostname: string, options: InitOptions): string {
  return options.statusPort === undefined ? `https://${hostname}:${options.port ?? DEFAULT_PORT}` : `http://${hostname}:${options.statusPort}`;
}

/** Creates (or imports) the CA and the database of a new data directory. */
export async function initInstance(dataDir: string, options: InitOptions, clock: Clock = systemClock): Promise<InstanceSettings> {
  if (caExists(dataDir)) throw new Error(`${dataDir} is already initialised`);
  const hostnames = options.hostnames?.length ? [...options.hostnames] : ['localhost'];
  const settings: InstanceSettings = {
    org: options.org,
    trustDomain: options.trustDomain ?? 'imprint.local',
    publicUrl: (options.publicUrl ?? defaultPublicUrl(hostnames[0]!, options)).replace(/\/+$/, ''),
    deviceValidityDays: options.deviceValidityDays ?? 90,
    deviceIdPattern: DEFAULT_DEVICE_ID_PATTERN,
    hostnames,
  };
  validateSettings(settings);
  const store = await openStore({ dataDir, databaseUrl: options.databaseUrl });
  try {
    // The CA files are made inside the transaction that writes the settings: an init that
    // fails or dies on the way leaves neither, so running it again just works.
    const written = await store.putSettings(
      {
        ...(settings.org ? { org: settings.org } : {}),
        trust_domain: settings.trustDomain,
        public_url: settings.publicUrl,
        device_validity_days: String(settings.deviceValidityDays),
        device_id_pattern: settings.deviceIdPattern,
        hostnames: JSON.stringify(settings.hostnames),
      },
      'public_url',
      () => {
        const now = clock.now();
        if (options.importCa) importCa(dataDir, { ...options.importCa, passphrase: options.passphrase, now });
        else createCa(dataDir, { org: settings.org, passphrase: options.passphrase, now });
        issueServerCertificate(dataDir, loadCa(dataDir, options.passphrase), serverNames(settings), now);
      },
    );
    // The database already serves a fleet (a shared one, or the CA files were lost): a new
    // CA here would split it in two.
    if (!written) {
      throw new Error('the database is already initialised: copy ca/ and tls/ from an instance that serves it into this data directory');
    }
  } finally {
    await store.close();
  }
  return settings;
}

/** Names on the server's TLS certificate: the configured hostnames, localhost and 127.0.0.1. */
export const serverNames = (settings: InstanceSettings): string[] => [
  ...new Set([...settings.hostnames, 'localhost', '127.0.0.1']),
];

function validateSettings(settings: InstanceSettings): void {
  if (!/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/.test(settings.trustDomain)) {
    throw new Error('trust domain must be a lowercase DNS-like name (e.g. fleet.example.com)');
  }
  if (!/^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(settings.publicUrl)) throw new Error('public URL must be an http(s) URL');
  if (!Number.isInteger(settings.deviceValidityDays) || settings.deviceValidityDays < 1 || settings.deviceValidityDays > 3650) {
    throw new Error('device validity must be 1 to 3650 days');
  }
  for (const name of settings.hostnames) {
    if (!/^[A-Za-z0-9.:-]{1,253}$/.test(name)) throw new Error(`invalid hostname ${name}`);
  }
}

function settingsFrom(stored: Record<string, string>): InstanceSettings {
  return {
    org: stored.org,
    trustDomain: stored.trust_domain ?? 'imprint.local',
    publicUrl: stored.public_url ?? `https://localhost:${DEFAULT_PORT}`,
    deviceValidityDays: Number(stored.device_validity_days ?? 90),
    deviceIdPattern: stored.device_id_pattern ?? DEFAULT_DEVICE_ID_PATTERN,
    hostnames: stored.hostnames ? (JSON.parse(stored.hostnames) as string[]) : ['localhost'],
  };
}

/** An opened data directory. */
export interface Instance {
  readonly dataDir: string;
  readonly settings: InstanceSettings;
  readonly store: Store;
  readonly clock: Clock;
  readonly tokens: TokenService;
  readonly fleet: FleetService;
  readonly audit: AuditService;
  /** The CA and the services that sign; loading it reads (and may decrypt) the issuing key. */
  signing(): SigningServices;
  close(): Promise<void>;
}

/** Services that need the CA key. */
export interface SigningServices {
  readonly ca: CertificateAuthority;
  readonly enrollment: EnrollmentService;
  readonly clients: ClientAuthenticator;
  readonly crls: CrlPublisher;
  readonly ocsp: OcspService;
  readonly operators: OperatorService;
  readonly scep: ScepService;
}

/** Everything the HTTP API calls. */
export type AppServices = SigningServices & Pick<Instance, 'tokens' | 'fleet' | 'audit'>;

/** Options for opening a data directory. */
export interface OpenOptions extends StoreOptions {
  readonly passphrase?: string | undefined;
  readonly clock?: Clock | undefined;
  /** PostgreSQL's URL; SQLite in the data directory when absent. */
  readonly databaseUrl?: string | undefined;
  /** Renewal overlap, limit and after-expiry window; the defaults when absent. */
  readonly renewal?: RenewalPolicy | undefined;
}

/** Opens an initialised data directory; the CA is loaded on first use of signing(). */
export async function openInstance(dataDir: string, options: OpenOptions = {}): Promise<Instance> {
  if (!caExists(dataDir)) throw new Error(`${dataDir} is not initialised: run imprint init --data ${dataDir}`);
  const clock = options.clock ?? systemClock;
  const store = await openStore({ dataDir, databaseUrl: options.databaseUrl }, options);
  const stored = await store.getSettings();
  if (stored.public_url === undefined) {
    await store.close();
    // SQLite: an init that died between writing the CA files and committing, or ca/ copied
    // without its database; serving on made-up settings would put wrong URLs in certificates.
    throw new Error(
      options.databaseUrl === undefined
        ? `${dataDir} holds CA files but no settings: restore imprint.db from a backup (imprint backup) if this directory served a fleet; if it never did (an interrupted init), remove ${dirname(caPaths(dataDir).issuer)} and run imprint init again`
        : `the database is not initialised: run imprint init --data ${dataDir} with the same --database`,
    );
  }
  const settings = settingsFrom(stored);
  const deviceIds = new DeviceIdPolicy(settings.deviceIdPattern);
  const renewal = options.renewal ?? DEFAULT_RENEWAL_POLICY;
  let signing: SigningServices | undefined;
  return {
    dataDir,
    settings,
    store,
    clock,
    tokens: new TokenService(store, clock, deviceIds),
    fleet: new FleetService(store, clock),
    audit: new AuditService(store),
    signing() {
      if (!signing) {
        const ca = new CertificateAuthority(loadCa(dataDir, options.passphrase), settings);
        const enrollment = new EnrollmentService(store, ca, clock, deviceIds, settings, renewal);
        const clients = new ClientAuthenticator(store, clock, renewal.afterExpiryMs);
        signing = {
          ca,
          enrollment,
          clients,
          scep: new ScepService(ca, enrollment, clients, () => {
            const ra = loadScepRa(dataDir);
            if (!ra) throw new Error(`${caPaths(dataDir).scepRa} is missing or does not match its key: imprint serve issues it`);
            return ra;
          }),
          crls: new CrlPublisher(store, ca, clock),
          ocsp: new OcspService(store, ca, clock),
          operators: new OperatorService(store, ca, clock),
        };
      }
      return signing;
    },
    close: () => store.close(),
  };
}
