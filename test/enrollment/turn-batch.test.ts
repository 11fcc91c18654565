/** Jobs of one event-loop turn run together at its end, each settling on its own. */
import { describe, expect, it } from 'vitest';
import { TurnBatch } from '../../src/enrollment/turn-batch.js';

describe('TurnBatch', () => {
  it('runs the jobs of one turn back to back after its callbacks, in the order asked', async () => {
    const batch = new TurnBatch();
    const trace: string[] = [];
    const first = batch.run(() => {
      trace.push('job 1');
      return 1;
    });
    // An I/O callback of the same turn asks for one more: it joins the same run.
    const second = new Promise<number>((resolve) => {
      process.nextTick(() => {
        trace.push('callback');
        resolve(
          batch.run(() => {
            trace.push('job 2');
            return 2;
          }),
        );
      });
    });
    trace.push('asked');
    await expect(Promise.all([first, second])).resolves.toEqual([1, 2]);
    expect(trace).toEqual(['asked', 'callback', 'job 1', 'job 2']);
  });

  it('rejects only the job that threw, and runs the rest', async () => {
    const batch = new TurnBatch();
    const refused = batch.run(() => {
      throw new Error('refused');
    });
    const kept = batch.run(() => 'kept');
    await expect(refused).rejects.toThrow('refused');
    await expect(kept).resolves.toBe('kept');
  });

  it('runs a job asked for during a run in a later turn, not within that run', async () => {
    const batch = new TurnBatch();
    const trace: string[] = [];
    let later: Promise<void> | undefined;
    await batch.run(() => {
      trace.push('outer');
      later = batch.run(() => {
        trace.push('inner');
      });
    });
    expect(trace).toEqual(['outer']);
    await later;
    expect(trace).toEqual(['outer', 'inner']);
  });
});
