/**
 * `npm run demo`: the first-boot story in one command, on a temporary data directory.
 * A server starts, a factory mints three tokens, three simulated devices enroll and
 * reconnect over mutual TLS, and a token presented a second time is refused.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImprintClient, ServerRefusedError } from '../simulator/client.js';
import { bootDevice } from '../simulator/device.js';
import { buildCsr, generateDeviceKey } from '../simulator/csr.js';
import { caPaths } from '../src/ca/ca-directory.js';
import { startServer } from '../src/server.js';

const say = (text: string) => process.stdout.write(`${text}\n`);

async function demo(): Promise<void> {
  const workDir = mkdtempSync(join(tmpdir(), 'imprint-demo-'));
  const dataDir = join(workDir, 'data');
  const server = await startServer({ dataDir, host: '127.0.0.1', port: 0 });
  try {
    say(`1. imprint is serving on ${server.url} with a fresh CA in ${dataDir}`);
    const { tokens } = await server.instance.tokens.mint({ count: 3, ttlSeconds: 3600, label: 'demo-line' }, { actor: 'cli:demo', role: 'admin' });
    say(`2. the factory minted ${tokens.length} one-time tokens (label demo-line): ${tokens.map((t) => t.id).join(', ')}`);

    const client = new ImprintClient(server.url, readFileSync(caPaths(dataDir).root, 'utf8'));
    for (const [i, token] of tokens.entries()) {
      const deviceId = `demo-sensor-${i + 1}`;
      const stateDir = join(workDir, deviceId);
      const first = await bootDevice(client, { stateDir, deviceId, token: token.token });
      const again = await bootDevice(client, { stateDir, deviceId, token: undefined });
      say(`3.${i + 1} ${deviceId} ${first.action} (serial ${first.device.serial}) and ${again.action} over mutual TLS as ${again.device.deviceId}`);
    }

    try {
      await client.enroll(tokens[0]!.token, buildCsr(await generateDeviceKey(), 'demo-intruder'));
      throw new Error('a used token was accepted a second time');
    } catch (error) {
      if (!(error instanceof ServerRefusedError) || error.code !== 'token_used') throw error;
      say(`4. a cloned device presenting ${tokens[0]!.id} again was refused: ${error.status} ${error.code}`);
    }
    say('demo complete');
  } finally {
    await server.close();
    rmSync(workDir, { recursive: true, force: true });
  }
}

demo().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${(error as Error).message}\n`);
  process.exitCode = 1;
});
