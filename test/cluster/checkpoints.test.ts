/**
 * `imprint serve --workers 2` on SQLite: the primary checkpoints the WAL for both workers
 * (a connection of its own to the file), whose commits leave it to the primary; the WAL's
 * pages reach the database file within moments and the WAL stops growing; the checkpoints
 * go on when a worker dies and another takes its place.
 */
import { closeSync, openSync, readdirSync, readlinkSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImprintClient } from '../../simulator/client.js';
import { buildCsr, generateDeviceKey } from '../../simulator/csr.js';
import { imprint } from '../helpers/cli.js';
import { tempDir } from '../helpers/openssl.js';
import { waitForWorkers } from '../helpers/process-tree.js';
import { spawnServer, type ServerProcess } from '../../scripts/server-process.js';

const dataDir = join(tempDir(), 'data');
const database = join(dataDir, 'imprint.db');
let server: ServerProcess;
let startedAt = 0;
let enrolled = 0;

beforeAll(async () => {
  server = await spawnServer(dataDir, ['--workers', '2', '--rate-limit', 'off']);
  startedAt = Date.now();
});
afterAll(async () => {
  if (server.child.exitCode === null) await server.killGroup('SIGKILL');
});

/** How many connections `pid` holds to the database file (its open descriptors of it). */
function connections(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`) === database;
    } catch {
      return false; // closed while we looked
    }
  }).length;
}

/** Polls `check` until it passes; fails with its last error after 5 s. */
async function eventually<T>(check: () => T): Promise<T> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      return check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** The primary, once it holds its one connection to the database and each worker its one. */
async function checkpointingPrimary(): Promise<number> {
  const { primary, workers } = await waitForWorkers(server.child.pid!, 2);
  return eventually(() => {
    expect([primary, ...workers].map((pid) => connections(pid!))).toEqual([1, 1, 1]);
    return primary!;
  });
}

/** Tokens minted by the CLI, whose own commits may checkpoint: minted before the database file is watched. */
async function mint(count: number): Promise<string[]> {
  return (await imprint(['tokens', 'create', '--count', String(count), '--data', dataDir])).stdout.trim().split('\n');
}

/** Enrolls a new device with each token, 16 at a time. */
async function enroll(tokens: readonly string[]): Promise<void> {
  const client = new ImprintClient(server.url, server.rootPem);
  for (let i = 0; i < tokens.length; i += 16) {
    await Promise.all(
      tokens.slice(i, i + 16).map(async (token) => {
        const key = await generateDeviceKey();
        await client.enroll(token, buildCsr(key, `checkpointed-${enrolled++}`));
      }),
    );
  }
}

/**
 * The WAL's frames and how many of them are in the database file, read from the WAL-index
 * (the -shm file; https://sqlite.org/walformat.html: mxFrame at byte 16 of its header,
 * nBackfill at byte 96, in the machine's byte order).
 */
function walIndex(): { readonly frames: number; readonly checkpointed: number } {
  const header = Buffer.alloc(100);
  const fd = openSync(`${database}-shm`, 'r');
  try {
    readSync(fd, header, 0, 100, 0);
  } finally {
    closeSync(fd);
  }
  return { frames: header.readUInt32LE(16), checkpointed: header.readUInt32LE(96) };
}

/** Resolves once every frame in the WAL is in the database file; fails after 5 s. */
const allCheckpointed = () =>
  eventually(() => {
    const { frames, checkpointed } = walIndex();
    expect(frames).toBeGreaterThan(0);
    expect(checkpointed).toBe(frames);
  });

describe('WAL checkpoints with serve --workers 2', () => {
  it('the primary checkpoints for both workers: the commits reach the database file within moments, and the WAL starts over', async () => {
    await checkpointingPrimary();
    let largest = 0;
    for (let round = 0; round < 5; round++) {
      await enroll(await mint(40));
      // Left to the commits, nothing would be checkpointed before the WAL held 80 MB.
      await allCheckpointed();
      largest = Math.max(largest, walIndex().frames);
    }
    // The next write finds every frame checkpointed and starts the WAL over from its first
    // frame, so the WAL never outgrows what is written between two checkpoints.
    await mint(1);
    expect(walIndex().frames).toBeLessThan(largest);
    expect(walIndex().frames).toBeLessThan(50);
  }, 60_000);

  it('when a worker dies and another takes its place, the checkpoints go on', async () => {
    const { workers } = await waitForWorkers(server.child.pid!, 2);
    // A worker that dies within 5 s of starting stops the server rather than being replaced.
    const lived = Date.now() - startedAt;
    if (lived < 6_000) await new Promise((resolve) => setTimeout(resolve, 6_000 - lived));
    process.kill(workers[0]!, 'SIGKILL');
    await eventually(() => expect(server.stderr()).toMatch(/worker \d+ is listening/));
    await checkpointingPrimary();
    await enroll(await mint(20));
    await allCheckpointed();
  }, 60_000);
});
