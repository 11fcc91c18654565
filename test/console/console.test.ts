/**
 * The operator console in a real browser (Debian's Chromium driven by playwright-core),
 * against a real HTTPS server on loopback, with operator certificates presented by
 * Playwright's clientCertificates. Screenshots of every page go to SCREENSHOTS.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImprintClient } from '../../simulator/client.js';
import { buildCsr, generateDeviceKey } from '../../simulator/csr.js';
import { call } from '../helpers/https.js';
import { enrollDevice, issueOperator, startTestServer, type EnrolledDevice, type TestServer } from '../helpers/server.js';
import { launchBrowser, SCREENSHOTS, type TestBrowser } from './browser.js';

const MARKUP = '<img src=x onerror=window.__xss=1>';

let t: TestServer;
let browser: TestBrowser;
let admin: { cert: string; key: string };
let provisioner: { cert: string; key: string };
const devices: EnrolledDevice[] = [];
const contexts: BrowserContext[] = [];

async function openAs(identity: { cert: string; key: string } | undefined, viewport?: { width: number; height: number }): Promise<Page> {
  const context = await browser.context(t.url, identity, viewport ? { viewport } : {});
  contexts.push(context);
  const page = await context.newPage();
  page.on('pageerror', (error) => console.error('page error:', error.message));
  return page;
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });

beforeAll(async () => {
  t = await startTestServer();
  admin = await issueOperator(t, 'alice', 'admin');
  provisioner = await issueOperator(t, 'line3', 'provisioner');
  for (let i = 1; i <= 5; i++) devices.push(await enrollDevice(t, `cam-000${i}`));
  browser = await launchBrowser(t.rootPath);
}, 60_000);

afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => undefined);
  await browser?.close();
  await t?.destroy();
}, 30_000);

describe('console', () => {
  it('no-certificate: a clear 401 page says a client certificate is needed and how to import it', async () => {
    const page = await openAs(undefined);
    const response = await page.goto(`${t.url}/console`);
    expect(response?.status()).toBe(401);
    await expect(page.locator('h1').textContent()).resolves.toBe('A client certificate is needed');
    expect(await page.locator('main').textContent()).toMatch(/\.p12[\s\S]*Firefox[\s\S]*Keychain Access/);
    await shot(page, 'no-certificate');
  });

  it('headers: a strict CSP with frame-ancestors none on the page, its files and its API', async () => {
    for (const path of ['/console', '/console/assets/app.js', '/console/api/session']) {
      const response = await call(`${t.url}${path}`, { ca: t.rootPem, ...admin, headers: { 'x-imprint-console': '1' } });
      expect(response.status, path).toBe(200);
      const csp = String(response.headers['content-security-policy']);
      expect(csp, path).toContain("frame-ancestors 'none'");
      expect(csp, path).toContain("script-src 'self'");
      expect(csp, path).toContain("style-src 'self'");
      expect(csp, path).not.toContain('unsafe-inline');
      expect(response.headers['x-frame-options'], path).toBe('DENY');
    }
    // Files are listed: nothing else is served, also not by traversal.
    for (const path of ['/console/assets/..%2Fpackage.json', '/console/assets/index.html', '/console/assets/nope.js']) {
      const response = await call(`${t.url}${path}`, { ca: t.rootPem });
      expect(response.status, path).toBe(404);
    }
    // The rest of the API keeps helmet's defaults (no console CSP there).
    const health = await call(`${t.url}/healthz`, { ca: t.rootPem });
    expect(health.headers['content-security-policy']).toBeUndefined();
  });

  it('fleet: find a device, open it, revoke it with a reason, and the server refuses it right after', async () => {
    const page = await openAs(admin);
    await page.goto(`${t.url}/console`);
    await page.waitForURL(/#\/fleet$/);
    await expect(page.locator('#count-active').textContent()).resolves.toBe('5');
    await shot(page, 'fleet');
    const target = devices[2]!;
    // Keyboard only: type into the search field and press Enter.
    await page.getByLabel('Device id contains').fill('0003');
    await page.getByLabel('Device id contains').press('Enter');
    const link = page.getByRole('link', { name: target.id });
    await link.waitFor();
    await expect(page.locator('#fleet-results tbody tr').count()).resolves.toBe(1);
    await link.focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(new RegExp(`#/device/${target.id}$`));
    await expect(page.locator('#current-serial').textContent()).resolves.toBe(target.serial);
    expect(await page.locator('main').textContent()).toContain('EC P-256');
    await shot(page, 'device');

    const client = new ImprintClient(t.url, t.rootPem);
    const identity = { certificatePem: target.cert, keyPem: target.key.privateKeyPem };
    await expect(client.device(identity)).resolves.toMatchObject({ deviceId: target.id, status: 'active' });

    await page.getByLabel('Reason').selectOption('keyCompromise');
    await page.locator('#revoke-button').click();
    const dialog = page.getByRole('dialog');
    await expect(dialog.textContent()).resolves.toContain(target.id);
    await shot(page, 'device-revoke-confirm');
    await dialog.getByRole('button', { name: 'Revoke now' }).click();
    await page.locator('#revoke-result .message-ok', { hasText: 'revoked (keyCompromise)' }).waitFor();
    const shownAt = Date.now();
    await expect(page.locator('#device-status').textContent()).resolves.toContain('revoked');
    await shot(page, 'device-revoked');

    // Refused on the running server within a second of the console saying so.
    let refused: unknown;
    while (!refused && Date.now() - shownAt < 1000) {
      refused = await client.device(identity).then(() => undefined, (error: unknown) => error ?? new Error('refused'));
      if (!refused) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(refused).toBeDefined();
    expect(String((refused as { code?: string }).code ?? refused)).toMatch(/device_revoked|client_cert|ECONNRESET|socket|certificate/i);
    const shown = await t.server.instance.fleet.getDevice(target.id);
    expect(shown).toMatchObject({ status: 'revoked', revocationReason: 'keyCompromise' });
  });

  it('batches: a provisioner sees only token batches, mints one, downloads the CSV once, and a device enrolls with one of its tokens', async () => {
    const page = await openAs(provisioner);
    await page.goto(`${t.url}/console`);
    await page.waitForURL(/#\/batches$/);
    await expect(page.getByRole('link', { name: 'Fleet' }).isVisible()).resolves.toBe(false);
    await expect(page.getByRole('link', { name: 'Audit' }).isVisible()).resolves.toBe(false);
    // Asking for another section by address lands on the batches again, and the API refuses.
    await page.goto(`${t.url}/console#/fleet`);
    await page.waitForURL(/#\/batches$/);
    const status = await page.evaluate(() => fetch('/console/api/devices', { headers: { 'x-imprint-console': '1' } }).then((r) => r.status));
    expect(status).toBe(403);

    await page.getByLabel('Number of tokens').fill('3');
    await page.getByLabel('Valid for').fill('2');
    await page.getByLabel('Label (batch name)').fill(`line-3 ${MARKUP}`);
    await page.getByRole('button', { name: 'Mint tokens' }).click();
    await page.locator('#once-h').waitFor();
    expect(await page.locator('.message-warning').textContent()).toMatch(/Shown this once/);
    await shot(page, 'batch-minted');
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#download-csv').click()]);
    // The browser runs in another process: the download is copied here.
    const saved = join(SCREENSHOTS, download.suggestedFilename());
    await download.saveAs(saved);
    expect(download.suggestedFilename()).toMatch(/\.csv$/);
    const csv = readFileSync(saved, 'utf8').trim().split('\n');
    expect(csv[0]).toBe('id,token,deviceId,expiresAt');
    expect(csv).toHaveLength(4);
    const [, token] = csv[1]!.split(',');
    expect(token).toMatch(/^imp_/);

    // The label with markup is text in the batch list; nothing ran.
    const row = page.locator('#batch-list tbody tr', { hasText: 'line-3' });
    await expect(row.locator('td').first().textContent()).resolves.toBe(`line-3 ${MARKUP}`);
    await expect(row.locator('td').nth(4).textContent()).resolves.toBe('3');
    expect(await page.locator('#batch-list img').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as unknown as { __xss?: number }).__xss)).toBeUndefined();
    // A provisioner may not revoke a batch (the admin API says the same).
    expect(await row.getByRole('button').count()).toBe(0);
    await shot(page, 'batches-provisioner');

    const enrolled = await enrollDevice(t, 'line3-0001', token);
    expect(enrolled.response.status).toBe(201);
    await page.reload();
    await expect(page.locator('#batch-list tbody tr', { hasText: 'line-3' }).locator('td').nth(5).textContent()).resolves.toBe('1');
  });

  it('batches: an admin revokes the unused tokens of a batch', async () => {
    const label = 'line-9';
    const { tokens } = await t.server.instance.tokens.mint({ count: 2, label }, { actor: 'cli:test', role: 'admin' });
    const page = await openAs(admin);
    await page.goto(`${t.url}/console#/batches`);
    const row = page.locator('#batch-list tbody tr', { hasText: label });
    page.once('dialog', (dialog) => void dialog.accept());
    await row.getByRole('button', { name: `Revoke the unused tokens of ${label}` }).click();
    await page.locator('#batch-list .message-ok', { hasText: '2 unused token(s)' }).waitFor();
    await shot(page, 'batches-admin');
    const refused = await call(`${t.url}/v1/enroll`, {
      ca: t.rootPem,
      json: { csr: buildCsr(await generateDeviceKey(), 'line9-0001') },
      headers: { authorization: `Bearer ${tokens[0]!.token}` },
    });
    expect(refused.body.error).toBe('token_revoked');
  });

  it('xss: a device id with markup cannot enroll, and audit strings with markup render as text', async () => {
    const refused = await enrollDevice(t, MARKUP);
    expect(refused.response.status).toBe(400);
    expect(refused.response.body.error).toBe('csr_subject_invalid');

    const page = await openAs(admin);
    await page.goto(`${t.url}/console#/audit`);
    await page.getByLabel('Action').fill('tokens.create');
    await page.getByLabel('Action').press('Enter');
    const detail = page.locator('tbody tr', { hasText: 'line-3' }).first();
    await expect(detail.textContent()).resolves.toContain(MARKUP);
    expect(await page.locator('main img').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as unknown as { __xss?: number }).__xss)).toBeUndefined();
  });

  it('audit: newest first, filtered by device, and the chain verified with its head hash', async () => {
    const page = await openAs(admin);
    await page.goto(`${t.url}/console#/audit`);
    await page.locator('tbody tr').first().waitFor();
    const ids = await page.locator('tbody tr td:first-child time').evaluateAll((nodes) => nodes.map((n) => (n as unknown as { getAttribute(name: string): string }).getAttribute('datetime')));
    expect([...ids].sort().reverse()).toEqual(ids);
    await page.getByLabel('Device id').fill(devices[2]!.id);
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.locator('tbody tr', { hasText: 'devices.revoke' }).waitFor();
    await page.getByRole('button', { name: 'Verify the chain' }).click();
    await page.locator('#verification .message-ok', { hasText: 'Intact' }).waitFor();
    const head = await page.locator('#head-hash').inputValue();
    expect(head).toMatch(/^[0-9a-f]{64}$/);
    const verified = await t.server.instance.audit.verify();
    expect(verified.ok).toBe(true);
    await shot(page, 'audit');
  });

  it('status: CRL number, entries, OCSP counters, version and uptime', async () => {
    const page = await openAs(admin);
    await page.goto(`${t.url}/console#/status`);
    await page.locator('#crl-number').waitFor();
    expect(Number(await page.locator('#crl-number').textContent())).toBeGreaterThan(0);
    expect(await page.locator('#crl-entries').textContent()).toBe('1');
    expect(await page.locator('#version').textContent()).toMatch(/^imprint \d+\.\d+\.\d+/);
    await shot(page, 'status');
  });

  it('phone: the fleet and a device read on a narrow screen', async () => {
    const page = await openAs(admin, { width: 390, height: 844 });
    await page.goto(`${t.url}/console#/fleet`);
    await page.locator('#fleet-results tbody tr').first().waitFor();
    await shot(page, 'fleet-phone');
    await page.goto(`${t.url}/console#/device/${devices[0]!.id}`);
    await page.locator('#current-serial').waitFor();
    const overflow = await page.evaluate(() => {
      const root = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document.documentElement;
      return root.scrollWidth - root.clientWidth;
    });
    expect(overflow).toBeLessThanOrEqual(0);
    await shot(page, 'device-phone');
  });

  it('csrf: a page of another origin cannot make the console revoke a device', async () => {
    const victim = devices[3]!;
    const target = `${t.url}/console/api/devices/${victim.id}/revoke`;
    const attacker: Server = createServer((_request, response) => {
      response.setHeader('content-type', 'text/html');
      response.end(`<!doctype html><title>win a prize</title>
<form id="f" method="POST" action="${target}" enctype="text/plain"><input name='{"reason":"keyCompromise","x":"' value='"}'></form>
<script>
window.results = {};
fetch(${JSON.stringify(target)}, { method: 'POST', credentials: 'include', headers: { 'x-imprint-console': '1', 'content-type': 'application/json' }, body: '{"reason":"keyCompromise"}' })
  .then((r) => { window.results.withHeader = r.status; }, (e) => { window.results.withHeader = 'blocked: ' + e.message; });
fetch(${JSON.stringify(target)}, { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: '{"reason":"keyCompromise"}' })
  .then((r) => { window.results.noCors = r.type; }, (e) => { window.results.noCors = 'blocked: ' + e.message; });
</script>`);
    });
    await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
    try {
      const page = await openAs(admin);
      await page.goto(`http://127.0.0.1:${(attacker.address() as AddressInfo).port}/`);
      await page.waitForFunction(() => {
        const results = (globalThis as unknown as { results: Record<string, unknown> }).results;
        return results.withHeader !== undefined && results.noCors !== undefined;
      });
      const results = await page.evaluate(() => (globalThis as unknown as { results: Record<string, unknown> }).results);
      expect(String(results.withHeader)).toMatch(/^blocked/);
      // The form: the browser navigates to the console's answer, a refusal.
      const [response] = await Promise.all([page.waitForNavigation(), page.evaluate(() => (globalThis as unknown as { document: { forms: { submit(): void }[] } }).document.forms[0]!.submit())]);
      expect(response?.status()).toBe(403);
      expect(await page.textContent('body')).toContain('forbidden');
      const device = await t.server.instance.fleet.getDevice(victim.id);
      expect(device.status).toBe('active');
    } finally {
      await new Promise((resolve) => attacker.close(resolve));
    }
  });
});
