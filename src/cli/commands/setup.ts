/**
 * Setting up and running a server: init, serve, migrate, migrate-store, backup, config show.
 * Each loads the store, the CA or the server when it runs (see commands/index.ts).
 */
import { readFileSync } from 'node:fs';
import { settingSpec, showConfig, type Config } from '../../config.js';
import type { InitOptions } from '../../instance.js';
import type { ServeOptions } from '../../server.js';
import { cliActor } from '../cli-actor.js';
import { JSON_OPTION, settingOptions, str, UsageError, type Command, type Options } from '../command.js';
import { table } from '../table.js';

const INIT_SETTINGS: Options = settingOptions('hostname', 'org', 'trustDomain', 'publicUrl', 'deviceValidity');

function initOptions(config: Config, port?: number, statusPort?: number): InitOptions {
  const { hostnames, org, trustDomain, publicUrl, deviceValidityDays } = config.init;
  return { hostnames, org, trustDomain, publicUrl, deviceValidityDays, port, statusPort };
}

const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|::1|\[::1\])$/i;

/**
 * A first serve bakes its public URL into every certificate (CRL distribution point, OCSP).
 * The default (the first --hostname, else localhost) on a server that listens beyond
 * loopback would send every relying party to its own localhost: refuse rather than
 * guess, before anything is written.
 */
async function checkFirstPublicUrl(config: Config): Promise<void> {
  const { caExists } = await import('../../ca/ca-directory.js');
  if (caExists(config.dataDir) || config.init.publicUrl !== undefined || LOOPBACK_HOST.test(config.host)) return;
  const first = config.init.hostnames?.[0] ?? 'localhost';
  if (!LOOPBACK_HOST.test(first)) return;
  throw new UsageError(
    `refusing to initialise ${config.dataDir}: certificates would point relying parties at ${first} while serving on ${config.host}; ` +
      'give the address devices reach this server at with --public-url URL (or --hostname NAME)',
  );
}

export const SETUP_COMMANDS: Readonly<Record<string, Command>> = {
  init: {
    summary: 'create a root CA, an issuing CA, a server certificate and the database',
    options: {
      ...INIT_SETTINGS,
      'import-issuer': { type: 'string', placeholder: 'CERT.pem', help: 'import this issuing CA certificate instead of creating a CA' },
      'import-key': { type: 'string', placeholder: 'KEY.pem', help: "the imported issuing CA's private key" },
      'import-chain': { type: 'string', placeholder: 'CHAIN.pem', help: 'the chain above the imported CA, ending with the root' },
      'import-key-passphrase-env': { type: 'string', placeholder: 'VAR', help: "the variable holding the imported key's passphrase" },
      ...JSON_OPTION,
    },
    async run({ values, config, out }) {
      const importing = [values['import-issuer'], values['import-key'], values['import-chain']];
      if (importing.some(Boolean) && !importing.every(Boolean)) throw new UsageError('--import-issuer, --import-key and --import-chain go together');
      const keyPassphraseEnv = str(values['import-key-passphrase-env']);
      const { initInstance } = await import('../../instance.js');
      const settings = await initInstance(config.dataDir, {
        ...initOptions(config),
        passphrase: config.caPassphrase,
        databaseUrl: config.database,
        importCa: importing.every(Boolean)
          ? {
              certificatePem: readFileSync(str(values['import-issuer'])!, 'utf8'),
              keyPem: readFileSync(str(values['import-key'])!, 'utf8'),
              chainPem: readFileSync(str(values['import-chain'])!, 'utf8'),
              keyPassphrase: keyPassphraseEnv ? process.env[keyPassphraseEnv] : undefined,
            }
          : undefined,
      });
      if (values.json) return out.stdout(JSON.stringify({ dataDir: config.dataDir, ...settings }, null, 2));
      out.stdout(`initialised ${config.dataDir} (trust domain ${settings.trustDomain}, public URL ${settings.publicUrl})`);
    },
  },

  serve: {
    summary: 'serve the HTTPS API (initialises an empty data directory first)',
    options: {
      ...settingOptions(
        'host',
        'port',
        'statusPort',
        'workers',
        'rateLimit',
        'logLevel',
        'renewOverlap',
        'renewalsPerDay',
        'renewAfterExpiry',
        'enrollPerMinute',
        'failedTokensPerMinute',
        'renewPerMinute',
        'connectionsPerSource',
        'handshakeTimeoutMs',
        'headersTimeoutMs',
        'requestTimeoutMs',
        'keepAliveTimeoutMs',
      ),
      ...INIT_SETTINGS,
    },
    notes: 'Logs are JSON lines on stdout; the banner and failures go to stderr.',
    async run({ config, out }) {
      await checkFirstPublicUrl(config);
      const options: ServeOptions = {
        dataDir: config.dataDir,
        databaseUrl: config.database,
        host: config.host,
        port: config.port,
        statusPort: config.statusPort,
        passphrase: config.caPassphrase,
        init: initOptions(config, config.port, config.statusPort),
        logger: true,
        logLevel: config.logLevel,
        limits: config.limits,
        renewal: config.renewal,
      };
      // The cluster primary loads no more than this: the server's code loads in the workers.
      const { serve } = await import('../../serve.js');
      await serve(options, config.workers, out);
    },
  },

  migrate: {
    summary: 'apply pending database migrations',
    options: JSON_OPTION,
    async run({ values, config, out }) {
      const { migrateStore } = await import('../../store/open-store.js');
      const applied = await migrateStore({ dataDir: config.dataDir, databaseUrl: config.database });
      if (values.json) return out.stdout(JSON.stringify({ upToDate: true, applied }));
      out.stdout(applied.length ? `applied migrations ${applied.join(', ')}; database schema is up to date` : 'database schema is up to date');
    },
  },

  'migrate-store': {
    summary: 'copy a SQLite fleet into an empty PostgreSQL database, then verify the copy',
    options: {
      from: { type: 'string', placeholder: 'FILE.db', help: 'the SQLite database to copy (DATA/imprint.db); only read' },
      to: { type: 'string', placeholder: 'URL', help: 'the empty PostgreSQL database to fill (postgres://user:password@host:port/database)' },
      ...JSON_OPTION,
    },
    notes: [
      'Stop the server first: the copy is a snapshot of the file when it starts, and what a server writes after it is not moved.',
      'Everything moves (tokens, devices, certificates, operators, settings, the CRL numbering and the audit chain, verified',
      'after the copy) except listing cursors handed out before: the new store keeps its own key. The target is named by',
      '--to only, never by --database or IMPRINT_DATABASE_URL. Then serve the same data directory with --database URL.',
    ].join('\n'),
    async run({ values, out }) {
      const from = str(values.from);
      const to = str(values.to);
      if (values.database !== undefined) throw new UsageError('migrate-store names its target with --to, not --database');
      if (!from || !to) throw new UsageError('migrate-store needs --from FILE.db and --to URL (see imprint migrate-store --help)');
      if (!/^postgres(ql)?:\/\/\S+$/.test(to)) throw new UsageError(`--to: expected ${settingSpec('database').expect}`);
      const [{ moveFleet }, { AuditService }] = await Promise.all([import('../../store/migrate-store.js'), import('../../enrollment/audit-service.js')]);
      const moved = await moveFleet(from, to, (store) => new AuditService(store).verify());
      if (values.json) return out.stdout(JSON.stringify(moved, null, 2));
      out.stdout(`copied ${moved.from} to ${moved.to}`);
      out.stdout(table(['TABLE', 'ROWS'], Object.entries(moved.tables).map(([name, rows]) => [name, String(rows)])));
      out.stdout(`revocation sequence ${moved.revocationSeq}, CRL number ${moved.crlNumber}`);
      out.stdout(`audit log intact on the target: ${moved.audit.verified} events verified, head ${moved.audit.head}`);
    },
  },

  backup: {
    summary: 'write an online, consistent copy of the database to FILE (0600) while the server serves',
    args: ['FILE'],
    options: JSON_OPTION,
    async run({ values, args, config, out }) {
      const [{ openInstance }, { backupStore }] = await Promise.all([import('../../instance.js'), import('../../enrollment/backup.js')]);
      const instance = await openInstance(config.dataDir, { passphrase: config.caPassphrase, databaseUrl: config.database });
      try {
        const written = await backupStore(instance.store, instance.clock, args[0]!, cliActor());
        if (values.json) return out.stdout(JSON.stringify(written, null, 2));
        out.stdout(`backup written to ${written.file} (${written.bytes} bytes); to restore, see the README (Shutdown, backup and restore)`);
      } finally {
        await instance.close();
      }
    },
  },

  'config show': {
    summary: 'print the effective configuration and where each value came from (secrets masked)',
    options: JSON_OPTION,
    notes: 'Precedence: flag > environment > config file > default. Secrets also from NAME_FILE.',
    async run({ values, config, out }) {
      const rows = showConfig(config);
      if (values.json) {
        return out.stdout(JSON.stringify({ file: config.file ?? null, settings: Object.fromEntries(rows.map(({ key, ...rest }) => [key, rest])) }, null, 2));
      }
      out.stdout(
        table(
          ['SETTING', 'VALUE', 'SOURCE', 'ENV'],
          rows.map((row) => [row.key, row.value === null ? '-' : Array.isArray(row.value) ? row.value.join(',') : String(row.value), row.source === row.origin || row.source === 'default' ? row.source : `${row.source} ${row.origin}`, row.env]),
        ),
      );
    },
  },
};
