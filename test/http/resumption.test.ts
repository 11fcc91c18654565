/**
 * TLS session resumption as a device's reconnects use it (RFC 8446 4.6.1 tickets), driven by
 * the real `openssl s_client -sess_out/-sess_in` and by Node's tls `session` option: sessions
 * resume; every request on a resumed connection is authenticated against the store as after a
 * full handshake (a device revoked after its session was made is refused, and its open
 * resumed connection closed); a ticket one cluster worker issued resumes on the others; a key
 * rotation or a restart retires tickets, which costs a full handshake and nothing else.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildCsr, generateDeviceKey } from '../../simulator/csr.js';
import { spawnServer, type ServerProcess } from '../../scripts/server-process.js';
import { TICKET_KEY_BYTES, TicketKeys } from '../../src/http/ticket-keys.js';
import { openInstance } from '../../src/instance.js';
import { call } from '../helpers/https.js';
import { tempDir } from '../helpers/openssl.js';
import { portHolders } from '../helpers/process-tree.js';
import { enrollDevice, issueOperator, startTestServer, type TestServer } from '../helpers/server.js';

const work = tempDir();
const root = fileURLToPath(new URL('../..', import.meta.url));

/** A device's credentials as files, for openssl. */
interface DeviceFiles {
  readonly id: string;
  readonly certPath: string;
  readonly keyPath: string;
  readonly cert: string;
  readonly key: string;
}

function deviceFiles(id: string, cert: string, key: string): DeviceFiles {
  const certPath = join(work, `${id}.pem`);
  const keyPath = join(work, `${id}.key`);
  writeFileSync(certPath, cert);
  writeFileSync(keyPath, key);
  return { id, certPath, keyPath, cert, key };
}

/** What one s_client connection saw. */
interface Seen {
  /** "New" after a full handshake, "Reused" after a resumption. */
  readonly handshake: string | undefined;
  readonly protocol: string | undefined;
  readonly status: number | undefined;
  readonly body: any;
  readonly output: string;
}

function seen(output: string): Seen {
  const session = /^(New|Reused), (TLSv[\d.]+), Cipher is/m.exec(output);
  // s_client prints session tickets as they arrive, possibly on the line the response
  // starts or ends: no ^ anchor, and the body is as long as its Content-Length says.
  const response = /HTTP\/1\.1 (\d{3})[^]*?content-length: (\d+)\r\n[^]*?\r\n\r\n/i.exec(output);
  const start = response ? response.index + response[0].length : 0;
  const body = response && output.length >= start + Number(response[2]) ? output.slice(start, start + Number(response[2])) : undefined;
  return {
    handshake: session?.[1],
    protocol: session?.[2],
    status: body === undefined ? undefined : Number(response![1]),
    body: body === undefined ? undefined : JSON.parse(body),
    output,
  };
}

/**
 * One `openssl s_client` connection, a process of its own: it offers the session in
 * `sessionIn` when given, saves the session it ends with to `sessionOut`, and sends one GET
 * /v1/device. `keepOpen`: the request keeps the connection alive, and the caller ends it.
 */
function sClient(port: number, rootPath: string, device: DeviceFiles, session: { sessionIn?: string; sessionOut?: string }, keepOpen = false) {
  const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', rootPath, '-verify_return_error', '-cert', device.certPath, '-key', device.keyPath];
  if (session.sessionIn) args.push('-sess_in', session.sessionIn);
  if (session.sessionOut) args.push('-sess_out', session.sessionOut);
  const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('latin1')));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  void exited.then(() => clearTimeout(killer));
  // Without Connection: close the server keeps the connection; s_client ends on the server's
  // close, or on the end of its stdin (which stays open until then).
  child.stdin.write(`GET /v1/device HTTP/1.1\r\nHost: 127.0.0.1\r\n${keepOpen ? '' : 'Connection: close\r\n'}\r\n`);
  return {
    child,
    /** Resolves once the connection has ended (the server closed it, or end() was called). */
    async done(): Promise<Seen> {
      await exited;
      return seen(output);
    },
    /** Resolves once the response has arrived, the connection still open. */
    async answered(): Promise<Seen> {
      for (let waited = 0; waited < 10_000; waited += 20) {
        const now = seen(output);
        if (now.body !== undefined) return now;
        if (child.exitCode !== null) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      throw new Error(`no answer on the connection: ${output}`);
    },
    /** Resolves true once the connection has ended, false if it is still open after `ms`. */
    endedWithin: (ms: number) => Promise.race([exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms))]),
    end(): Promise<Seen> {
      child.stdin.end();
      return this.done();
    },
  };
}

/** One request on a new connection that closes after it. */
const reconnect = (port: number, rootPath: string, device: DeviceFiles, session: { sessionIn?: string; sessionOut?: string } = {}) =>
  sClient(port, rootPath, device, session).done();

const portOf = (url: string) => Number(new URL(url).port);

/**
 * `count` connections held open at once, each offering `session` and sending one request:
 * what each saw, and which processes hold their server side (ss).
 */
/**
 * Connections enough to land on both workers however they are spread: in turn by the
 * primary, or by the kernel's hash (serve.ts workersBindThePort), which puts all 16 on one
 * worker once in 32,768.
 */
const ON_BOTH = 16;

async function heldOpen(port: number, rootPath: string, device: DeviceFiles, session: string, count: number) {
  const open = Array.from({ length: count }, () => sClient(port, rootPath, device, { sessionIn: session }, true));
  try {
    const answers = await Promise.all(open.map((each) => each.answered()));
    return { answers, pids: portHolders(port, 'established') };
  } finally {
    await Promise.all(open.map((each) => each.end()));
  }
}

describe('TicketKeys', () => {
  it('holds one 48-byte key, tells its followers of a new one, and rotates on its own', () => {
    expect(() => new TicketKeys(randomBytes(32))).toThrow(/48 bytes/);
    vi.useFakeTimers();
    try {
      const keys = TicketKeys.random();
      const first = keys.current();
      expect(first).toHaveLength(TICKET_KEY_BYTES);
      const heard: Buffer[] = [];
      const unfollow = keys.onChange((key) => heard.push(key));
      const stop = keys.rotateEvery(1000);
      vi.advanceTimersByTime(2500);
      expect(heard).toHaveLength(2);
      expect(heard[0]!.equals(first)).toBe(false);
      expect(heard[1]!.equals(heard[0]!)).toBe(false);
      expect(keys.current()).toBe(heard[1]);
      unfollow();
      stop();
      vi.advanceTimersByTime(5000);
      expect(heard).toHaveLength(2);
      expect(keys.current()).toBe(heard[1]);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('one process', () => {
  let t: TestServer;
  let admin: { cert: string; key: string };

  const enrolled = async (id: string): Promise<DeviceFiles> => {
    const device = await enrollDevice(t, id);
    expect(device.response.status).toBe(201);
    return deviceFiles(id, device.cert, device.key.privateKeyPem);
  };

  beforeAll(async () => {
    t = await startTestServer();
    admin = await issueOperator(t, 'resumption-admin', 'admin');
  });
  afterAll(async () => {
    await t.destroy();
  });

  it('openssl s_client resumes its session, and the request on the resumed connection is answered for the device', async () => {
    const device = await enrolled('resume-active');
    const session = join(work, 'active.sess');
    const full = await reconnect(portOf(t.url), t.rootPath, device, { sessionOut: session });
    expect(full).toMatchObject({ handshake: 'New', protocol: 'TLSv1.3', status: 200, body: { deviceId: device.id, status: 'active' } });
    expect(full.output).toContain('Verify return code: 0 (ok)');
    // The session is offered again and again, as a device reconnecting with its last ticket would.
    for (let i = 0; i < 3; i++) {
      const resumed = await reconnect(portOf(t.url), t.rootPath, device, { sessionIn: session });
      expect(resumed, resumed.output).toMatchObject({ handshake: 'Reused', protocol: 'TLSv1.3', status: 200, body: { deviceId: device.id } });
    }
  });

  it("Node's tls client resumes with the session option, and is answered as the device", async () => {
    const device = await enrolled('resume-node');
    const get = (session?: Buffer) =>
      new Promise<{ reused: boolean; session: Buffer | undefined; response: string }>((resolve, reject) => {
        let ticket: Buffer | undefined;
        let reused = false;
        let response = '';
        const socket: TLSSocket = connect({ host: '127.0.0.1', port: portOf(t.url), ca: t.rootPem, cert: device.cert, key: device.key, session });
        socket.on('session', (data: Buffer) => (ticket = data));
        socket.on('secureConnect', () => {
          reused = socket.isSessionReused();
          socket.write('GET /v1/device HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
        });
        socket.on('data', (chunk: Buffer) => (response += chunk.toString()));
        socket.on('error', reject);
        socket.on('close', () => resolve({ reused, session: ticket, response }));
      });
    const first = await get();
    expect(first.reused).toBe(false);
    expect(first.session).toBeDefined();
    const second = await get(first.session);
    expect(second.reused).toBe(true);
    expect(second.response).toMatch(/^HTTP\/1\.1 200 /);
    expect(second.response).toContain(`"deviceId":"${device.id}"`);
  });

  it('a device revoked after its session was made: the resumed connection is refused as a full handshake is, and an open one is closed', async () => {
    const device = await enrolled('resume-revoked');
    const session = join(work, 'revoked.sess');
    expect(await reconnect(portOf(t.url), t.rootPath, device, { sessionOut: session })).toMatchObject({ handshake: 'New', status: 200 });
    const open = sClient(portOf(t.url), t.rootPath, device, { sessionIn: session }, true);
    expect(await open.answered()).toMatchObject({ handshake: 'Reused', status: 200, body: { deviceId: device.id } });

    const revoked = await call(`${t.url}/v1/admin/devices/${device.id}/revoke`, { ca: t.rootPem, json: { reason: 'keyCompromise' }, ...admin });
    expect(revoked.status).toBe(200);

    // The revocation watcher knows the resumed connection by its certificate too.
    expect(await open.endedWithin(1000)).toBe(true);
    const resumed = await reconnect(portOf(t.url), t.rootPath, device, { sessionIn: session });
    const full = await reconnect(portOf(t.url), t.rootPath, device);
    expect(resumed, resumed.output).toMatchObject({ handshake: 'Reused', status: 403, body: { error: 'device_revoked' } });
    expect(full).toMatchObject({ handshake: 'New', status: 403, body: { error: 'device_revoked' } });
    expect(resumed.body).toEqual(full.body);
  });

  it('a key rotation retires the tickets made before it: a full handshake, answered, whose new ticket resumes', async () => {
    const device = await enrolled('resume-rotated');
    const before = join(work, 'before-rotation.sess');
    const after = join(work, 'after-rotation.sess');
    await reconnect(portOf(t.url), t.rootPath, device, { sessionOut: before });
    expect(await reconnect(portOf(t.url), t.rootPath, device, { sessionIn: before })).toMatchObject({ handshake: 'Reused', status: 200 });

    t.server.ticketKeys.replace(randomBytes(TICKET_KEY_BYTES));

    const retired = await reconnect(portOf(t.url), t.rootPath, device, { sessionIn: before, sessionOut: after });
    expect(retired).toMatchObject({ handshake: 'New', status: 200, body: { deviceId: device.id } });
    expect(await reconnect(portOf(t.url), t.rootPath, device, { sessionIn: after })).toMatchObject({ handshake: 'Reused', status: 200 });
  });

  it('a restart makes a new key: a session from before it gets a full handshake (by design: the key is never on disk)', async () => {
    const device = await enrolled('resume-restarted');
    const session = join(work, 'restart.sess');
    await reconnect(portOf(t.url), t.rootPath, device, { sessionOut: session });
    expect(await reconnect(portOf(t.url), t.rootPath, device, { sessionIn: session })).toMatchObject({ handshake: 'Reused', status: 200 });
    await t.stop();
    t = await startTestServer(t.dataDir);
    const after = await reconnect(portOf(t.url), t.rootPath, device, { sessionIn: session });
    expect(after, after.output).toMatchObject({ handshake: 'New', status: 200, body: { deviceId: device.id } });
  });
});

describe('imprint serve --workers 2', () => {
  // The store plays no part in resumption: these processes use SQLite in their data directory.
  const dataDir = join(tempDir(), 'data');
  let server: ServerProcess;
  let device: DeviceFiles;
  const rootPath = join(dataDir, 'ca', 'root.pem');

  beforeAll(async () => {
    server = await spawnServer(dataDir, ['--workers', '2', '--rate-limit', 'off']);
    const instance = await openInstance(dataDir);
    let token: string;
    try {
      token = (await instance.tokens.mint({}, { actor: 'cli:test', role: 'admin' })).tokens[0]!.token;
    } finally {
      await instance.close();
    }
    const key = await generateDeviceKey();
    const enrolled = await call(`${server.url}/v1/enroll`, { ca: server.rootPem, json: { csr: buildCsr(key, 'resume-cluster') }, headers: { authorization: `Bearer ${token}` } });
    expect(enrolled.status).toBe(201);
    device = deviceFiles('resume-cluster', enrolled.body.certificate, key.privateKeyPem);
  });
  afterAll(async () => {
    if (server.child.exitCode === null) await server.killGroup('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('a ticket one worker issued resumes on both: 16 connections held open at once, all Reused, on both workers', async () => {
    const session = join(work, 'cluster.sess');
    expect(await reconnect(server.port, rootPath, device, { sessionOut: session })).toMatchObject({ handshake: 'New', status: 200 });
    // ss shows both workers holding some.
    const { answers, pids } = await heldOpen(server.port, rootPath, device, session, ON_BOTH);
    for (const answer of answers) expect(answer, answer.output).toMatchObject({ handshake: 'Reused', protocol: 'TLSv1.3', status: 200, body: { deviceId: device.id } });
    expect(pids.size).toBe(2);
    expect(pids.has(server.child.pid!)).toBe(false);
  });

  it('a full handshake brings one session ticket, not OpenSSL\'s two (deploy/openssl.cnf), and it resumes, bringing none', async () => {
    const tickets = (answer: Seen) => answer.output.match(/Post-Handshake New Session Ticket arrived/g)?.length ?? 0;
    const session = join(work, 'one-ticket.sess');
    const full = await reconnect(server.port, rootPath, device, { sessionOut: session });
    expect(full).toMatchObject({ handshake: 'New', status: 200 });
    expect(tickets(full), full.output).toBe(1);
    const resumed = await reconnect(server.port, rootPath, device, { sessionIn: session });
    expect(resumed).toMatchObject({ handshake: 'Reused', status: 200 });
    // A resumption under the current key is not sent a fresh ticket: the device keeps its own.
    expect(tickets(resumed), resumed.output).toBe(0);
  });

  it('after a restart, a session from before it gets a full handshake, and new sessions resume across workers again', async () => {
    const session = join(work, 'cluster-restart.sess');
    await reconnect(server.port, rootPath, device, { sessionOut: session });
    expect(await server.stop()).toBe(0);
    server = await spawnServer(dataDir, ['--workers', '2', '--rate-limit', 'off']);
    const fresh = join(work, 'cluster-fresh.sess');
    const after = await reconnect(server.port, rootPath, device, { sessionIn: session, sessionOut: fresh });
    expect(after, after.output).toMatchObject({ handshake: 'New', status: 200, body: { deviceId: device.id } });
    const again = await heldOpen(server.port, rootPath, device, fresh, ON_BOTH);
    expect(again.answers.map((each) => [each.handshake, each.status])).toEqual(Array(ON_BOTH).fill(['Reused', 200]));
    expect(again.pids.size).toBe(2);
  });

  it('a rotation reaches every worker, and a worker started after it (replacing a dead one) takes the current key', async () => {
    await server.stop();
    // serve() as the CLI calls it, with a primary whose key rotates on SIGUSR2 instead of every 12 h.
    const harness = join(work, 'rotating-serve.mjs');
    const dist = (path: string) => JSON.stringify(join(root, 'dist', path));
    writeFileSync(
      harness,
      [
        "import { randomBytes } from 'node:crypto';",
        `import { serve } from ${dist('src/serve.js')};`,
        `import { DEFAULT_LIMITS, withoutRateLimits } from ${dist('src/http/limits.js')};`,
        `import { TicketKeys } from ${dist('src/http/ticket-keys.js')};`,
        'const keys = TicketKeys.random();',
        "process.on('SIGUSR2', () => keys.replace(randomBytes(48)));",
        "await serve({ dataDir: process.env.DATA, host: '127.0.0.1', port: 0, limits: withoutRateLimits(DEFAULT_LIMITS), ticketKeys: keys }, 2, { stderr: (text) => process.stderr.write(text + '\\n') });",
      ].join('\n'),
    );
    const primary = spawn(process.execPath, [harness], { env: { ...process.env, DATA: dataDir }, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    primary.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const waitFor = async (pattern: RegExp) => {
      for (let waited = 0; waited < 20_000; waited += 50) {
        const match = pattern.exec(stderr);
        if (match) return match;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      throw new Error(`not seen within 20 s: ${pattern}: ${stderr}`);
    };
    try {
      const port = portOf((await waitFor(/is serving on (https:\/\/\S+)/))[1]!);
      // Both workers were started before this line was written.
      const listeningAt = Date.now();
      const before = join(work, 'before-cluster-rotation.sess');
      const after = join(work, 'after-cluster-rotation.sess');
      await reconnect(port, rootPath, device, { sessionOut: before });
      const resumed = await heldOpen(port, rootPath, device, before, ON_BOTH);
      expect(resumed.answers.map((each) => each.handshake)).toEqual(Array(ON_BOTH).fill('Reused'));
      expect(resumed.pids.size).toBe(2);

      primary.kill('SIGUSR2');
      await new Promise((resolve) => setTimeout(resolve, 300));
      // Neither worker accepts the retired key any more: full handshakes on both, answered.
      const retired = await heldOpen(port, rootPath, device, before, ON_BOTH);
      for (const answer of retired.answers) expect(answer, answer.output).toMatchObject({ handshake: 'New', status: 200 });
      expect(retired.pids.size).toBe(2);
      await reconnect(port, rootPath, device, { sessionOut: after });
      expect((await heldOpen(port, rootPath, device, after, 6)).answers.map((each) => each.handshake)).toEqual(Array(6).fill('Reused'));

      // A worker that dies is replaced once it has lived 5 s (serve.ts EARLY_DEATH_MS). Node's
      // cluster hands the new one the key the first worker listened with; it must follow the
      // current key instead.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 5_300 - (Date.now() - listeningAt))));
      const workers = readFileSync(`/proc/${primary.pid}/task/${primary.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
      expect(workers).toHaveLength(2);
      process.kill(workers[0]!, 'SIGKILL');
      await waitFor(/worker (\d+) is listening/);
      const replaced = await heldOpen(port, rootPath, device, after, ON_BOTH);
      for (const answer of replaced.answers) expect(answer, answer.output).toMatchObject({ handshake: 'Reused', status: 200 });
      expect(replaced.pids.size).toBe(2);
      expect(replaced.pids.has(workers[0]!)).toBe(false);
    } finally {
      try {
        process.kill(-primary.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
});
