/**
 * What a command loads. Every invocation reads the command table and the configuration,
 * the cluster primary of `serve` too, which only forks: the schema libraries (TypeBox,
 * ajv), pkijs, the store, the CA and the server load only in the commands and the workers
 * that use them, and pkijs and asn1js in a worker only once a SCEP message comes. Each
 * process logs the modules it loads through a module hook (`node --import`, given in
 * NODE_OPTIONS so that the workers have it too).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnServer, type ServerProcess } from '../../scripts/server-process.js';
import { ImprintClient } from '../../simulator/client.js';
import { bootDevice } from '../../simulator/device.js';
import type { Protocol } from '../../simulator/protocols.js';
import { imprint } from '../helpers/cli.js';
import { call } from '../helpers/https.js';
import { tempDir } from '../helpers/openssl.js';

/** pkijs and asn1js, and the packages only they use. */
const PKIJS = /\/node_modules\/(pkijs|asn1js|pvtsutils|pvutils|bytestreamjs)\//;

/** What only serving (or a command that opens the data directory) needs. */
const HEAVY = /\/node_modules\/(typebox|ajv|pkijs|asn1js|fastify|better-sqlite3|pg)\/|\/dist\/src\/(instance|server|store\/open-store)\.js$/;

const dir = tempDir();
const log = join(dir, 'modules.log');
const hooks = join(dir, 'hooks.mjs');
const register = join(dir, 'register.mjs');
writeFileSync(hooks, ["import { appendFileSync } from 'node:fs';", 'export async function load(url, context, next) {', '  appendFileSync(process.env.MODULE_LOG, `${process.pid} ${url}\\n`);', '  return next(url, context);', '}'].join('\n'));
writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
const hooked = (name: string) => ({ NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${pathToFileURL(register).href}`, MODULE_LOG: `${log}.${name}` });

/** The modules each process loaded, by pid. */
function loaded(name: string): Map<number, string[]> {
  const byPid = new Map<number, string[]>();
  for (const line of readFileSync(`${log}.${name}`, 'utf8').trim().split('\n')) {
    const [pid, url] = line.split(' ') as [string, string];
    byPid.set(Number(pid), [...(byPid.get(Number(pid)) ?? []), url]);
  }
  return byPid;
}

const onlyProcess = (name: string): string[] => {
  const byPid = loaded(name);
  expect(byPid.size).toBe(1);
  return [...byPid.values()][0]!;
};

describe('what a command loads', () => {
  it('--version, help and a configuration error load neither the schema libraries nor pkijs, the store or the server', async () => {
    const runs = {
      version: ['--version'],
      help: ['tokens', 'create', '--help'],
      invalid: ['config', 'show', '--port', '70000'],
      show: ['config', 'show', '--workers', '3', '--hostname', 'a.example', '--rate-limit', 'off'],
    };
    for (const [name, args] of Object.entries(runs)) {
      const run = await imprint(args, hooked(name));
      expect(run.code, run.stderr).toBe(name === 'invalid' ? 2 : 0);
      const modules = onlyProcess(name);
      expect(modules.some((url) => url.endsWith('/dist/src/cli/main.js'))).toBe(true);
      expect(modules.filter((url) => HEAVY.test(url))).toEqual([]);
    }
    expect((await imprint(runs.invalid)).stderr).toBe('imprint: --port=70000: expected a port number (0-65535)\n');
  });

  it('a local fleet command loads the store it opens', async () => {
    const data = join(dir, 'fleet');
    expect((await imprint(['init', '--data', data])).code).toBe(0);
    const run = await imprint(['tokens', 'list', '--data', data], hooked('fleet'));
    expect(run.code, run.stderr).toBe(0);
    expect(onlyProcess('fleet').some((url) => url.includes('/node_modules/better-sqlite3/'))).toBe(true);
  });

  describe('imprint serve --workers 2', () => {
    let server: ServerProcess;
    const data = join(dir, 'served');
    beforeAll(async () => {
      expect((await imprint(['init', '--data', data])).code).toBe(0);
      server = await spawnServer(data, ['--workers', '2'], hooked('serve'));
    });
    afterAll(async () => {
      if (server?.child.exitCode === null) await server.killGroup('SIGKILL');
    });

    it('the primary, which forks, relays and checkpoints, loads neither the schema libraries, pkijs, the store, the server nor prom-client; the workers do', () => {
      const byPid = loaded('serve');
      const primary = byPid.get(server.child.pid!)!;
      expect(primary.some((url) => url.endsWith('/dist/src/serve.js'))).toBe(true);
      // better-sqlite3 alone, for the WAL's checkpoints (src/store/wal-checkpoints.ts).
      const checkpoints = /\/node_modules\/better-sqlite3\/|\/dist\/src\/store\/wal-checkpoints\.js$/;
      expect(primary.filter((url) => (HEAVY.test(url) && !checkpoints.test(url)) || url.includes('/node_modules/prom-client/'))).toEqual([]);
      expect(primary.some((url) => url.endsWith('/dist/src/store/wal-checkpoints.js'))).toBe(true);
      const workers = [...byPid.keys()].filter((pid) => pid !== server.child.pid);
      expect(workers).toHaveLength(2);
      for (const worker of workers) expect(byPid.get(worker)!.some((url) => url.includes('/node_modules/fastify/'))).toBe(true);
      // The routes' schemas are plain JSON Schema (src/http/json-schema.ts): TypeBox is types only.
      for (const worker of workers) expect(byPid.get(worker)!.filter((url) => url.includes('/node_modules/typebox/'))).toEqual([]);
    });

    it('the workers load pkijs and asn1js on the first SCEP message, not before; a first burst of SCEP and EST enrollments all succeed', async () => {
      const workers = () => [...loaded('serve')].filter(([pid]) => pid !== server.child.pid);
      const withPkijs = () => workers().filter(([, modules]) => modules.some((url) => PKIJS.test(url))).length;
      // Each call is a new connection, spread over the workers.
      for (const path of ['/.well-known/est/cacerts', '/.well-known/est/csrattrs', '/scep?operation=GetCACaps', '/scep?operation=GetCACert']) {
        for (let i = 0; i < 2; i++) expect((await call(`${server.url}${path}`, { ca: server.rootPem })).status, path).toBe(200);
      }
      expect(withPkijs()).toBe(0);

      // A message that cannot be read is the same 400 whether or not pkijs is loaded yet.
      const garbage = await call(`${server.url}/scep?operation=PKIOperation`, { ca: server.rootPem, body: Buffer.from('not a pkiMessage'), headers: { 'content-type': 'application/x-pki-message' } });
      expect(garbage).toMatchObject({ status: 400, body: { error: 'bad_request' } });
      expect(withPkijs()).toBe(1);

      const minted = await imprint(['tokens', 'create', '--count', '8', '--data', data]);
      expect(minted.code, minted.stderr).toBe(0);
      const tokens = minted.stdout.trim().split('\n');
      const client = new ImprintClient(server.url, server.rootPem);
      const protocols: Protocol[] = ['scep', 'scep', 'scep', 'scep', 'scep', 'scep', 'est', 'est'];
      const booted = await Promise.all(
        protocols.map((protocol, i) => bootDevice(client, { stateDir: join(dir, `burst-${i}`), deviceId: `burst-${protocol}-${i}`, token: tokens[i], protocol })),
      );
      expect(booted.map((report) => [report.action, report.device.status])).toEqual(protocols.map(() => ['enrolled', 'active']));
      expect(withPkijs()).toBeGreaterThanOrEqual(1);
    });
  });
});
