/**
 * A PostgreSQL server of our own, from Debian's binaries: a fresh cluster in a temp
 * directory, TCP on 127.0.0.1 (an ephemeral port) and a unix socket in that directory, trust
 * authentication on loopback only, fsync on (durability is what the tests check and what the
 * benchmark pays for). One code path for the test run's shared server (the globalSetup), the
 * private servers of tests that restart or kill PostgreSQL under load, and the benchmark's.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where Debian installs each major version's server binaries. */
const DEBIAN_ROOT = '/usr/lib/postgresql';
/** Starting (initdb included) fails clearly after this, leaving nothing behind. */
const START_TIMEOUT_MS = 30_000;
/** A fast shutdown that takes longer than this is finished with SIGKILL. */
const STOP_TIMEOUT_MS = 15_000;

/** A running PostgreSQL server of this process. */
export interface PostgresServer {
  /** The superuser's URL of the `postgres` database over TCP, e.g. postgres://postgres@127.0.0.1:41234/postgres. */
  readonly url: string;
  /** Shuts down (immediately: nothing is kept) and deletes the cluster; idempotent. */
  stop(): Promise<void>;
  /** Shuts down (fast: open transactions roll back) if running, and starts again on the same data and port; resolves once it accepts connections. */
  restart(): Promise<void>;
  /** Kills the server and every process of it with SIGKILL, as a crash would; it stays down until restart(). */
  kill(): Promise<void>;
  /**
   * CPU seconds (user + system) the server's processes have used since it last started: the
   * postmaster, its running children, and the children that ended (a closed connection's
   * backend, an autovacuum worker), which the postmaster has reaped.
   */
  cpuSeconds(): number;
}

/** Settings given to the postmaster on top of (or instead of) the ones startPostgres picks. */
export interface PostgresOptions {
  readonly settings?: Readonly<Record<string, string>>;
}

/** The newest installed major version's bin directory (initdb, postgres, pg_isready, psql). */
export function postgresBinDir(): string {
  const versions = existsSync(DEBIAN_ROOT)
    ? readdirSync(DEBIAN_ROOT)
        .filter((version) => /^\d+$/.test(version) && ['initdb', 'postgres'].every((tool) => existsSync(join(DEBIAN_ROOT, version, 'bin', tool))))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions[0] === undefined) {
    throw new Error(`PostgreSQL server binaries not found in ${DEBIAN_ROOT}/*/bin: install Debian's postgresql package (the tests start their own server)`);
  }
  return join(DEBIAN_ROOT, versions[0], 'bin');
}

/**
 * The command line that runs `command` as the server's user. initdb and postgres refuse
 * root, so as root they run as `postgres`. setpriv execs in place (runuser would fork and
 * stay between us and the server, so a kill would miss the server), and the parent-death
 * signal kills the server should this process die without stopping it.
 */
function asServerUser(command: string, args: readonly string[]): [string, string[]] {
  const user = process.getuid?.() === 0 ? ['--reuid=postgres', '--regid=postgres', '--init-groups'] : [];
  return ['setpriv', [...user, '--pdeathsig=KILL', '--', command, ...args]];
}

/** A port the kernel just handed out on 127.0.0.1, free when this returns. */
async function ephemeralPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return address.port;
}

/** A fresh, empty directory the server's user owns. */
async function serverDirectory(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'imprint-pg-'));
  if (process.getuid?.() === 0) {
    const id = async (flag: string) => Number((await run('id', [flag, 'postgres'], { encoding: 'utf8' })).stdout.trim());
    try {
      chownSync(dir, await id('-u'), await id('-g'));
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`running as root, the PostgreSQL server runs as the user postgres, which is missing: ${(error as Error).message}`);
    }
  }
  return dir;
}

/** The last lines of the server's log, for an error message. */
function logTail(dir: string): string {
  try {
    return readFileSync(join(dir, 'server.log'), 'utf8').trim().split('\n').slice(-15).join('\n');
  } catch {
    return '(no server log)';
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The fields of /proc/PID/stat after "pid (comm)" (comm may hold spaces and parentheses): state first. */
function procStat(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // ENOENT: gone and reaped
  }
}

/** True while `pid` runs; a zombie waiting to be reaped has already died. */
const isRunning = (pid: number): boolean => !['Z', 'X', undefined].includes(procStat(pid)?.[0]);

/** The running children of a single-threaded process (the postmaster forks from its one thread). */
function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number).filter(isRunning);
  } catch {
    return [];
  }
}

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on every Linux we run on). */
const CLOCK_TICKS = 100;

/** utime + stime (+ cutime + cstime: the reaped children's) of a process, in seconds; 0 once it is gone. */
export function processCpuSeconds(pid: number, withReapedChildren: boolean): number {
  const fields = procStat(pid);
  if (fields === undefined) return 0;
  const ticks = [11, 12, ...(withReapedChildren ? [13, 14] : [])].reduce((sum, field) => sum + Number(fields[field]), 0);
  return ticks / CLOCK_TICKS;
}

/** Starts a PostgreSQL server with a new cluster; throws within ~30 s, leaving no process and no directory, when it cannot. */
export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  const dir = await serverDirectory();
  const data = join(dir, 'data');
  let child: ChildProcess | undefined;
  let exited: Promise<unknown> = Promise.resolve();
  let port = 0;

  /** Runs the postmaster and waits until it accepts connections on our socket. */
  async function launch(deadline: number): Promise<void> {
    const log = openSync(join(dir, 'server.log'), 'a');
    const [command, args] = asServerUser(join(bin, 'postgres'), [
      '-D', data,
      '-c', 'listen_addresses=127.0.0.1',
      '-c', `port=${port}`,
      '-c', `unix_socket_directories=${dir}`,
      // The defaults, said out loud: a commit is on disk before it is acknowledged.
      '-c', 'fsync=on',
      '-c', 'synchronous_commit=on',
      '-c', 'full_page_writes=on',
      // Every test file's pools share one server; several servers may run at once.
      '-c', 'max_connections=300',
      '-c', 'shared_buffers=32MB',
      // Each CREATE DATABASE writes the template into the WAL: keep the directory small.
      '-c', 'max_wal_size=256MB',
      ...Object.entries(options.settings ?? {}).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
    ]);
    const started = spawn(command, args, { cwd: dir, stdio: ['ignore', log, log] });
    closeSync(log);
    child = started;
    let failure: Error | undefined;
    started.on('error', (error) => (failure = error));
    exited = once(started, 'exit').catch(() => undefined);
    for (;;) {
      if (failure) throw new Error(`could not run ${command}: ${failure.message}`);
      if (started.exitCode !== null || started.signalCode !== null) {
        throw new Error(`PostgreSQL exited while starting (${started.exitCode ?? started.signalCode}):\n${logTail(dir)}`);
      }
      // Our own socket answers, so it is our server, whoever else listens anywhere.
      const ready = await run(join(bin, 'pg_isready'), ['-q', '-h', dir, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-t', '1'], { timeout: 5_000 }).then(
        () => true,
        () => false,
      );
      if (ready) return;
      if (Date.now() > deadline) throw new Error(`PostgreSQL did not accept connections within ${START_TIMEOUT_MS / 1000} s:\n${logTail(dir)}`);
      await sleep(50);
    }
  }

  /** SIGKILLs the postmaster and its processes, frozen first so that it forks no new one meanwhile. */
  async function killAll(): Promise<void> {
    const postmaster = child;
    if (postmaster?.pid === undefined || postmaster.exitCode !== null || postmaster.signalCode !== null) return;
    process.kill(postmaster.pid, 'SIGSTOP');
    const processes = [postmaster.pid, ...childPids(postmaster.pid)];
    for (const pid of processes) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // a backend that ended on its own meanwhile
      }
    }
    await exited;
    while (processes.some(isRunning)) await sleep(10);
  }

  /**
   * Shuts down, then SIGKILLs if that hangs. Fast (SIGINT) rolls back open transactions and
   * checkpoints; immediate (SIGQUIT) ends every process without a checkpoint, as recovery
   * after a crash would start.
   */
  async function shutdown(mode: 'fast' | 'immediate'): Promise<void> {
    const postmaster = child;
    if (postmaster === undefined || postmaster.exitCode !== null || postmaster.signalCode !== null) return;
    postmaster.kill(mode === 'fast' ? 'SIGINT' : 'SIGQUIT');
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise((resolve) => (timer = setTimeout(resolve, STOP_TIMEOUT_MS, 'hung')));
    const outcome = await Promise.race([exited, hung]);
    clearTimeout(timer);
    if (outcome === 'hung') await killAll();
  }

  const deadline = Date.now() + START_TIMEOUT_MS;
  try {
    const [initdb, initArgs] = asServerUser(join(bin, 'initdb'), [
      '-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C',
      // Skips only initdb's final flush of a cluster that lives as long as this test run
      // (~0.5 s); the server itself runs with fsync on.
      '--no-sync',
    ]);
    await run(initdb, initArgs, { cwd: dir, timeout: deadline - Date.now(), killSignal: 'SIGKILL' }).catch((error: { stderr?: string; message: string }) => {
      throw new Error(`initdb failed: ${error.stderr?.trim() || error.message}`);
    });
    // Nobody but this machine reaches the server, and it trusts exactly that.
    writeFileSync(join(data, 'pg_hba.conf'), 'local all all trust\nhost all all 127.0.0.1/32 trust\n');
    // The kernel's free port may be taken before the server binds it: take another.
    for (let attempt = 1; ; attempt++) {
      port = await ephemeralPort();
      try {
        await launch(deadline);
        break;
      } catch (error) {
        await killAll();
        if (attempt >= 3 || !/could not (bind|create any TCP)/.test(logTail(dir))) throw error;
      }
    }
  } catch (error) {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  let stopped = false;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stop() {
      if (stopped) return;
      stopped = true;
      // The cluster is deleted next: a shutdown checkpoint would fsync every file of every
      // database the tests made (19 s of a 32 s contract suite run) only to remove them.
      await shutdown('immediate');
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      if (stopped) throw new Error('the PostgreSQL server was stopped for good');
      await shutdown('fast');
      try {
        await launch(Date.now() + START_TIMEOUT_MS);
      } catch (error) {
        await killAll();
        throw error;
      }
    },
    async kill() {
      await killAll();
    },
    cpuSeconds() {
      const postmaster = child?.pid;
      if (postmaster === undefined) return 0;
      return processCpuSeconds(postmaster, true) + childPids(postmaster).reduce((sum, pid) => sum + processCpuSeconds(pid, false), 0);
    },
  };
}
