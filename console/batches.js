// Token batches: mint one (count, lifetime, label, optional device-id list), shown once
// with a CSV download; the batches with their tokens by state; revoke a batch's unused tokens.
import { api, describe } from './api.js';
import { announce, field, h, message, replace, table, time } from './dom.js';

const TTL_UNITS = { hours: 3600, days: 86400 };

export async function batchesPage(view, { session }) {
  const minted = h('div', { id: 'minted' });
  const list = h('div', { id: 'batch-list' });
  view.append(h('h1', {}, 'Token batches'), mintForm(minted, list), minted, h('h2', { id: 'batches-h' }, 'Batches'), list);
  await loadBatches(list, session);
}

function mintForm(minted, list) {
  const count = h('input', { type: 'number', name: 'count', min: '1', max: '10000', value: '10', required: true, inputmode: 'numeric' });
  const ttl = h('input', { type: 'number', name: 'ttl', min: '1', max: '366', value: '7', required: true, inputmode: 'numeric' });
  const unit = h('select', { name: 'unit' }, h('option', { value: 'days' }, 'days'), h('option', { value: 'hours' }, 'hours'));
  const label = h('input', { type: 'text', name: 'label', maxlength: '64', pattern: '[\\x21-\\x7e][\\x20-\\x7e]{0,63}', autocomplete: 'off' });
  const ids = h('input', { type: 'file', name: 'deviceIds', accept: '.txt,.csv,text/plain,text/csv' });
  const form = h(
    'form',
    { class: 'mint', 'aria-labelledby': 'mint-h' },
    h('h2', { id: 'mint-h' }, 'Mint a batch'),
    field('Number of tokens', count, 'Ignored when a device-id list is given: one token per id.'),
    h('div', { class: 'field-row' }, field('Valid for', ttl), field('Unit', unit)),
    field('Label (batch name)', label, 'Printable ASCII, e.g. line-3-2026-11. A lost batch is revoked by its label.'),
    field('Device ids (optional)', ids, 'A text or CSV file, one device id per line (first column): each token is bound to one id.'),
    h('button', { type: 'submit' }, 'Mint tokens'),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { ttlSeconds: Number(ttl.value) * TTL_UNITS[unit.value] };
    if (label.value.trim()) body.label = label.value.trim();
    const file = ids.files?.[0];
    if (file) {
      body.deviceIds = (await file.text())
        .split(/\r?\n/)
        .map((line) => line.split(',')[0].trim())
        .filter((id) => id && id !== 'deviceId' && id !== 'id');
      body.count = body.deviceIds.length;
    } else body.count = Number(count.value);
    replace(minted, message('ok', 'Minting…'));
    try {
      const result = await api('batches', { method: 'POST', body });
      showMinted(minted, result.tokens, body.label);
      form.reset();
      await loadBatches(list, null);
    } catch (error) {
      replace(minted, message('error', `Nothing minted: ${describe(error)}`));
    }
  });
  return form;
}

/** The tokens, once: a CSV download (the CLI's --format csv) and the first rows on screen. */
function showMinted(minted, tokens, label) {
  const csv = ['id,token,deviceId,expiresAt', ...tokens.map((t) => `${t.id},${t.token},${t.deviceId ?? ''},${t.expiresAt}`)].join('\n') + '\n';
  const url = URL.createObjectURL(new Blob([csv], { type: 'text/csv' }));
  const name = `${(label ?? 'tokens').replace(/[^A-Za-z0-9._-]/g, '_')}.csv`;
  const shown = tokens.slice(0, 20);
  replace(
    minted,
    h(
      'section',
      { class: 'once', 'aria-labelledby': 'once-h' },
      h('h2', { id: 'once-h', tabindex: '-1' }, `${tokens.length} token(s) minted`),
      message(
        'warning',
        h('strong', {}, 'Shown this once. '),
        'imprint keeps only a hash of each token: download the CSV now and hand it to the factory over a safe channel. Leaving or reloading this page loses them.',
      ),
      h('p', {}, h('a', { href: url, download: name, class: 'button', id: 'download-csv' }, `Download ${name}`)),
      table(
        tokens.length > shown.length ? `First ${shown.length} of ${tokens.length} tokens` : 'Tokens',
        ['Token id', 'Token', 'Device', 'Expires'],
        shown.map((t) => [t.id, h('span', { class: 'mono wrap' }, t.token), t.deviceId ?? '—', time(t.expiresAt)]),
      ),
    ),
  );
  announce(`${tokens.length} tokens minted. Download the CSV now; they are not shown again.`);
  minted.querySelector('#once-h').focus();
}

async function loadBatches(list, session) {
  let data;
  try {
    data = await api('batches');
  } catch (error) {
    replace(list, message('error', describe(error)));
    return;
  }
  const role = session?.role ?? list.dataset.role;
  if (session) list.dataset.role = session.role;
  const rows = data.items.map((b) => [
    b.label ?? h('em', {}, '(no label)'),
    time(b.lastCreatedAt),
    b.createdBy,
    String(b.total),
    String(b.unused),
    String(b.used),
    String(b.expired),
    String(b.revoked),
    role === 'admin' && b.label !== null && b.unused > 0 ? revokeButton(list, b.label) : '',
  ]);
  replace(list, table('Token batches, newest first', ['Label', 'Minted', 'By', 'Total', 'Unused', 'Used', 'Expired', 'Revoked', 'Actions'], rows, 'No tokens minted yet.'));
}

function revokeButton(list, label) {
  const button = h('button', { type: 'button', class: 'danger small', 'aria-label': `Revoke the unused tokens of ${label}` }, 'Revoke unused');
  button.addEventListener('click', async () => {
    if (!window.confirm(`Revoke every unused token of the batch "${label}"? Devices already enrolled keep working; the revoked tokens can never enroll.`)) return;
    try {
      const result = await api('batches/revoke', { method: 'POST', body: { label } });
      await loadBatches(list, null);
      list.prepend(message('ok', `${result.revoked} unused token(s) of "${label}" revoked.`));
      announce(`${result.revoked} tokens revoked.`);
    } catch (error) {
      list.prepend(message('error', `Not revoked: ${describe(error)}`));
    }
  });
  return button;
}
