/** Help texts, did-you-mean, usage errors (exit 2, one line of ours) and a reader closing the pipe early. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/commands/index.js';
import { SETTINGS } from '../../src/config.js';
import { imprint } from '../helpers/cli.js';
import { tempDir } from '../helpers/openssl.js';

const dataDir = join(tempDir(), 'data');
const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

beforeAll(async () => {
  const init = await imprint(['init', '--data', dataDir]);
  expect(init.code, init.stderr).toBe(0);
});

describe('help', () => {
  it('imprint --help lists every command; --version prints the version', async () => {
    const help = await imprint(['--help']);
    expect(help.code).toBe(0);
    for (const name of Object.keys(COMMANDS)) expect(help.stdout).toMatch(new RegExp(`^  ${name}\\s{2,}\\S`, 'm'));
    expect(help.stdout).toContain(version);
    for (const args of [['--version'], ['-V'], ['version']]) {
      const result = await imprint(args);
      expect(result).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: '' });
    }
    expect(JSON.parse((await imprint(['--version', '--json'])).stdout)).toEqual({ version });
  });

  it('imprint <group> --help lists the group', async () => {
    const result = await imprint(['tokens', '--help']);
    expect(result.code).toBe(0);
    for (const name of ['tokens create', 'tokens list', 'tokens revoke']) expect(result.stdout).toContain(name);
    expect(result.stdout).not.toContain('devices list');
  });

  it('imprint <group> <cmd> --help lists every flag with its default and variable', async () => {
    const result = await imprint(['tokens', 'create', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^usage: imprint tokens create \[options\]/);
    for (const flag of Object.keys(COMMANDS['tokens create']!.options)) expect(result.stdout).toMatch(new RegExp(`^  --${flag}\\b`, 'm'));
    expect(result.stdout).toMatch(/^  --count N\s+.*\(default: 1/m);
    expect(result.stdout).toMatch(/^  --data DIR\s+.*\(default: \.\/data; env: IMPRINT_DATA\)$/m);
    expect(result.stdout).toMatch(/^  --server URL\s+.*\(env: IMPRINT_SERVER\)$/m);
    expect(result.stdout).toMatch(/^  --config FILE\s+.*\(env: IMPRINT_CONFIG\)$/m);
    expect((await imprint(['help', 'tokens', 'create'])).stdout).toBe(result.stdout);
  });

  it('serve --help names every server setting and its variable', async () => {
    const result = await imprint(['serve', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^  --port PORT\s+HTTPS port \(default: 8443; env: IMPRINT_PORT\)$/m);
    for (const variable of ['IMPRINT_HOST', 'IMPRINT_WORKERS', 'IMPRINT_RATE_LIMIT', 'IMPRINT_LOG_LEVEL', 'IMPRINT_RENEW_OVERLAP', 'IMPRINT_ENROLL_PER_MINUTE', 'IMPRINT_KEEP_ALIVE_TIMEOUT_MS', 'IMPRINT_PUBLIC_URL']) {
      expect(result.stdout).toContain(`env: ${variable}`);
    }
  });

  it('every setting has a variable, and every command that prints something takes --json', () => {
    expect(new Set(SETTINGS.map((spec) => spec.env)).size).toBe(SETTINGS.length);
    const withoutJson = Object.entries(COMMANDS).filter(([, command]) => !('json' in command.options)).map(([name]) => name);
    // serve prints logs (JSON lines already) and a banner, not a result.
    expect(withoutJson).toEqual(['serve']);
  });
});

describe('usage errors: exit 2, one line of ours on stderr, nothing on stdout', () => {
  it.each([
    { name: 'command/typo', args: ['tokns', 'create'], message: /^imprint: unknown command "tokns"; did you mean "tokens create"\?/ },
    { name: 'subcommand/typo', args: ['tokens', 'crate'], message: /^imprint: unknown command "tokens crate"; did you mean "tokens create"\?/ },
    { name: 'command/typo-single', args: ['bakup', 'x'], message: /did you mean "backup"\?/ },
    { name: 'command/unknown', args: ['frobnicate'], message: /^imprint: unknown command "frobnicate" \(see imprint --help\)/ },
    { name: 'command/none', args: [], message: /^imprint: no command given/ },
    { name: 'group/alone', args: ['devices'], message: /^imprint: devices needs a command: list, show, revoke/ },
    { name: 'flag/first', args: ['--data', 'x'], message: /^imprint: unknown flag --data: the command comes first/ },
    { name: 'flag/unknown', args: ['devices', 'list', '--colour'], message: /^imprint: unknown flag --colour for devices list/ },
    { name: 'flag/typo', args: ['tokens', 'create', '--lable', 'x'], message: /did you mean --label\?/ },
    { name: 'flag/missing-value', args: ['tokens', 'create', '--count'], message: /^imprint: --count needs a value \(N\)/ },
    { name: 'flag/boolean-value', args: ['devices', 'list', '--json=yes'], message: /^imprint: --json takes no value/ },
    { name: 'argument/missing', args: ['devices', 'show'], message: /^imprint: devices show: missing DEVICE_ID/ },
    { name: 'argument/extra', args: ['certs', 'show', 'a', 'b'], message: /^imprint: certs show: unexpected argument "b"/ },
    { name: 'value/limit', args: ['devices', 'list', '--limit', '0'], message: /^imprint: --limit must be a whole number from 1 to 1000/ },
    { name: 'value/status', args: ['tokens', 'list', '--status', 'lost'], message: /^imprint: --status must be one of unused, used, expired, revoked/ },
    { name: 'value/env', args: ['devices', 'list'], env: { IMPRINT_LIMIT: 'x', IMPRINT_WORKERS: 'lots' }, message: /^imprint: IMPRINT_WORKERS=lots: expected/ },
    { name: 'crl/watch-without-out', args: ['crl', '--watch'], message: /^imprint: --watch needs --out FILE/ },
    { name: 'tokens/revoke-both', args: ['tokens', 'revoke', 'tok_x', '--label', 'l'], message: /^imprint: tokens revoke takes a TOKEN_ID or --label LABEL/ },
  ])('$name', async ({ args, env, message }) => {
    const result = await imprint(args.length ? [...args, ...(args[0]!.startsWith('-') ? [] : ['--data', dataDir])] : [], env);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr.split('\n')).toEqual([expect.stringMatching(message), '']);
    expect(result.stderr).not.toMatch(/ERR_PARSE_ARGS|TypeError|\n\s+at /);
  });
});

describe('a reader that stops early', () => {
  it('ends imprint quietly: no EPIPE, no stack trace', async () => {
    const minted = await imprint(['tokens', 'create', '--data', dataDir, '--count', '1000', '--label', 'pipe']);
    expect(minted.code, minted.stderr).toBe(0);
    // ~110 KB of table: more than a pipe holds, so imprint is still writing when head exits.
    const result = spawnSync('bash', ['-c', `set -o pipefail; node dist/src/cli/main.js tokens list --data '${dataDir}' --limit 1000 | head -1`], {
      cwd: new URL('../..', import.meta.url),
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(result.stdout).toMatch(/^ID\s+STATUS/);
    expect(result.stdout.split('\n')).toHaveLength(2);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});
