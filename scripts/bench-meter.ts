/**
 * What one measured load cost and what else the machine did meanwhile: the server's CPU per
 * operation (all its processes, from /proc), the load generator's, and from /proc/stat the
 * CPU others used (everything busy minus server and client, in cores), the hypervisor's
 * steal and the load average. On a shared machine these say which figures to trust.
 */
import { loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import { cpuSeconds } from './server-process.js';

/** USER_HZ, as in server-process.ts. */
const CLOCK_TICKS = 100;

/** The machine's CPU time so far, in seconds summed over all cores: busy (user, nice, system), steal and everything. */
function machineSeconds(): { busy: number; steal: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is inside user already)
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
  return { busy: (user + nice + system) / CLOCK_TICKS, steal: steal / CLOCK_TICKS, total: (user + nice + system + idle + iowait + irq + softirq + steal) / CLOCK_TICKS };
}

/** The machine during one load. */
export interface MachineDuring {
  /** Cores' worth of CPU used by neither the server nor the load generator. */
  readonly otherCores: number;
  readonly stealPercent: number;
  /** The 1-minute load average at the end. */
  readonly load1: number;
}

/** A load's cost beside its result. */
export interface Metered {
  /** Server CPU per successful operation, microseconds. */
  readonly cpuUsPerOp: number | null;
  /** The load generator's CPU per successful operation (this process, and wrk when it ran), microseconds. */
  readonly clientUsPerOp: number | null;
  readonly machine: MachineDuring;
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * Runs `load` against the server process `pid` (and its children) and adds what it cost:
 * `succeeded` counts its operations, `externalClientSeconds` the CPU of a load generator
 * outside this process (wrk's).
 */
export async function metered<T>(pid: number, load: () => Promise<T>, succeeded: (result: T) => number, externalClientSeconds: (result: T) => number = () => 0): Promise<T & Metered> {
  const machineBefore = machineSeconds();
  const serverBefore = cpuSeconds(pid);
  const selfBefore = process.cpuUsage();
  const started = performance.now();
  const result = await load();
  const wall = (performance.now() - started) / 1000;
  const self = process.cpuUsage(selfBefore);
  const server = cpuSeconds(pid) - serverBefore;
  const machineAfter = machineSeconds();
  const client = (self.user + self.system) / 1e6 + (externalClientSeconds(result) || 0);
  const all = machineAfter.total - machineBefore.total;
  const count = succeeded(result);
  const perOp = (seconds: number) => (count > 0 ? Math.round((seconds / count) * 1e6) : null);
  return {
    ...result,
    cpuUsPerOp: perOp(server),
    clientUsPerOp: perOp(client),
    machine: {
      otherCores: round(Math.max(0, machineAfter.busy - machineBefore.busy - server - client) / wall, 2),
      stealPercent: all > 0 ? round(((machineAfter.steal - machineBefore.steal) / all) * 100, 1) : 0,
      load1: round(loadavg()[0]!, 2),
    },
  };
}
