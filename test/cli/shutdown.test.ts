/**
 * Graceful shutdown of `imprint serve`: SIGTERM stops accepting, lets the request in flight
 * finish and closes the database cleanly; a second signal exits at once.
 */
import { existsSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { buildCsr, generateDeviceKey } from '../../simulator/csr.js';
import { imprint } from '../helpers/cli.js';
import { query } from '../helpers/database.js';
import { tempDir } from '../helpers/openssl.js';
import { spawnServer, type ServerProcess } from '../../scripts/server-process.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An enroll request whose body is sent in two halves, so it is in flight for as long as we like. */
async function startSlowEnroll(server: ServerProcess, dataDir: string) {
  const token = (await imprint(['tokens', 'create', '--data', dataDir])).stdout.trim();
  const body = JSON.stringify({ csr: buildCsr(await generateDeviceKey(), 'graceful-001') });
  const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port: server.port, ca: server.rootPem, servername: 'localhost' });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  let response = '';
  socket.on('data', (chunk: Buffer) => (response += chunk.toString()));
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(
    `POST /v1/enroll HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`,
  );
  const half = Math.floor(body.length / 2);
  socket.write(body.slice(0, half));
  await sleep(200); // the server has the headers and half the body: the request is in flight
  return {
    finish: () => socket.write(body.slice(half)),
    response: async () => {
      await ended;
      return response;
    },
    socket,
  };
}

const refusesConnections = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });

describe('imprint serve shutdown', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('%s: stops accepting, finishes the request in flight, closes the database, exits 0', async (signal) => {
    const dataDir = join(tempDir(), 'data');
    const server = await spawnServer(dataDir);
    const request = await startSlowEnroll(server, dataDir);

    server.child.kill(signal);
    await sleep(300);
    expect(await refusesConnections(server.port)).toBe(true);
    request.finish();

    expect(await request.response()).toMatch(/^HTTP\/1\.1 201 /);
    expect(await server.exited).toBe(0);
    // The last connection closed checkpoints and removes the WAL: a clean close.
    expect(existsSync(join(dataDir, 'imprint.db-wal'))).toBe(false);
    expect(query(dataDir, 'SELECT id FROM devices')).toEqual([{ id: 'graceful-001' }]);
    expect((await imprint(['audit', 'verify', '--data', dataDir])).code).toBe(0);
  });

  it('a second signal exits at once, without waiting for the request in flight', async () => {
    const dataDir = join(tempDir(), 'data');
    const server = await spawnServer(dataDir);
    const request = await startSlowEnroll(server, dataDir);

    server.child.kill('SIGTERM');
    await sleep(300);
    expect(server.child.exitCode).toBeNull(); // still waiting for the request
    server.child.kill('SIGINT');
    const code = await Promise.race([server.exited, sleep(3000).then(() => 'still running')]);
    expect(code).toBe(1);
    request.socket.destroy();
  });
});
