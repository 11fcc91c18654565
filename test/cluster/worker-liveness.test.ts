/**
 * WorkerLiveness on a clock of its own: who is killed, when, and who is not (the primary's
 * own pause, a second silent worker within the kill interval, a worker already dead).
 */
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { KILL_INTERVAL_MS, PONG, WorkerLiveness } from '../../src/worker-liveness.js';

class FakeWorker extends EventEmitter {
  pings = 0;
  dead = false;
  constructor(readonly name: string) {
    super();
  }
  send(): boolean {
    this.pings++;
    return true;
  }
  isConnected(): boolean {
    return !this.dead;
  }
  isDead(): boolean {
    return this.dead;
  }
  answer(): void {
    this.emit('message', PONG);
  }
}

const HUNG = 1_000;
let clock = 0;
const killed: string[] = [];
let liveness: WorkerLiveness<FakeWorker> | undefined;

function watching(...workers: FakeWorker[]): WorkerLiveness<FakeWorker> {
  clock = 0;
  killed.length = 0;
  liveness = new WorkerLiveness<FakeWorker>((worker) => killed.push(worker.name), { hungMs: HUNG, now: () => clock });
  for (const worker of workers) liveness.watch(worker);
  return liveness;
}

/** Runs the checks every quarter of the hung time up to `until`, each worker in `answering` answering each ping. */
function runUntil(watch: WorkerLiveness<FakeWorker>, until: number, answering: FakeWorker[]): void {
  while (clock + HUNG / 4 <= until) {
    clock += HUNG / 4;
    watch.check();
    for (const worker of answering) worker.answer();
  }
}

afterEach(() => liveness?.stop());

describe('WorkerLiveness', () => {
  it('kills a worker silent for the hung time, not before, and pings the others meanwhile', () => {
    const [quiet, busy] = [new FakeWorker('quiet'), new FakeWorker('busy')];
    const watch = watching(quiet, busy);
    runUntil(watch, HUNG - HUNG / 4, [busy]);
    expect(killed).toEqual([]);
    expect(quiet.pings).toBeGreaterThan(0);
    runUntil(watch, 3 * HUNG, [busy]);
    expect(killed).toEqual(['quiet']);
  });

  it('does not count its own late check as the workers\' silence: the count starts again', () => {
    const worker = new FakeWorker('w');
    const watch = watching(worker);
    clock = 10 * HUNG; // the primary was stopped, or the machine suspended
    watch.check();
    expect(killed).toEqual([]);
    runUntil(watch, clock + HUNG / 2, [worker]);
    expect(killed).toEqual([]);
  });

  it('kills at most one worker per kill interval: a job that outlasts the hung time is not killed in a loop', () => {
    const [first, second] = [new FakeWorker('first'), new FakeWorker('second')];
    const watch = watching(first, second);
    runUntil(watch, 2 * HUNG, []);
    expect(killed).toEqual(['first']);
    runUntil(watch, KILL_INTERVAL_MS - HUNG, []);
    expect(killed).toEqual(['first']);
    runUntil(watch, KILL_INTERVAL_MS + HUNG, []);
    expect(killed).toEqual(['first', 'second']);
  });

  it('watches no worker that is dead already, and forgets one that exits', () => {
    const [gone, exiting] = [new FakeWorker('gone'), new FakeWorker('exiting')];
    gone.dead = true;
    const watch = watching(gone, exiting);
    exiting.dead = true;
    exiting.emit('exit');
    runUntil(watch, 3 * HUNG, []);
    expect(killed).toEqual([]);
  });
});
