/**
 * The benchmark's outside tools: wrk as the HTTP load generator (light enough to leave the
 * server its CPU), and the peers it is compared with, cfssl and nginx, installed from
 * Debian packages when missing. Everything listens on and talks to 127.0.0.1 only.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';

/** True when `command` is on the PATH, installing `debianPackage` first if it is not and we may. */
export function ensureTool(command: string, debianPackage: string): boolean {
  const found = () => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
  if (found()) return true;
  if (process.getuid?.() !== 0) return false;
  process.stderr.write(`installing ${debianPackage} (apt-get) ...\n`);
  spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
  spawnSync('apt-get', ['install', '-y', '-qq', debianPackage], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return found();
}

/** A free loopback TCP port. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** What wrk measured. */
export interface WrkResult {
  readonly requests: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Responses that were not 2xx or 3xx (a pool ran out, or the server refused). */
  readonly failed: number;
  /** wrk's own CPU seconds (user + system): the load generator's share of the machine. */
  readonly cpuSeconds: number;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function parseWrk(output: string): WrkResult {
  const latency = (percent: string) => {
    const match = new RegExp(`^\\s+${percent}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(output);
    return match ? Math.round(Number(match[1]) * UNIT_MS[match[2]!]! * 100) / 100 : NaN;
  };
  const requests = Number(/(\d+) requests in/.exec(output)?.[1] ?? NaN);
  const failed = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(output)?.[1] ?? 0) + Number(/Socket errors:.*timeout (\d+)/.exec(output)?.[1] ?? 0);
  const seconds = Number(/requests in ([\d.]+)s/.exec(output)?.[1] ?? NaN);
  if (!Number.isFinite(seconds) || !Number.isFinite(requests)) throw new Error(`could not read wrk's output:\n${output}`);
  // The shell's `times` after wrk: its own line, then wrk's (the children's) user and system time.
  const times = [...output.matchAll(/(\d+)m([\d.]+)s (\d+)m([\d.]+)s/g)].at(-1);
  const cpuSeconds = times ? Number(times[1]) * 60 + Number(times[2]) + Number(times[3]) * 60 + Number(times[4]) : NaN;
  // Only answered requests count: a pool that ran out shows as failures, not as speed.
  return { requests, perSecond: Math.round((requests - failed) / seconds), p50Ms: latency('50'), p99Ms: latency('99'), failed, cpuSeconds };
}

// Each wrk thread takes every n-th line of the pool, so no request is sent twice; a thread
// whose share runs out asks for /exhausted, which counts as a failure.
const POOL_SCRIPT = `
local counter = 0
function setup(thread) thread:set("id", counter); counter = counter + 1 end
function init(args)
  path = args[1]
  local threads = tonumber(args[3])
  pool = {}
  local n = 0
  for line in io.lines(args[2]) do
    if n % threads == id then
      local tab = line:find("\\t", 1, true)
      pool[#pool + 1] = { line:sub(1, tab - 1), line:sub(tab + 1) }
    end
    n = n + 1
  end
  i = 0
end
function request()
  i = i + 1
  local entry = pool[i]
  if entry == nil then return wrk.format("GET", "/exhausted") end
  local headers = { ["Content-Type"] = "application/json" }
  if entry[1] ~= "-" then headers["Authorization"] = entry[1] end
  return wrk.format("POST", path, headers, entry[2])
end
`;

// The same request every time: with no request() function, wrk builds its bytes once after
// init and sends them as they are; formatting them anew in Lua for each request cost wrk
// ~3 us of CPU per request (~20%), on the cores the server is measured on.
const FIXED_BODY_SCRIPT = `
function init(args)
  local file = io.open(args[2], "rb")
  wrk.method = "POST"
  wrk.path = args[1]
  wrk.headers["Content-Type"] = args[3]
  wrk.body = file:read("*all")
  file:close()
end
`;

/** One line of a request pool: an Authorization header value (or none) and a JSON body. */
export interface PoolEntry {
  readonly authorization?: string;
  readonly body: string;
}

/** Writes a request pool for wrk. */
export function writePool(file: string, entries: readonly PoolEntry[]): void {
  writeFileSync(file, entries.map((entry) => `${entry.authorization ?? '-'}\t${entry.body}`).join('\n') + '\n');
}

/**
 * Runs wrk against `url` with POSTs from a pool file, or the same body every time. It runs
 * beside this process, so that two loads (one per server) can run at once.
 */
export async function runWrk(options: {
  readonly url: string;
  readonly path: string;
  readonly seconds: number;
  readonly connections: number;
  readonly threads: number;
  readonly work: string;
  readonly pool?: string;
  readonly fixedBody?: { readonly file: string; readonly contentType: string };
}): Promise<WrkResult> {
  const script = join(options.work, options.pool ? 'pool.lua' : 'fixed.lua');
  // Written once: a second wrk starting beside the first must not read it half rewritten.
  if (!existsSync(script)) writeFileSync(script, options.pool ? POOL_SCRIPT : FIXED_BODY_SCRIPT);
  const scriptArgs = options.pool
    ? [options.path, options.pool, String(options.threads)]
    : [options.path, options.fixedBody!.file, options.fixedBody!.contentType];
  const wrkArgs = ['-t', String(options.threads), '-c', String(options.connections), '-d', `${options.seconds}s`, '--timeout', '10s', '--latency', '-s', script, options.url, '--', ...scriptArgs];
  // Through sh, whose `times` then reports wrk's CPU (Node cannot see a child's rusage).
  const child = spawn('sh', ['-c', 'wrk "$@"; code=$?; times; exit $code', 'sh', ...wrkArgs], { stdio: ['ignore', 'pipe', 'pipe'], timeout: (options.seconds + 60) * 1000 });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  if (code !== 0) throw new Error(`wrk failed (${code ?? signal}): ${stderr}`);
  return parseWrk(stdout);
}

/** The peers' versions as they print them, e.g. "nginx/1.22.1, OpenSSL 3.0.19; cfssl 1.2.0, go1.19.8". */
export function peerVersions(): string {
  const output = (command: string, args: string[]) => {
    const result = spawnSync(command, args, { encoding: 'utf8' });
    return `${result.stdout ?? ''}${result.stderr ?? ''}`;
  };
  const nginx = output('nginx', ['-V']);
  const cfssl = output('cfssl', ['version']);
  const nginxVersion = /nginx version: (\S+)/.exec(nginx)?.[1];
  // nginx names the OpenSSL it was built with, and the one it runs with when they differ.
  const openssl = /running with OpenSSL ([\d.]+)/.exec(nginx)?.[1] ?? /built with OpenSSL ([\d.]+)/.exec(nginx)?.[1];
  const cfsslVersion = /Version: (\S+)/.exec(cfssl)?.[1];
  const go = /Runtime: (\S+)/.exec(cfssl)?.[1];
  return [nginxVersion && `${nginxVersion}, OpenSSL ${openssl ?? '?'}`, cfsslVersion && `cfssl ${cfsslVersion}, ${go ?? '?'}`].filter(Boolean).join('; ');
}

/** A started peer process. */
export interface Peer {
  readonly url: string;
  /** Its process (for nginx the master, whose children are the workers): for its CPU. */
  readonly pid: number;
  stop(): Promise<void>;
}

async function waitForPort(port: number, child: ChildProcess, name: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${name} did not listen on ${port}`);
}

const stopper = (child: ChildProcess) => () =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });

/**
 * `cfssl serve` signing with the same issuing CA: the sign-rate reference. Plain HTTP, no
 * token, no database: what it does is a strict subset of an enrollment.
 */
export async function startCfssl(work: string, issuerPem: string, issuerKeyPem: string): Promise<Peer> {
  const port = await freePort();
  const config = join(work, 'cfssl.json');
  writeFileSync(config, JSON.stringify({ signing: { default: { usages: ['digital signature', 'client auth'], expiry: '2160h' } } }));
  // cfssl 1.2 reads SEC1 EC keys, not PKCS#8.
  const key = join(work, 'cfssl-issuer.key');
  const converted = spawnSync('openssl', ['ec', '-out', key], { input: issuerKeyPem, stdio: ['pipe', 'ignore', 'ignore'] });
  if (converted.status !== 0) throw new Error('openssl ec could not convert the issuing key for cfssl');
  const cert = join(work, 'cfssl-issuer.pem');
  writeFileSync(cert, issuerPem);
  const child = spawn('cfssl', ['serve', '-address', '127.0.0.1', '-port', String(port), '-ca', cert, '-ca-key', key, '-config', config, '-loglevel', '5'], {
    stdio: 'ignore',
  });
  await waitForPort(port, child, 'cfssl');
  return { url: `http://127.0.0.1:${port}`, pid: child.pid!, stop: stopper(child) };
}

/**
 * nginx with `ssl_verify_client on` on the same server certificate and CA chain: the mTLS
 * handshake reference. It answers /v1/device with a constant body. Session tickets on, as
 * imprint has them (a full handshake issues tickets on both; a resumption offers one): the
 * ticket key is made once by the master, so every worker resumes every ticket; the session
 * cache serves TLS 1.2 clients' session IDs.
 */
export async function startNginx(work: string, paths: { serverPem: string; serverKey: string; clientCaPem: string }): Promise<Peer> {
  const port = await freePort();
  const prefix = join(work, 'nginx');
  spawnSync('mkdir', ['-p', join(prefix, 'logs'), join(prefix, 'tmp')]);
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes auto;
daemon off;
user root;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${prefix}/tmp;
  proxy_temp_path ${prefix}/tmp;
  fastcgi_temp_path ${prefix}/tmp;
  uwsgi_temp_path ${prefix}/tmp;
  scgi_temp_path ${prefix}/tmp;
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${paths.serverPem};
    ssl_certificate_key ${paths.serverKey};
    ssl_client_certificate ${paths.clientCaPem};
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_session_cache shared:bench:10m;
    ssl_session_tickets on;
    ssl_session_timeout 2h;
    keepalive_requests 100000;
    location / {
      default_type application/json;
      return 200 '{"deviceId":"nginx","status":"active"}';
    }
  }
}
`,
  );
  const child = spawn('nginx', ['-p', prefix, '-c', conf], { stdio: 'ignore' });
  await waitForPort(port, child, 'nginx');
  return { url: `https://127.0.0.1:${port}`, pid: child.pid!, stop: stopper(child) };
}
