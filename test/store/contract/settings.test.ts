/** Store contract, settings: what init chose is read back as written, and overwritten by key. */
import { describe, expect, it } from 'vitest';
import { useStores } from './harness.js';
import { STORES } from './stores.js';

describe.each(STORES)('$name store: settings', (backend) => {
  const stores = useStores(backend);

  it('round-trips settings and overwrites them by key', async () => {
    const store = await stores.fresh();
    const before = await store.getSettings();
    const written = {
      public_url: 'https://enroll.example.com:8443',
      trust_domain: 'example.com',
      device_id_pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$',
      organization: "Müller & Söhne 'GmbH' \u{1F4E1}",
      empty: '',
    };
    await store.putSettings(written);
    expect(await store.getSettings()).toEqual({ ...before, ...written });
    await store.putSettings({ trust_domain: 'example.org' });
    expect(await store.getSettings()).toEqual({ ...before, ...written, trust_domain: 'example.org' });
    await store.putSettings({});
    expect(await store.getSettings()).toEqual({ ...before, ...written, trust_domain: 'example.org' });
  });

  it('writes unless a key is present, decided once among concurrent writers', async () => {
    const store = await stores.fresh();
    const attempts = await Promise.all(
      Array.from({ length: 6 }, (_, i) => store.putSettings({ public_url: `https://enroll-${i}.example.com`, trust_domain: `d${i}.example` }, 'public_url')),
    );
    expect(attempts.filter(Boolean)).toHaveLength(1);
    const winner = attempts.indexOf(true);
    expect(await store.getSettings()).toMatchObject({ public_url: `https://enroll-${winner}.example.com`, trust_domain: `d${winner}.example` });
    expect(await store.putSettings({ public_url: 'https://late.example.com' }, 'public_url')).toBe(false);
    expect((await store.getSettings()).public_url).toBe(`https://enroll-${winner}.example.com`);
  });

  it('runs the work alongside only for the writer that wins, and writes nothing when that work fails', async () => {
    const store = await stores.fresh();
    const before = await store.getSettings();
    const failing = store.putSettings({ public_url: 'https://first.example.com', trust_domain: 'first.example' }, 'public_url', () => {
      throw new Error('the CA files could not be written');
    });
    await expect(failing).rejects.toThrow('the CA files could not be written');
    expect(await store.getSettings()).toEqual(before);

    const ran: number[] = [];
    const attempts = await Promise.all(
      Array.from({ length: 4 }, (_, i) => store.putSettings({ public_url: `https://again-${i}.example.com` }, 'public_url', () => ran.push(i))),
    );
    expect(attempts.filter(Boolean)).toHaveLength(1);
    expect(ran).toEqual([attempts.indexOf(true)]);
    expect((await store.getSettings()).public_url).toBe(`https://again-${attempts.indexOf(true)}.example.com`);
  });
});
