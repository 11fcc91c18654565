/** The configuration module: precedence, secrets from files, masking, validation, and serve's public-URL refusal. */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, showConfig } from '../../src/config.js';
import { imprint } from '../helpers/cli.js';
import { tempDir } from '../helpers/openssl.js';

const dir = tempDir();
const configFile = (content: unknown, name = 'imprint.json') => {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
};
const shown = (config: ReturnType<typeof loadConfig>, key: string) => showConfig(config).find((row) => row.key === key)!;

describe('loadConfig precedence: flag > env > file > default', () => {
  const file = configFile({ port: 7000, host: '10.0.0.1', workers: 3, logLevel: 'warn' });

  it.each([
    { name: 'default', flags: {}, env: {}, configFile: undefined, port: 8443, source: 'default' },
    { name: 'file', flags: {}, env: {}, configFile: file, port: 7000, source: 'file' },
    { name: 'env over file', flags: {}, env: { IMPRINT_PORT: '7500' }, configFile: file, port: 7500, source: 'env' },
    { name: 'flag over env', flags: { port: '7600' }, env: { IMPRINT_PORT: '7500' }, configFile: file, port: 7600, source: 'flag' },
    { name: 'IMPRINT_CONFIG names the file', flags: {}, env: { IMPRINT_CONFIG: file }, configFile: undefined, port: 7000, source: 'file' },
  ])('$name', ({ flags, env, configFile, port, source }) => {
    const config = loadConfig({ flags, env, configFile });
    expect(config.port).toBe(port);
    expect(shown(config, 'port').source).toBe(source);
  });

  it('each setting resolves on its own', () => {
    const config = loadConfig({ flags: { host: '127.0.0.2' }, env: { IMPRINT_WORKERS: '2' }, configFile: file });
    expect([config.host, config.workers, config.logLevel, config.port]).toEqual(['127.0.0.2', 2, 'warn', 7000]);
  });

  it('limits and renewal policy come through it, with the rate-limit switch', () => {
    const config = loadConfig({ flags: { 'renew-overlap': '2h' }, env: { IMPRINT_ENROLL_PER_MINUTE: '5', IMPRINT_RATE_LIMIT: 'off' }, configFile: configFile({ headersTimeoutMs: 2000 }, 'l.json') });
    expect(config.limits).toMatchObject({ enrollPerMinute: null, headersTimeoutMs: 2000 });
    expect(config.renewal.overlapMs).toBe(2 * 3_600_000);
    expect(loadConfig({ env: { IMPRINT_ENROLL_PER_MINUTE: '5' } }).limits.enrollPerMinute).toBe(5);
  });

  it('lists come from repeated flags, comma-separated variables or arrays', () => {
    expect(loadConfig({ flags: { hostname: ['a.example', 'b.example'] } }).init.hostnames).toEqual(['a.example', 'b.example']);
    expect(loadConfig({ env: { IMPRINT_HOSTNAME: 'a.example, b.example' } }).init.hostnames).toEqual(['a.example', 'b.example']);
    expect(loadConfig({ configFile: configFile({ hostname: ['c.example'] }, 'h.json') }).init.hostnames).toEqual(['c.example']);
  });
});

describe('secrets', () => {
  it('_FILE gives the file content less its trailing newline, and show masks it', () => {
    const secret = join(dir, 'ca-pass');
    writeFileSync(secret, 'correct horse\n');
    const config = loadConfig({ env: { IMPRINT_CA_PASSPHRASE_FILE: secret, IMPRINT_P12_PASSPHRASE: 'p12-secret' } });
    expect(config.caPassphrase).toBe('correct horse');
    expect(config.p12Passphrase).toBe('p12-secret');
    expect(shown(config, 'caPassphrase')).toMatchObject({ value: '********', source: 'env', origin: 'IMPRINT_CA_PASSPHRASE_FILE' });
    expect(JSON.stringify(showConfig(config))).not.toMatch(/correct horse|p12-secret/);
  });

  it.each([
    { name: 'both set', env: { IMPRINT_CA_PASSPHRASE: 'x', IMPRINT_CA_PASSPHRASE_FILE: '/etc/hostname' }, message: /not both/ },
    { name: 'missing file', env: { IMPRINT_CA_PASSPHRASE_FILE: '/nonexistent/pass' }, message: /IMPRINT_CA_PASSPHRASE_FILE: cannot read \/nonexistent\/pass \(ENOENT\)/ },
  ])('$name is refused', ({ env, message }) => {
    expect(() => loadConfig({ env })).toThrow(message);
  });

  it('the database URL comes from the flag, the variable or its _FILE; show masks only its password', () => {
    const url = 'postgres://imprint:s3cret-pw@db.internal:5432/imprint';
    const secret = join(dir, 'db-url');
    writeFileSync(secret, `${url}\n`);
    for (const config of [loadConfig({ env: {}, flags: { database: url } }), loadConfig({ env: { IMPRINT_DATABASE_URL: url } }), loadConfig({ env: { IMPRINT_DATABASE_URL_FILE: secret } })]) {
      expect(config.database).toBe(url);
      expect(shown(config, 'database').value).toBe('postgres://imprint:********@db.internal:5432/imprint');
      expect(JSON.stringify(showConfig(config))).not.toContain('s3cret-pw');
    }
    expect(loadConfig({ env: {} }).database).toBeUndefined();
    expect(shown(loadConfig({ env: {}, flags: { data: '/srv/imprint' } }), 'database')).toMatchObject({ value: 'SQLite /srv/imprint/imprint.db', source: 'default' });
  });

  it.each([
    ['postgres://imp@127.0.0.1:55432/fleet?password=hunter2secret', 'postgres://imp@127.0.0.1:55432/fleet'],
    ['postgres://imp:hunt@er2secret@db:5432/fleet', 'postgres://imp:********@db:5432/fleet'],
    ['postgres://imp:pw@db/fleet?sslmode=verify-full&sslpassword=hunter2secret&sslkey=/etc/k', 'postgres://imp:********@db/fleet'],
  ])('show never prints a password however the URL carries it: %s', (url, printed) => {
    const config = loadConfig({ env: { IMPRINT_DATABASE_URL: url } });
    expect(shown(config, 'database').value).toBe(printed);
    expect(JSON.stringify(showConfig(config))).not.toMatch(/hunter2secret|er2secret|hunt/);
  });

  it('a database URL that is not PostgreSQL is refused without echoing it', () => {
    for (const database of ['mysql://root:hunter2@db/imprint', 'postgres://root:hunter2 @db/x']) {
      const attempt = () => loadConfig({ env: {}, flags: { database } });
      expect(attempt).toThrow(/^--database: expected a postgres:\/\/user:password@host:port\/database URL$/);
    }
  });

  it('an invalid secret is refused without echoing it', () => {
    try {
      loadConfig({ configFile: configFile({ caPassphrase: 42 }, 's.json') });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).not.toContain('42');
    }
  });
});

describe('validation', () => {
  it.each([
    { name: 'env/port', input: { env: { IMPRINT_PORT: '99999' } }, message: /^IMPRINT_PORT=99999: expected a port number/ },
    { name: 'flag/workers', input: { flags: { workers: 'many' } }, message: /^--workers=many: expected a number of processes/ },
    { name: 'env/rate-limit', input: { env: { IMPRINT_RATE_LIMIT: 'maybe' } }, message: /IMPRINT_RATE_LIMIT=maybe: expected "on" or "off"/ },
    { name: 'env/log-level', input: { env: { IMPRINT_LOG_LEVEL: 'loud' } }, message: /IMPRINT_LOG_LEVEL=loud: expected fatal, error/ },
    { name: 'env/limit', input: { env: { IMPRINT_CONNECTIONS_PER_SOURCE: '0' } }, message: /IMPRINT_CONNECTIONS_PER_SOURCE=0: expected a positive whole number/ },
    { name: 'file/type', input: { configFile: configFile({ port: '8443' }, 't.json') }, message: /t\.json: port="8443": expected a port number/ },
    { name: 'file/fraction', input: { configFile: configFile({ port: 8443.5 }, 'f.json') }, message: /f\.json: port=8443\.5: expected a port number/ },
    { name: 'file/list-item', input: { configFile: configFile({ hostname: ['ok.example', 'bad name'] }, 'i.json') }, message: /i\.json: hostname=\["ok\.example","bad name"\]: expected host names/ },
    { name: 'file/empty-list', input: { configFile: configFile({ hostname: [] }, 'e.json') }, message: /e\.json: hostname=\[\]: expected host names/ },
    { name: 'file/enum-type', input: { configFile: configFile({ rateLimit: true }, 'r.json') }, message: /r\.json: rateLimit=true: expected "on" or "off"/ },
    { name: 'env/too-long', input: { env: { IMPRINT_ORG: 'x'.repeat(65) } }, message: /^IMPRINT_ORG=x{65}: expected an organisation name/ },
    { name: 'file/unknown', input: { configFile: configFile({ prot: 1 }, 'u.json') }, message: /unknown setting "prot" \(did you mean "port"\?\)/ },
    { name: 'file/not-json', input: { configFile: configFile('{port:', 'n.json') }, message: /is not valid JSON/ },
    { name: 'file/array', input: { configFile: configFile([1], 'a.json') }, message: /must hold a JSON object/ },
    { name: 'file/missing', input: { configFile: join(dir, 'none.json') }, message: /cannot read config file .*none\.json \(ENOENT\)/ },
    { name: 'server/no-cert', input: { flags: { server: 'https://127.0.0.1:8443' } }, message: /--server needs an operator certificate/ },
    { name: 'server/http', input: { flags: { server: 'http://127.0.0.1:8443', cert: 'c', key: 'k' } }, message: /--server=http:\/\/127.0.0.1:8443: expected an https:\/\/ URL/ },
  ])('$name', ({ input, message }) => {
    expect(() => loadConfig({ env: {}, ...input })).toThrow(ConfigError);
    expect(() => loadConfig({ env: {}, ...input })).toThrow(message);
  });

  it('lengths count characters, as JSON Schema does, not UTF-16 units', () => {
    const org = '\u{1F98A}'.repeat(64);
    expect(loadConfig({ env: { IMPRINT_ORG: org } }).init.org).toBe(org);
    expect(() => loadConfig({ env: { IMPRINT_ORG: `${org}x` } })).toThrow(/expected an organisation name/);
  });
});

describe('imprint config show', () => {
  it('prints every setting with its value and where it came from', async () => {
    const file = configFile({ port: 7000, org: 'Acme' }, 'show.json');
    const secret = join(dir, 'p12');
    writeFileSync(secret, 'hunter2\n');
    const result = await imprint(['config', 'show', '--config', file, '--host', '127.0.0.3'], { IMPRINT_WORKERS: '2', IMPRINT_P12_PASSPHRASE_FILE: secret });
    expect(result.code, result.stderr).toBe(0);
    const line = (key: string) => result.stdout.split('\n').find((each) => each.startsWith(`${key} `)) ?? '';
    expect(line('port')).toMatch(/^port\s+7000\s+file .*show\.json\s+IMPRINT_PORT$/);
    expect(line('host')).toMatch(/^host\s+127\.0\.0\.3\s+flag --host\s+IMPRINT_HOST$/);
    expect(line('workers')).toMatch(/^workers\s+2\s+env IMPRINT_WORKERS/);
    expect(line('p12Passphrase')).toMatch(/\*{8}\s+env IMPRINT_P12_PASSPHRASE_FILE/);
    expect(line('statusPort')).toMatch(/^statusPort\s+-\s+default/);
    expect(result.stdout).not.toContain('hunter2');

    const json = JSON.parse((await imprint(['config', 'show', '--json', '--config', file], { IMPRINT_CA_PASSPHRASE: 'hunter3' })).stdout);
    expect(json.settings.port).toMatchObject({ value: 7000, source: 'file', env: 'IMPRINT_PORT', flag: '--port' });
    expect(json.settings.caPassphrase).toMatchObject({ value: '********', source: 'env', flag: null });
    expect(JSON.stringify(json)).not.toContain('hunter3');
  });

  it.each([
    { name: 'bad variable', args: ['config', 'show'], env: { IMPRINT_PORT: 'eighty' }, message: /^imprint: IMPRINT_PORT=eighty: expected a port number \(0-65535\)\n$/ },
    { name: 'bad flag value', args: ['config', 'show', '--workers', '0'], env: {}, message: /^imprint: --workers=0: expected/ },
    { name: 'bad file', args: ['config', 'show', '--config', join(dir, 'none.json')], env: {}, message: /^imprint: cannot read config file/ },
  ])('$name: exit 2 with one line', async ({ args, env, message }) => {
    const result = await imprint(args, env);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
  });
});

describe('serve refuses a loopback public URL on a non-loopback listener', () => {
  it('before initialising anything, with one line and exit 2', async () => {
    const dataDir = join(tempDir(), 'data');
    const result = await imprint(['serve', '--data', dataDir, '--host', '0.0.0.0', '--port', '0', '--workers', '1']);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/refusing to initialise .* would point relying parties at localhost while serving on 0\.0\.0\.0; .*--public-url/);
    expect(existsSync(dataDir)).toBe(false);
  });

  it('the same from the environment and a file', async () => {
    const dataDir = join(tempDir(), 'data');
    const result = await imprint(['serve', '--config', configFile({ host: '::', hostname: ['localhost'] }, 'serve.json')], { IMPRINT_DATA: dataDir, IMPRINT_WORKERS: '1' });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/refusing to initialise/);
  });

  it('an explicit --public-url initialises', async () => {
    const dataDir = join(tempDir(), 'data');
    const result = await imprint(['init', '--data', dataDir, '--public-url', 'https://enroll.example.com:8443', '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ publicUrl: 'https://enroll.example.com:8443' });
  });
});
