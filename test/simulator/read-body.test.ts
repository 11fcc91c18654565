/** readBody against a real loopback server that completes or cuts off its answer. */
import { createServer, get, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBody } from '../../simulator/read-body.js';

let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    res.writeHead(200, { 'content-length': '10' });
    if (req.url === '/whole') return res.end('0123456789');
    // Headers and part of the body, then the connection drops, as when the server is killed.
    res.write('0123');
    setTimeout(() => req.socket.destroy(), 20);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const response = (path: string) => new Promise<IncomingMessage>((resolve, reject) => get(`${base}${path}`, resolve).on('error', reject));

describe('readBody', () => {
  it('resolves with the whole body', async () => {
    expect((await readBody(await response('/whole'))).toString()).toBe('0123456789');
  });

  it('rejects when the connection closes in the middle of the body, where waiting for end would hang', async () => {
    await expect(readBody(await response('/cut'))).rejects.toMatchObject({ code: 'ECONNRESET' });
  });
});
