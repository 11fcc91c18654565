/** Runs in a worker thread of a serving process: the checkpoints of wal-checkpoints.ts, until told to stop. */
import { parentPort, workerData } from 'node:worker_threads';
import { checkpointEvery } from './wal-checkpoints.js';

const { path, intervalMs } = workerData as { path: string; intervalMs: number };
const stop = checkpointEvery(path, intervalMs);

parentPort?.on('message', (message) => {
  if (message !== 'stop') return;
  stop();
  process.exit(0);
});
