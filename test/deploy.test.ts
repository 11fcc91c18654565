/**
 * The systemd unit shipped in deploy/: systemd's own verifier accepts it, and its sandbox
 * keeps the exposure score low. Run against a copy pointing at this checkout and this node.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/openssl.js';

const hasSystemd = spawnSync('systemd-analyze', ['--version']).status === 0;
const unit = readFileSync(new URL('../deploy/imprint.service', import.meta.url), 'utf8');

/** The unit as installed here: this node, this checkout. */
function installedCopy(): string {
  const path = join(tempDir(), 'imprint.service');
  const root = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
  writeFileSync(path, unit.replaceAll('/usr/bin/node', process.execPath).replaceAll('/opt/imprint', root));
  return path;
}

describe.skipIf(!hasSystemd)('deploy/imprint.service', () => {
  it('passes systemd-analyze verify with no complaint', () => {
    const result = spawnSync('systemd-analyze', ['verify', installedCopy()], { encoding: 'utf8' });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr.trim()).toBe('');
  });

  it('is sandboxed: systemd-analyze security scores it below 2.5', () => {
    const result = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', installedCopy()], { encoding: 'utf8' });
    const score = /Overall exposure level for imprint\.service: ([\d.]+)/.exec(result.stdout + result.stderr);
    expect(score, result.stdout + result.stderr).not.toBeNull();
    expect(Number(score![1])).toBeLessThan(2.5);
  });

  it('runs serve with a dynamic user, its state directory and the passphrase as a credential', () => {
    for (const line of ['DynamicUser=yes', 'StateDirectory=imprint', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'Restart=on-failure', 'LoadCredential=ca-passphrase:']) {
      expect(unit).toContain(line);
    }
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/node \/opt\/imprint\/dist\/src\/cli\/main\.js serve$/m);
  });
});

describe('npm pack', () => {
  it('ships what runs and nothing else: the build, the migrations, the console page, the unit, the README', () => {
    const result = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { encoding: 'utf8', cwd: new URL('..', import.meta.url).pathname });
    expect(result.status, result.stderr).toBe(0);
    const files = (JSON.parse(result.stdout) as { files: { path: string }[] }[])[0]!.files.map((file) => file.path);
    for (const path of files) expect(path).toMatch(/^(dist\/src\/|dist\/simulator\/|migrations\/|console\/|deploy\/|README\.md$|package\.json$)/);
    expect(files).toEqual(expect.arrayContaining(['dist/src/cli/main.js', 'migrations/0001_initial.sql', 'console/index.html', 'deploy/imprint.service']));
    expect(files.some((path) => path.startsWith('test/') || path.startsWith('src/') || path.includes('.scratch'))).toBe(false);
  });
});
