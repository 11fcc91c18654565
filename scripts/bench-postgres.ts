/**
 * The benchmark's PostgreSQL section: enrollment with the store on a PostgreSQL server of the
 * benchmark's own (a new cluster from Debian's binaries, loopback, fsync on), against SQLite
 * in the same run. Four setups, measured in turn and repeated (A B C D A B C D), so that a
 * machine that gets busier or quieter meanwhile shifts them all alike:
 *
 *   SQLite, one instance (the main enrollment measurement's setup);
 *   PostgreSQL, one instance with the same arguments;
 *   PostgreSQL, two instances of --workers 1 on the one database, wrk's load split between them;
 *   PostgreSQL, one instance on a database pre-filled with N devices.
 *
 * Beside each rate, the server's CPU per enrollment counting every server process: the
 * imprint processes (primaries and workers) and PostgreSQL's (the postmaster and all its
 * processes, those that ended meanwhile included). On 2 cores two instances cannot enroll
 * faster than one; what they cost in CPU per enrollment is the coordination's price.
 */
import { cpSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { initInstance } from '../src/instance.js';
import { enrollRequests, makeCsrs, mintTokens, type BenchStore } from './bench-pool.js';
import { runWrk, writePool, type WrkResult } from './bench-tools.js';
import { postgresBinDir, processCpuSeconds, startPostgres, type PostgresServer } from './postgres-server.js';
import { cpuSeconds, spawnServer, type ServerProcess } from './server-process.js';

export interface PostgresBenchOptions {
  readonly work: string;
  readonly seconds: number;
  readonly warmUpSeconds: number;
  readonly concurrency: number;
  /** `imprint serve`'s arguments for one instance, SQLite's and PostgreSQL's alike. */
  readonly serveArgs: readonly string[];
  readonly repetitions: number;
  /** Devices in the pre-filled PostgreSQL store. */
  readonly prefill: number;
  /** Requests in a run's pool per second of load: more than any setup enrolls, so none runs out. */
  readonly poolPerSecond: number;
  readonly log: (text: string) => void;
}

/**
 * Memory and WAL as an operator sets them on a server that takes writes all day (durability
 * as the defaults have it: fsync, synchronous_commit and full_page_writes on). Checkpoints
 * far apart: each one makes the next write of every page log the whole page. With
 * PostgreSQL's default 1GB, one starts every ~350MB of WAL: about once a minute at the
 * ~3.5 KB an enrollment writes.
 */
const SERVER_SETTINGS = { shared_buffers: '512MB', wal_buffers: '16MB', max_wal_size: '8GB', checkpoint_timeout: '15min' } as const;
const FILL_CHUNK = 100_000;

type SetupName = 'sqlite' | 'postgres' | 'postgres2' | 'prefilled';

interface Setup {
  readonly name: SetupName;
  readonly label: string;
  /** One per instance: its data directory (CA and TLS files) and the database it serves. */
  readonly instances: readonly BenchStore[];
  readonly args: readonly string[];
}

/** CPU seconds per kind of process, and the machine's jiffies, at one moment. */
interface Snapshot {
  readonly imprint: number;
  readonly postgres: number;
  /** This process and the wrk processes it ran (reaped by the time each load is read). */
  readonly client: number;
  readonly machine: { readonly total: number; readonly idle: number; readonly steal: number };
}

/** One measured load of one setup. */
export interface PostgresRun {
  readonly setup: SetupName;
  readonly repetition: number;
  readonly perSecond: number;
  readonly enrolled: number;
  readonly failed: number;
  /** The largest instance's p50 and p99: an upper bound of the whole load's. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Server CPU per enrollment, all processes; and imprint's and PostgreSQL's parts of it. */
  readonly cpuUsPerOp: number;
  readonly imprintCpuUsPerOp: number;
  readonly postgresCpuUsPerOp: number | null;
  /** The whole machine over the load (every process, ours or not), and the hypervisor's steal. */
  readonly machineBusyPercent: number;
  readonly stealPercent: number;
  /** Cores' worth of CPU that processes other than the servers and the load generator used meanwhile. */
  readonly otherCores: number;
  readonly instances: readonly WrkResult[];
}

/** A median with its range over the repetitions. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

/** What the section measured, as the JSON keeps it. */
export interface PostgresSection {
  readonly postgresVersion: string;
  readonly serverSettings: Readonly<Record<string, string>>;
  readonly repetitions: number;
  readonly prefill: { readonly devices: number; readonly seconds: number };
  readonly runs: readonly PostgresRun[];
  readonly setups: Record<SetupName, { readonly label: string; readonly perSecond: Spread; readonly p99Ms: Spread; readonly cpuUsPerOp: Spread; readonly imprintCpuUsPerOp: Spread; readonly postgresCpuUsPerOp: Spread | null; readonly failed: number }>;
  readonly ratios: { readonly postgresVsSqlite: number; readonly twoInstancesCpuVsOne: number; readonly prefilledVsEmpty: number; readonly prefilledCpuVsEmpty: number };
  readonly machine: { readonly loadAverageStart: number; readonly loadAverageEnd: number; readonly busyPercent: Spread; readonly stealPercent: Spread; readonly otherCores: Spread };
  readonly seconds: number;
}

const round = (value: number, places = 0) => Math.round(value * 10 ** places) / 10 ** places;

/** `places` decimals: whole numbers for rates and CPU, one for milliseconds. */
function spread(values: readonly number[], places = 0): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  const median = sorted.length % 2 ? sorted[Math.floor(middle)]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { median: round(median, places), min: round(sorted[0]!, places), max: round(sorted[sorted.length - 1]!, places) };
}

const shown = (value: Spread) => (value.min === value.max ? `${value.median}` : `${value.median} [${value.min}-${value.max}]`);

/** /proc/stat counts in USER_HZ, 100 on every Linux we run on. */
const JIFFIES_PER_SECOND = 100;

/** The first line of /proc/stat: jiffies of all cores since boot. */
function machineJiffies(): Snapshot['machine'] {
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  // user nice system idle iowait irq softirq steal (guest time is within user already)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = fields.map(Number) as number[];
  return { total: user! + nice! + system! + idle! + iowait! + irq! + softirq! + steal!, idle: idle! + iowait!, steal: steal! };
}

/** The leaf of a PEM chain, as DER: a certificate of a device certificate's size for the filler rows. */
function firstCertificateDer(pem: string): Buffer {
  const block = /-----BEGIN CERTIFICATE-----([^-]+)-----END CERTIFICATE-----/.exec(pem);
  if (!block) throw new Error('no certificate in the PEM');
  return Buffer.from(block[1]!.replace(/\s/g, ''), 'base64');
}

/**
 * Adds `count` active devices, each with one certificate (the same DER, unique serial and key
 * hash), as scripts/bench-store.ts does for SQLite, then vacuums and checkpoints: a fleet
 * that has been there a while, whose filling the measured loads do not pay for.
 */
async function prefillDevices(url: string, count: number, der: Buffer, onProgress: (done: number) => void): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('SET synchronous_commit = off'); // a bulk load that is not measured
    const now = Date.now();
    for (let from = 1; from <= count; from += FILL_CHUNK) {
      const to = Math.min(count, from + FILL_CHUNK - 1);
      await client.query('BEGIN');
      await client.query(
        `INSERT INTO devices (id, status, enrolled_at, updated_at, current_serial)
         SELECT 'prefill-' || lpad(i::text, 8, '0'), 'active', $3, $3, lpad(to_hex(i), 32, '0') FROM generate_series($1::bigint, $2::bigint) AS i`,
        [from, to, now],
      );
      await client.query(
        `INSERT INTO certificates (serial, kind, subject, device_id, spki_sha256, not_before, not_after, issued_at, status, der)
         SELECT lpad(to_hex(i), 32, '0'), 'device', d.id, d.id, encode(sha256(convert_to(d.id, 'UTF8')), 'hex'), $3, $4, $3, 'active', $5
         FROM generate_series($1::bigint, $2::bigint) AS i, LATERAL (SELECT 'prefill-' || lpad(i::text, 8, '0') AS id) AS d`,
        [from, to, now, now + 90 * 86_400_000, der],
      );
      await client.query('COMMIT');
      onProgress(to);
    }
    await client.query('VACUUM (ANALYZE) devices');
    await client.query('VACUUM (ANALYZE) certificates');
    await client.query('CHECKPOINT');
  } finally {
    await client.end();
  }
}

/** Runs one SQL statement on a connection of its own. */
async function sql<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

/** A new database on the server, and its URL. */
async function createDatabase(server: PostgresServer, name: string): Promise<string> {
  await sql(server.url, `CREATE DATABASE ${name}`);
  const url = new URL(server.url);
  url.pathname = `/${name}`;
  return url.href;
}

/** Runs the PostgreSQL section: its results and its table; undefined (and says why) when PostgreSQL's binaries are missing. */
export async function benchPostgres(options: PostgresBenchOptions): Promise<{ results: PostgresSection; table: string } | undefined> {
  const { log, work } = options;
  try {
    postgresBinDir();
  } catch (error) {
    log(`PostgreSQL section not run: ${(error as Error).message}`);
    return undefined;
  }
  const sectionStarted = performance.now();
  const loadAverageStart = loadavg()[0]!;
  const server = await startPostgres({ settings: SERVER_SETTINGS });
  try {
    const postgresVersion = (await sql<{ server_version: string }>(server.url, 'SHOW server_version'))[0]!.server_version;
    const root = join(work, 'postgres-section');
    const dir = (name: string) => join(root, name);

    // A store of its own for each setup, so that each grows alike over the repetitions.
    const sqliteStore: BenchStore = { dataDir: dir('sqlite') };
    const single: BenchStore = { dataDir: dir('postgres'), databaseUrl: await createDatabase(server, 'bench_one') };
    const first: BenchStore = { dataDir: dir('postgres2-a'), databaseUrl: await createDatabase(server, 'bench_two') };
    const prefilled: BenchStore = { dataDir: dir('prefilled'), databaseUrl: await createDatabase(server, 'bench_prefilled') };
    for (const store of [sqliteStore, single, first, prefilled]) await initInstance(store.dataDir, { databaseUrl: store.databaseUrl });
    // The second instance gets the CA files as an operator would copy them; the fleet is in the database.
    const second: BenchStore = { dataDir: dir('postgres2-b'), databaseUrl: first.databaseUrl };
    mkdirSync(second.dataDir, { mode: 0o700 });
    for (const sub of ['ca', 'tls']) cpSync(join(first.dataDir, sub), join(second.dataDir, sub), { recursive: true });

    log(`PostgreSQL ${postgresVersion}: pre-filling ${options.prefill.toLocaleString('en')} devices ...`);
    const fillStarted = performance.now();
    const der = firstCertificateDer(readFileSync(join(prefilled.dataDir, 'tls/server.pem'), 'utf8'));
    await prefillDevices(prefilled.databaseUrl!, options.prefill, der, (done) => process.stderr.write(`\r  ${done.toLocaleString('en')}`));
    const fillSeconds = round((performance.now() - fillStarted) / 1000, 1);
    log(` (${fillSeconds} s, vacuum and checkpoint included)`);

    const setups: Setup[] = [
      { name: 'sqlite', label: 'SQLite, one instance', instances: [sqliteStore], args: options.serveArgs },
      { name: 'postgres', label: 'PostgreSQL, one instance', instances: [single], args: options.serveArgs },
      { name: 'postgres2', label: 'PostgreSQL, two instances, --workers 1 each', instances: [first, second], args: withWorkers(options.serveArgs, '1') },
      { name: 'prefilled', label: `PostgreSQL, one instance, ${options.prefill.toLocaleString('en')} devices`, instances: [prefilled], args: options.serveArgs },
    ];

    // Every CSR names a new device, so a store takes each once; the stores are apart, so
    // each takes the same run of them (a pool split over two instances may round up by one each).
    const perRun = Math.ceil(options.poolPerSecond * options.seconds) + Math.ceil(options.poolPerSecond * options.warmUpSeconds) + 2;
    log(`making ${(options.repetitions * perRun).toLocaleString('en')} keys and CSRs ...`);
    const bank = await makeCsrs(options.repetitions * perRun, 'pgbench');
    const taken = new Map<SetupName, number>();
    const take = (setup: SetupName, count: number) => {
      const from = taken.get(setup) ?? 0;
      taken.set(setup, from + count);
      return bank.slice(from, from + count);
    };

    const runs: PostgresRun[] = [];
    for (let repetition = 1; repetition <= options.repetitions; repetition++) {
      for (const setup of setups) {
        log(`${setup.label}, repetition ${repetition} of ${options.repetitions} ...`);
        runs.push(await enrollRun(setup, repetition, server, take, options));
      }
    }

    const summary = {} as PostgresSection['setups'];
    for (const setup of setups) {
      const mine = runs.filter((run) => run.setup === setup.name);
      const postgresParts = mine.map((run) => run.postgresCpuUsPerOp).filter((value): value is number => value !== null);
      summary[setup.name] = {
        label: setup.label,
        perSecond: spread(mine.map((run) => run.perSecond)),
        p99Ms: spread(mine.map((run) => run.p99Ms), 1),
        cpuUsPerOp: spread(mine.map((run) => run.cpuUsPerOp)),
        imprintCpuUsPerOp: spread(mine.map((run) => run.imprintCpuUsPerOp)),
        postgresCpuUsPerOp: postgresParts.length ? spread(postgresParts) : null,
        failed: mine.reduce((sum, run) => sum + run.failed, 0),
      };
    }
    const ratio = (a: number, b: number) => round(a / b, 2);
    const ratios = {
      postgresVsSqlite: ratio(summary.postgres.perSecond.median, summary.sqlite.perSecond.median),
      twoInstancesCpuVsOne: ratio(summary.postgres2.cpuUsPerOp.median, summary.postgres.cpuUsPerOp.median),
      prefilledVsEmpty: ratio(summary.prefilled.perSecond.median, summary.postgres.perSecond.median),
      prefilledCpuVsEmpty: ratio(summary.prefilled.cpuUsPerOp.median, summary.postgres.cpuUsPerOp.median),
    };
    const machine = {
      loadAverageStart: round(loadAverageStart, 2),
      loadAverageEnd: round(loadavg()[0]!, 2),
      busyPercent: spread(runs.map((run) => run.machineBusyPercent)),
      stealPercent: spread(runs.map((run) => run.stealPercent), 1),
      otherCores: spread(runs.map((run) => run.otherCores), 2),
    };
    const results: PostgresSection = {
      postgresVersion,
      serverSettings: SERVER_SETTINGS,
      repetitions: options.repetitions,
      prefill: { devices: options.prefill, seconds: fillSeconds },
      runs,
      setups: summary,
      ratios,
      machine,
      seconds: round((performance.now() - sectionStarted) / 1000),
    };
    return { results, table: sectionTable(results, options) };
  } finally {
    await server.stop();
  }
}

/** The arguments with --workers set to `count`, replacing any given. */
function withWorkers(args: readonly string[], count: string): string[] {
  const at = args.indexOf('--workers');
  const without = at < 0 ? [...args] : [...args.slice(0, at), ...args.slice(at + 2)];
  return [...without, '--workers', count];
}

/**
 * One setup's load: pools minted in its store, its servers started and warmed up, then the
 * load with every server process's CPU read before and after; the servers stop afterwards,
 * so that no idle server's polling runs during another setup's load.
 */
async function enrollRun(
  setup: Setup,
  repetition: number,
  postgres: PostgresServer,
  take: (setup: SetupName, count: number) => string[],
  options: PostgresBenchOptions,
): Promise<PostgresRun> {
  const count = setup.instances.length;
  const warmCount = Math.ceil((options.poolPerSecond * options.warmUpSeconds) / count);
  const loadCount = Math.ceil((options.poolPerSecond * options.seconds) / count);
  const file = (kind: string, i: number) => join(options.work, `pg-${setup.name}-${kind}-${i}.pool`);
  for (const [i, store] of setup.instances.entries()) {
    const requests = enrollRequests(await mintTokens(store, warmCount + loadCount), take(setup.name, warmCount + loadCount));
    writePool(file('warm', i), requests.slice(0, warmCount));
    writePool(file('load', i), requests.slice(warmCount));
  }
  const usesPostgres = setup.instances[0]!.databaseUrl !== undefined;
  const servers: ServerProcess[] = [];
  try {
    for (const store of setup.instances) {
      servers.push(await spawnServer(store.dataDir, [...setup.args, ...(store.databaseUrl ? ['--database', store.databaseUrl] : [])]));
    }
    // wrk's connections and threads split evenly: the same load generator, whichever setup.
    const load = (kind: 'warm' | 'load', seconds: number) =>
      Promise.all(
        servers.map((server, i) =>
          runWrk({ url: server.url, path: '/v1/enroll', seconds, connections: Math.ceil(options.concurrency / count), threads: Math.max(1, 2 / count), work: options.work, pool: file(kind, i) }),
        ),
      );
    await load('warm', options.warmUpSeconds);
    const snapshot = (): Snapshot => ({
      imprint: servers.reduce((sum, server) => sum + cpuSeconds(server.child.pid!), 0),
      postgres: usesPostgres ? postgres.cpuSeconds() : 0,
      client: processCpuSeconds(process.pid, true),
      machine: machineJiffies(),
    });
    const before = snapshot();
    const started = performance.now();
    const results = await load('load', options.seconds);
    const after = snapshot();
    const elapsed = (performance.now() - started) / 1000;

    const enrolled = results.reduce((sum, result) => sum + result.requests - result.failed, 0);
    const perOp = (seconds: number) => (enrolled > 0 ? Math.round((seconds / enrolled) * 1e6) : 0);
    const imprintCpu = after.imprint - before.imprint;
    const postgresCpu = after.postgres - before.postgres;
    const jiffies = after.machine.total - before.machine.total;
    const busySeconds = (jiffies - (after.machine.idle - before.machine.idle)) / JIFFIES_PER_SECOND;
    return {
      setup: setup.name,
      repetition,
      perSecond: results.reduce((sum, result) => sum + result.perSecond, 0),
      enrolled,
      failed: results.reduce((sum, result) => sum + result.failed, 0),
      p50Ms: Math.max(...results.map((result) => result.p50Ms)),
      p99Ms: Math.max(...results.map((result) => result.p99Ms)),
      cpuUsPerOp: perOp(imprintCpu + postgresCpu),
      imprintCpuUsPerOp: perOp(imprintCpu),
      postgresCpuUsPerOp: usesPostgres ? perOp(postgresCpu) : null,
      machineBusyPercent: round((100 * busySeconds * JIFFIES_PER_SECOND) / jiffies),
      stealPercent: round((100 * (after.machine.steal - before.machine.steal)) / jiffies, 1),
      otherCores: Math.max(0, round((busySeconds - imprintCpu - postgresCpu - (after.client - before.client)) / elapsed, 2)),
      instances: results,
    };
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
    for (const [i] of setup.instances.entries()) for (const kind of ['warm', 'load']) rmSync(file(kind, i), { force: true });
  }
}

/** The section as a table: one row per setup, medians [ranges], ratios and targets. */
function sectionTable(section: PostgresSection, options: PostgresBenchOptions): string {
  const { setups, ratios } = section;
  const cpu = (setup: PostgresSection['setups'][SetupName]) =>
    `${shown(setup.cpuUsPerOp)} (${setup.imprintCpuUsPerOp.median} + ${setup.postgresCpuUsPerOp?.median ?? 0})`;
  const met = (ok: boolean) => (ok ? 'met' : 'NOT met');
  const rows: [string, string, string, string, string, string][] = [
    ['setup', 'enroll/s', 'p99 ms', 'CPU us/enroll (imprint + PG)', 'ratio (same run)', 'target'],
    [setups.sqlite.label, shown(setups.sqlite.perSecond), shown(setups.sqlite.p99Ms), cpu(setups.sqlite), '', ''],
    [setups.postgres.label, shown(setups.postgres.perSecond), shown(setups.postgres.p99Ms), cpu(setups.postgres), `${ratios.postgresVsSqlite} of SQLite's enroll/s`, `>= 0.7: ${met(ratios.postgresVsSqlite >= 0.7)}`],
    [setups.postgres2.label, shown(setups.postgres2.perSecond), shown(setups.postgres2.p99Ms), cpu(setups.postgres2), `${ratios.twoInstancesCpuVsOne}x one instance's CPU/enroll`, `<= 1.15: ${met(ratios.twoInstancesCpuVsOne <= 1.15)}`],
    [setups.prefilled.label, shown(setups.prefilled.perSecond), shown(setups.prefilled.p99Ms), cpu(setups.prefilled), `${ratios.prefilledVsEmpty} of one instance's enroll/s (CPU ${ratios.prefilledCpuVsEmpty}x)`, `>= 0.9: ${met(ratios.prefilledVsEmpty >= 0.9)}`],
  ];
  const widths = [46, 18, 20, 34, 50, 16];
  const line = (cells: readonly string[]) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' ').trimEnd();
  const failed = Object.values(setups).reduce((sum, setup) => sum + setup.failed, 0);
  return [
    `PostgreSQL ${section.postgresVersion} (fsync, synchronous_commit and full_page_writes on; ${Object.entries(SERVER_SETTINGS).map(([name, value]) => `${name} ${value}`).join(', ')}), loopback, on the same ${cpus().length} cores`,
    `${options.seconds} s per load after ${options.warmUpSeconds} s of warm-up, wrk at ${options.concurrency} connections split over the instances (p99: the slower instance's); setups in turn, ${section.repetitions} time(s): medians [ranges]`,
    `server CPU per enrollment: every imprint process and every PostgreSQL process, from /proc; pre-filling ${section.prefill.devices.toLocaleString('en')} devices took ${section.prefill.seconds} s`,
    `machine over the loads: ${shown(section.machine.busyPercent)} % of all cores busy, of which other processes than the servers and wrk ${shown(section.machine.otherCores)} cores; steal ${shown(section.machine.stealPercent)} %; load average ${section.machine.loadAverageStart} at the start, ${section.machine.loadAverageEnd} at the end`,
    '',
    ...rows.map(line),
    ...(failed ? ['', `warning: ${failed} requests failed or ran out of pool (see JSON)`] : []),
    '',
  ].join('\n');
}
