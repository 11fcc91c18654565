/**
 * `npm run bench`: imprint measured side by side with real peers in one run, on a temporary
 * data directory, loopback only, every load bounded in time and count. Prints a table and
 * writes it as JSON.
 *
 *   enrollments/s and p50/p99 at a fixed concurrency (keep-alive HTTPS, P-256 CSRs, token
 *   consumed, device and certificate committed) on an empty store and on a pre-filled one,
 *   against `cfssl serve` signing the same CSRs; mTLS reconnects/s (a new TLS session with a
 *   client certificate and one GET /v1/device each) and kept-alive mTLS requests/s against
 *   nginx with ssl_verify_client on; revocation reach; CRL rebuild with 100,000 entries;
 *   OCSP responses/s with a nonce (signed each) and without (a kept answer), over HTTPS and over
 *   the plain-HTTP status listener; the server's peak RSS. Enrollment per protocol (JSON,
 *   EST, SCEP) side by side, driven by the simulator's client, and the server's CPU per
 *   enrollment (all its processes, from /proc) beside each enrollment rate. Enrollment
 *   with the store on PostgreSQL: one instance, two instances on one database, and a
 *   pre-filled database, against SQLite in the same run (scripts/bench-postgres.ts).
 *
 * Usage: npm run bench -- [--quick] [--devices N] [--seconds S] [--concurrency C] [--workers N]
 *                         [--postgres on|off|only] [--repeat N] [--out FILE]
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ImprintClient, type ClientIdentity } from '../simulator/client.js';
import { buildCsr, generateDeviceKey } from '../simulator/csr.js';
import { enrollmentProtocol, PROTOCOLS, type PreparedEnrollment, type Protocol } from '../simulator/protocols.js';
import { readBody } from '../simulator/read-body.js';
import { phaseReport, runBounded, type PhaseReport } from '../simulator/load.js';
import { ensureTool, runWrk, startCfssl, startNginx, writePool, type PoolEntry, type WrkResult } from './bench-tools.js';
import { benchPostgres } from './bench-postgres.js';
import { enrollRequests, makeCsrs, mintTokens as mintTokensIn } from './bench-pool.js';
import { prefillDevices, revokePrefilled } from './bench-store.js';
import { cpuSeconds, freePort, peakRssMiB, spawnServer, type ServerProcess } from './server-process.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    devices: { type: 'string' },
    seconds: { type: 'string' },
    concurrency: { type: 'string' },
    workers: { type: 'string' },
    postgres: { type: 'string' },
    repeat: { type: 'string' },
    out: { type: 'string' },
    keep: { type: 'boolean' },
  },
});
const quick = values.quick ?? false;
const SECONDS = Number(values.seconds ?? (quick ? 4 : 10));
const PREFILL = Number(values.devices ?? (quick ? 50_000 : 1_000_000));
const CONCURRENCY = Number(values.concurrency ?? 32);
const WORKERS = values.workers;
const OUT = values.out ?? 'bench-results.json';
/** The PostgreSQL section: run after the rest (on), not at all (off), or alone (only). */
const POSTGRES = values.postgres ?? 'on';
if (!['on', 'off', 'only'].includes(POSTGRES)) throw new Error('--postgres takes on, off or only');
/** How many times the PostgreSQL section measures each of its setups, in turn. */
const REPEAT = Number(values.repeat ?? (quick ? 1 : 2));
/** Enough CSRs for the run at up to this rate; a pool that runs out shows as failures. */
const POOL = Math.ceil(SECONDS * (quick ? 4_000 : 8_000));
/**
 * The PostgreSQL section's pools, per second of load: above what enrollment reaches
 * (~1,500/s a core at best), and bounded, since it repeats each of its four setups.
 */
const PG_POOL_PER_SECOND = 2_000 * cpus().length;
const CRL_ENTRIES = 100_000;
/** Revocations timed each way (API, CLI). */
const REACH_SAMPLES = 5;
const WARM_UP_SECONDS = 2;
const WARM_UP_POOL = WARM_UP_SECONDS * 6_000;
const MTLS_COUNT = quick ? 3_000 : 20_000;
/**
 * Enrollments per protocol row: enough for the load's seconds at the Node client's pace,
 * except SCEP, whose devices each make an RSA 2048 key first (~150 ms here): its row is
 * bounded by count, and its rate is over the time those took.
 */
const PROTOCOL_COUNT: Record<Protocol, number> = quick ? { json: SECONDS * 1_500, est: SECONDS * 1_500, scep: 160 } : { json: SECONDS * 2_500, est: SECONDS * 2_500, scep: 600 };
const PROTOCOL_WARM_UP = 24;
const CLI = join(import.meta.dirname, '../src/cli/main.js');

const log = (text: string) => process.stderr.write(`${text}\n`);

/** Servers started, so that a failed run leaves none behind. */
const started: ServerProcess[] = [];
async function startImprint(args: string[]): Promise<ServerProcess> {
  const server = await spawnServer(dataDir, args);
  started.push(server);
  return server;
}
const work = mkdtempSync(join(tmpdir(), 'imprint-bench-'));
const dataDir = join(work, 'data');

function imprintCli(args: string[], env: Record<string, string> = {}): string {
  const result = spawnSync(process.execPath, [CLI, ...args, '--data', dataDir], { encoding: 'utf8', env: { ...process.env, ...env } });
  if (result.status !== 0) throw new Error(`imprint ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

/** Mints `count` unbound tokens in the data directory's store. */
const mintTokens = (count: number) => mintTokensIn({ dataDir }, count);

/** Tokens and a P-256 key and CSR for each: the devices' own work, done before any clock starts. */
async function enrollmentPool(count: number, prefix: string): Promise<{ entries: PoolEntry[]; csrs: string[] }> {
  const tokens = await mintTokens(count);
  const csrs = await makeCsrs(count, prefix);
  return { entries: enrollRequests(tokens, csrs), csrs };
}

function wrkEnroll(url: string, pool: string, seconds = SECONDS): Promise<WrkResult> {
  return runWrk({ url, path: '/v1/enroll', seconds, connections: CONCURRENCY, threads: 2, work, pool });
}

/** Runs `load` and adds the server's CPU per successful operation, in microseconds. */
async function withServerCpu<T>(server: ServerProcess, load: () => T | Promise<T>, succeeded: (result: T) => number): Promise<T & { cpuUsPerOp: number | null }> {
  const before = cpuSeconds(server.child.pid!);
  const result = await load();
  const used = cpuSeconds(server.child.pid!) - before;
  const count = succeeded(result);
  return { ...result, cpuUsPerOp: count > 0 ? Math.round((used / count) * 1e6) : null };
}

/**
 * Enrollment over one protocol with the simulator's client: tokens, keys and requests
 * (for SCEP the whole signed, enveloped message) made first, a warm-up, then the load,
 * bounded by count and time, with the server's CPU per enrollment.
 */
async function protocolEnroll(server: ServerProcess, protocol: Protocol): Promise<PhaseReport & { cpuUsPerOp: number | null }> {
  const count = PROTOCOL_COUNT[protocol];
  const tokens = await mintTokens(count + PROTOCOL_WARM_UP);
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca: server.rootPem });
  try {
    const client = new ImprintClient(server.url, server.rootPem, agent);
    const speaker = enrollmentProtocol(protocol, client, server.rootPem);
    const prepared: PreparedEnrollment[] = [];
    for (let i = 0; i < tokens.length; i += 500) {
      prepared.push(
        ...(await Promise.all(
          tokens.slice(i, i + 500).map(async (token, j) => speaker.prepareEnroll(token, await speaker.newKey(), `${protocol}-${String(i + j).padStart(7, '0')}`)),
        )),
      );
    }
    const run = (from: number, n: number, seconds: number) =>
      runBounded(n, CONCURRENCY, new Date(Date.now() + seconds * 1000), async (index) => {
        const started = performance.now();
        await prepared[from + index]!();
        return { ms: performance.now() - started };
      }, () => undefined);
    await run(0, PROTOCOL_WARM_UP, WARM_UP_SECONDS);
    return await withServerCpu(server, async () => {
      const { results, seconds } = await run(PROTOCOL_WARM_UP, count, SECONDS * 3);
      return phaseReport(results, seconds);
    }, (report) => report.ok);
  } finally {
    agent.destroy();
  }
}

/** mTLS load with the Node client: new TLS sessions, or kept-alive connections. */
async function mtlsLoad(url: string, caPem: string, identities: readonly ClientIdentity[], keepAlive: boolean): Promise<PhaseReport> {
  const client = new ImprintClient(url, caPem);
  const agents = keepAlive ? identities.map((identity) => client.mtlsAgent(identity, true)) : [];
  const deadline = new Date(Date.now() + SECONDS * 1000);
  try {
    const { results, seconds } = await runBounded(
      MTLS_COUNT,
      CONCURRENCY,
      deadline,
      async (index) => {
        const identity = identities[index % identities.length]!;
        const agent = keepAlive ? agents[index % agents.length]! : client.mtlsAgent(identity);
        const started = performance.now();
        try {
          await client.device(identity, agent);
        } finally {
          if (!keepAlive) agent.destroy();
        }
        return { ms: performance.now() - started };
      },
      () => undefined,
    );
    return phaseReport(results, seconds);
  } finally {
    for (const agent of agents) agent.destroy();
  }
}

/** A device enrolled to reconnect with. */
type Identity = ClientIdentity & { readonly id: string; readonly serial: string };

/** Enrolls a few devices to reconnect with. */
async function identitiesFor(server: ServerProcess, count: number): Promise<Identity[]> {
  const tokens = await mintTokens(count);
  const client = new ImprintClient(server.url, server.rootPem);
  const identities: Identity[] = [];
  for (const [i, token] of tokens.entries()) {
    const key = await generateDeviceKey();
    const id = `mtls-${String(i).padStart(3, '0')}`;
    const enrolled = await client.enroll(token, buildCsr(key, id));
    identities.push({ id, serial: enrolled.serial, certificatePem: enrolled.certificate, keyPem: key.privateKeyPem });
  }
  return identities;
}

/** POST with a client certificate; resolves with the status. */
function postAs(url: string, caPem: string, who: { cert: string; key: string }, json: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify(json);
    const req = request(url, { method: 'POST', ca: caPem, cert: who.cert, key: who.key, agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      readBody(res).then(() => resolve(res.statusCode ?? 0), reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** GET; resolves with the body and how long the whole answer took. */
function timedGet(url: string, caPem: string): Promise<{ ms: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(url, { ca: caPem, agent: false }, (res) => {
      readBody(res).then((body) => resolve({ ms: performance.now() - started, body }), reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Milliseconds from a revocation returning to the device's open connection being closed. */
async function revocationReach(server: ServerProcess, identity: ClientIdentity, revoke: () => Promise<void>): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: server.rootPem, cert: identity.certificatePem, key: identity.keyPem });
  try {
    const socket = await new Promise<import('node:net').Socket>((resolve, reject) => {
      const req = request(`${server.url}/v1/device`, { agent }, (res) => {
        const socket = res.socket; // released to the agent (and unset here) once the answer ends
        readBody(res).then(() => resolve(socket), reject);
      });
      req.on('error', reject);
      req.end();
    });
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now())));
    await revoke();
    const returned = performance.now();
    const at = await Promise.race([closed, new Promise<number>((resolve) => setTimeout(() => resolve(NaN), 5000))]);
    return Math.round((at - returned) * 10) / 10;
  } finally {
    agent.destroy();
  }
}

const ratio = (ours: number, theirs: number | undefined) => (theirs ? Math.round((ours / theirs) * 100) / 100 : undefined);

type Row = [string, string, string, string, string];

/** Everything but PostgreSQL: the table's rows, the failed requests and the JSON's parts. */
async function benchMain(serveArgs: string[]): Promise<{ rows: Row[]; failures: number; results: Record<string, unknown> }> {
  const haveCfssl = ensureTool('cfssl', 'golang-cfssl');
  const haveNginx = ensureTool('nginx', 'nginx-light');

  imprintCli(['init']);
  imprintCli(['operators', 'issue', 'bench', '--role', 'admin', '--out', join(work, 'ops')], { IMPRINT_P12_PASSPHRASE: 'bench' });
  const admin = { cert: readFileSync(join(work, 'ops/bench.pem'), 'utf8'), key: readFileSync(join(work, 'ops/bench.key'), 'utf8') };
  const issuerPem = readFileSync(join(dataDir, 'ca/issuer.pem'), 'utf8');
  const rootPem = readFileSync(join(dataDir, 'ca/root.pem'), 'utf8');

  log(`making ${POOL.toLocaleString('en')} tokens, keys and CSRs for each enrollment run ...`);
  const emptyPool = await enrollmentPool(POOL, 'empty');
  writePool(join(work, 'enroll-empty.pool'), emptyPool.entries);
  const fullPool = await enrollmentPool(POOL, 'full');
  writePool(join(work, 'enroll-full.pool'), fullPool.entries);
  // Every measured load starts on warm workers (JIT, caches): 2 s of enrollments first.
  const warmPools = [await enrollmentPool(WARM_UP_POOL, 'warm-a'), await enrollmentPool(WARM_UP_POOL, 'warm-b')];
  warmPools.forEach((pool, i) => writePool(join(work, `warm-${i}.pool`), pool.entries));
  // cfssl keeps no state, so its pool may repeat CSRs: four rounds leave room for 4x our pace.
  const cfsslBodies = emptyPool.csrs.map((csr) => ({ body: JSON.stringify({ certificate_request: csr }) }));
  writePool(join(work, 'cfssl.pool'), [...cfsslBodies, ...cfsslBodies, ...cfsslBodies, ...cfsslBodies]);

  // --- empty store ---------------------------------------------------------------------
  // With the plain-HTTP status listener: relying parties fetch OCSP there.
  let server = await startImprint([...serveArgs, '--status-port', String(await freePort())]);
  log('enroll, empty store ...');
  await wrkEnroll(server.url, join(work, 'warm-0.pool'), WARM_UP_SECONDS);
  const enrollEmpty = await withServerCpu(server, () => wrkEnroll(server.url, join(work, 'enroll-empty.pool')), (result) => result.requests - result.failed);
  const identities = await identitiesFor(server, 32);
  const byProtocol = {} as Record<Protocol, Awaited<ReturnType<typeof protocolEnroll>>>;
  for (const protocol of PROTOCOLS) {
    log(`enroll over ${protocol}, the simulator's client ...`);
    byProtocol[protocol] = await protocolEnroll(server, protocol);
  }
  log('mTLS reconnects and kept-alive requests ...');
  const reconnect = await mtlsLoad(server.url, rootPem, identities, false);
  const keptAlive = await mtlsLoad(server.url, rootPem, identities, true);

  log('OCSP ...');
  const certFile = join(work, 'ocsp-subject.pem');
  writeFileSync(certFile, identities[0]!.certificatePem);
  // openssl adds a nonce by default, so each answer is signed; RFC 5019 clients send none and get a kept answer.
  const ocspLoad = (nonce: boolean, url: string) => {
    const requestFile = join(work, `ocsp-request-${nonce ? 'nonce' : 'plain'}.der`);
    const args = ['ocsp', '-issuer', join(dataDir, 'ca/issuer.pem'), '-cert', certFile, ...(nonce ? [] : ['-no_nonce']), '-reqout', requestFile];
    spawnSync('openssl', args, { stdio: 'ignore' });
    return runWrk({ url, path: '/ocsp', seconds: SECONDS, connections: CONCURRENCY, threads: 2, work, fixedBody: { file: requestFile, contentType: 'application/ocsp-request' } });
  };
  const ocsp = await ocspLoad(true, server.url);
  const ocspNoNonce = await ocspLoad(false, server.url);
  const ocspHttp = await ocspLoad(true, server.statusUrl!);
  const ocspHttpNoNonce = await ocspLoad(false, server.statusUrl!);

  log('revocation reach ...');
  // The watcher polls every 200 ms, so one sample says little: several devices each way.
  const reachSamples = async (first: number, revoke: (identity: Identity) => Promise<void>) => {
    const samples: number[] = [];
    for (const identity of identities.slice(first, first + REACH_SAMPLES)) samples.push(await revocationReach(server, identity, () => revoke(identity)));
    const sorted = [...samples].sort((a, b) => a - b);
    return { medianMs: sorted[Math.floor(sorted.length / 2)]!, maxMs: sorted[sorted.length - 1]!, samples };
  };
  const viaApi = await reachSamples(1, async (identity) => {
    const status = await postAs(`${server.url}/v1/admin/devices/${identity.id}/revoke`, rootPem, admin, { reason: 'keyCompromise' });
    if (status !== 200) throw new Error(`revoke over the API answered ${status}`);
  });
  const viaCli = await reachSamples(1 + REACH_SAMPLES, async (identity) => {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, 'devices', 'revoke', identity.id, '--data', dataDir], { stdio: 'ignore' });
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`imprint devices revoke exited ${code}`))));
    });
  });
  await server.stop();

  // --- pre-filled store ----------------------------------------------------------------
  log(`pre-filling ${PREFILL.toLocaleString('en')} devices ...`);
  const prefillStarted = performance.now();
  const sampleDer = Buffer.from(identities[0]!.certificatePem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  prefillDevices(dataDir, PREFILL, sampleDer, (done) => process.stderr.write(`\r  ${done.toLocaleString('en')}`));
  log(` (${Math.round((performance.now() - prefillStarted) / 1000)} s)`);
  server = await startImprint(serveArgs);
  log('enroll, pre-filled store ...');
  await wrkEnroll(server.url, join(work, 'warm-1.pool'), WARM_UP_SECONDS);
  const enrollFull = await withServerCpu(server, () => wrkEnroll(server.url, join(work, 'enroll-full.pool')), (result) => result.requests - result.failed);
  const rssMiB = peakRssMiB(server.child.pid!);

  log(`CRL with ${CRL_ENTRIES.toLocaleString('en')} revoked entries ...`);
  revokePrefilled(dataDir, CRL_ENTRIES);
  // The first GET after the change builds and publishes the CRL; later ones, on any worker
  // (connections are handed out in turn), serve the published one.
  const workers = Number(WORKERS ?? cpus().length);
  const rebuilt = await timedGet(`${server.url}/crl`, rootPem);
  const gets: { ms: number; body: Buffer }[] = [];
  for (let i = 0; i < 2 * workers; i++) gets.push(await timedGet(`${server.url}/crl`, rootPem));
  const cached = gets.reduce((a, b) => (a.ms < b.ms ? a : b));
  const crlFile = join(work, 'big.crl');
  writeFileSync(crlFile, rebuilt.body);
  const crlText = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', crlFile, '-noout', '-text'], { encoding: 'utf8', maxBuffer: 1 << 30 }).stdout;
  const crlEntries = (crlText.match(/Serial Number:/g) ?? []).length;
  await server.stop();

  // --- peers ---------------------------------------------------------------------------
  let cfsslSign: WrkResult | undefined;
  if (haveCfssl) {
    log('cfssl serve, signing the same CSRs ...');
    const cfssl = await startCfssl(work, issuerPem, readFileSync(join(dataDir, 'ca/issuer.key'), 'utf8'));
    try {
      cfsslSign = await runWrk({ url: cfssl.url, path: '/api/v1/cfssl/sign', seconds: SECONDS, connections: CONCURRENCY, threads: 2, work, pool: join(work, 'cfssl.pool') });
    } finally {
      await cfssl.stop();
    }
  }
  let nginxReconnect: PhaseReport | undefined;
  let nginxKeptAlive: PhaseReport | undefined;
  if (haveNginx) {
    log('nginx ssl_verify_client on, same certificates ...');
    const chain = join(work, 'client-ca.pem');
    writeFileSync(chain, issuerPem + rootPem);
    const nginx = await startNginx(work, { serverPem: join(dataDir, 'tls/server.pem'), serverKey: join(dataDir, 'tls/server.key'), clientCaPem: chain });
    try {
      const live = identities.slice(4); // 1 and 2 were revoked, which nginx does not know
      nginxReconnect = await mtlsLoad(nginx.url, rootPem, live, false);
      nginxKeptAlive = await mtlsLoad(nginx.url, rootPem, live, true);
    } finally {
      await nginx.stop();
    }
  }

  // --- report --------------------------------------------------------------------------
  const cpu = (result: { cpuUsPerOp: number | null }) => (result.cpuUsPerOp === null ? '' : `, ${result.cpuUsPerOp} us CPU`);
  const json = byProtocol.json;
  const protocolRows = PROTOCOLS.map((protocol): Row => {
    const report = byProtocol[protocol];
    return [
      `enroll/s over ${protocol}, Node client (p50 / p99 ms, server CPU/enroll)`,
      `${report.perSecond} (${report.latencyMs.p50} / ${report.latencyMs.p99}${cpu(report)})`,
      protocol === 'json' ? `${report.ok} enrolled, ${report.failed} failed` : `json ${json.perSecond}${cpu(json)}`,
      protocol === 'json' ? '' : String(ratio(report.perSecond, json.perSecond) ?? '-'),
      '',
    ];
  });
  const rows: Row[] = [
    ['enroll/s, empty store (p50 / p99 ms, server CPU/enroll)', `${enrollEmpty.perSecond} (${enrollEmpty.p50Ms} / ${enrollEmpty.p99Ms}${cpu(enrollEmpty)})`, cfsslSign ? `cfssl sign ${cfsslSign.perSecond} (${cfsslSign.p50Ms} / ${cfsslSign.p99Ms})` : 'cfssl: not run', String(ratio(enrollEmpty.perSecond, cfsslSign?.perSecond) ?? '-'), '>= 1.0, p99 < 50 ms'],
    [`enroll/s, ${PREFILL.toLocaleString('en')} devices (p50 / p99 ms, CPU)`, `${enrollFull.perSecond} (${enrollFull.p50Ms} / ${enrollFull.p99Ms}${cpu(enrollFull)})`, `empty store ${enrollEmpty.perSecond}`, String(ratio(enrollFull.perSecond, enrollEmpty.perSecond)), '>= 0.9'],
    ...protocolRows,
    ['mTLS reconnects/s (p50 / p99 ms)', `${reconnect.perSecond} (${reconnect.latencyMs.p50} / ${reconnect.latencyMs.p99})`, nginxReconnect ? `nginx ${nginxReconnect.perSecond}` : 'nginx: not run', String(ratio(reconnect.perSecond, nginxReconnect?.perSecond) ?? '-'), '>= 0.9'],
    ['kept-alive mTLS requests/s', String(keptAlive.perSecond), nginxKeptAlive ? `nginx ${nginxKeptAlive.perSecond}` : 'nginx: not run', String(ratio(keptAlive.perSecond, nginxKeptAlive?.perSecond) ?? '-'), ''],
    ['OCSP/s, nonce: signed each, HTTPS (p99 ms)', `${ocsp.perSecond} (${ocsp.p99Ms})`, '', '', '>= 10,000'],
    ['OCSP/s, no nonce: kept, HTTPS (p99 ms)', `${ocspNoNonce.perSecond} (${ocspNoNonce.p99Ms})`, '', '', '>= 10,000'],
    ['OCSP/s, nonce, plain HTTP (p99 ms)', `${ocspHttp.perSecond} (${ocspHttp.p99Ms})`, '', '', '>= 10,000'],
    ['OCSP/s, no nonce, plain HTTP (p99 ms)', `${ocspHttpNoNonce.perSecond} (${ocspHttpNoNonce.p99Ms})`, '', '', '>= 10,000'],
    ['revocation reach API / CLI, median (max) ms', `${viaApi.medianMs} (${viaApi.maxMs}) / ${viaCli.medianMs} (${viaCli.maxMs})`, '', '', '< 1000'],
    [`CRL rebuild, ${crlEntries.toLocaleString('en')} entries (ms)`, `${Math.round(rebuilt.ms)} (cached: ${Math.round(cached.ms)})`, '', '', '< 1000'],
    ['server peak RSS, largest process / all (MiB)', rssMiB ? `${rssMiB.largest} / ${rssMiB.total}` : '-', '', '', '< 300'],
  ];
  const failures = PROTOCOLS.reduce((sum, protocol) => sum + byProtocol[protocol].failed, 0) + enrollEmpty.failed + enrollFull.failed + ocsp.failed + ocspNoNonce.failed + ocspHttp.failed + ocspHttpNoNonce.failed + (cfsslSign?.failed ?? 0) + reconnect.failed + keptAlive.failed;
  const results = {
    enrollEmpty,
    enrollFull,
    enrollByProtocol: byProtocol,
    cfsslSign: cfsslSign ?? null,
    reconnect,
    nginxReconnect: nginxReconnect ?? null,
    keptAlive,
    nginxKeptAlive: nginxKeptAlive ?? null,
    ocsp,
    ocspNoNonce,
    ocspHttp,
    ocspHttpNoNonce,
    revocationReachMs: { api: viaApi, cli: viaCli },
    crl: { entries: crlEntries, rebuildMs: Math.round(rebuilt.ms), cachedMs: Math.round(cached.ms), bytes: rebuilt.body.length },
    serverPeakRssMiB: rssMiB ?? null,
    ratios: {
      enrollVsCfssl: ratio(enrollEmpty.perSecond, cfsslSign?.perSecond) ?? null,
      fullVsEmpty: ratio(enrollFull.perSecond, enrollEmpty.perSecond),
      reconnectVsNginx: ratio(reconnect.perSecond, nginxReconnect?.perSecond) ?? null,
      keptAliveVsNginx: ratio(keptAlive.perSecond, nginxKeptAlive?.perSecond) ?? null,
    },
  };
  return { rows, failures, results };
}

async function main(): Promise<void> {
  log(`imprint benchmark in ${work}: ${SECONDS} s per load, concurrency ${CONCURRENCY}, pre-filled store ${PREFILL.toLocaleString('en')} devices${WORKERS ? `, ${WORKERS} workers` : ''}`);
  if (!ensureTool('wrk', 'wrk')) throw new Error('wrk is needed as the load generator (apt-get install wrk)');
  const serveArgs = ['--rate-limit', 'off', ...(WORKERS ? ['--workers', WORKERS] : [])];
  const loadAverageStart = loadavg()[0]!;
  const mainSection = POSTGRES === 'only' ? undefined : await benchMain(serveArgs);
  const postgres =
    POSTGRES === 'off'
      ? undefined
      : await benchPostgres({ work, seconds: SECONDS, warmUpSeconds: WARM_UP_SECONDS, concurrency: CONCURRENCY, serveArgs, repetitions: REPEAT, prefill: PREFILL, poolPerSecond: PG_POOL_PER_SECOND, log });

  const machine = {
    node: process.version,
    openssl: process.versions.openssl,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    loadAverage: { start: loadAverageStart, end: loadavg()[0]! },
    date: new Date().toISOString(),
  };
  const widths = [62, 34, 32, 7, 22];
  const line = (cells: readonly string[]) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' ').trimEnd();
  process.stdout.write(
    [
      `imprint benchmark: Node ${machine.node}, OpenSSL ${machine.openssl}, ${machine.cpus} x ${machine.cpuModel}, load average ${machine.loadAverage.start.toFixed(2)} at the start, ${machine.loadAverage.end.toFixed(2)} at the end`,
      `${SECONDS} s per load, ${CONCURRENCY} concurrent clients, wrk for HTTP load, the simulator's client for mTLS${WORKERS ? `, --workers ${WORKERS}` : ''}`,
      '',
      ...(mainSection ? [line(['metric', 'imprint', 'reference (same run)', 'ratio', 'target']), ...mainSection.rows.map(line), ''] : []),
      ...(postgres ? [postgres.table] : []),
    ].join('\n'),
  );
  if (mainSection?.failures) log(`warning: ${mainSection.failures} requests failed or ran out of pool (see JSON)`);

  const options = { seconds: SECONDS, concurrency: CONCURRENCY, prefilledDevices: PREFILL, workers: WORKERS ?? null, pool: POOL, postgres: POSTGRES, repeat: REPEAT };
  writeFileSync(OUT, JSON.stringify({ machine, options, ...mainSection?.results, postgres: postgres?.results ?? null }, null, 2) + '\n');
  log(`written to ${OUT}`);
}

main()
  .catch((error: unknown) => {
    log(`bench failed: ${(error as Error).stack ?? String(error)}`);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const server of started) if (server.child.exitCode === null) server.child.kill('SIGKILL');
    if (!values.keep) rmSync(work, { recursive: true, force: true });
  });
