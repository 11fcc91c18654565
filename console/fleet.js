// Fleet: the devices, newest enrollment or soonest expiry first, searched by id and
// filtered by status, a page at a time (keyset cursors), with the fleet's counts on top.
import { api, describe } from './api.js';
import { badge, field, h, message, replace, table, time } from './dom.js';

/** Filters and the cursors of the pages before this one survive navigating to a device and back. */
const state = { q: '', status: '', sort: 'enrolled', cursors: [undefined] };

export async function fleetPage(view) {
  const counts = h('div', { class: 'counts', 'aria-live': 'polite' }, h('p', {}, 'Counting…'));
  const results = h('div', { id: 'fleet-results' });
  const search = h('input', { type: 'search', name: 'q', value: state.q, maxlength: '64', autocomplete: 'off', spellcheck: 'false' });
  const status = h(
    'select',
    { name: 'status' },
    h('option', { value: '' }, 'Any'),
    h('option', { value: 'active' }, 'Active'),
    h('option', { value: 'revoked' }, 'Revoked'),
  );
  status.value = state.status;
  const sort = h(
    'select',
    { name: 'sort' },
    h('option', { value: 'enrolled' }, 'Newest enrollment first'),
    h('option', { value: 'expiry' }, 'Soonest expiry first'),
  );
  sort.value = state.sort;
  const form = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Find devices' },
    field('Device id contains', search),
    field('Status', status),
    field('Sort', sort),
    h('button', { type: 'submit' }, 'Show devices'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    Object.assign(state, { q: search.value.trim(), status: status.value, sort: sort.value, cursors: [undefined] });
    load(results);
  });
  view.append(h('h1', {}, 'Fleet'), counts, form, results);
  api('fleet-counts')
    .then((c) =>
      replace(
        counts,
        h(
          'dl',
          { class: 'count-list' },
          h('div', {}, h('dt', {}, 'Active'), h('dd', { id: 'count-active' }, c.active.toLocaleString())),
          h('div', {}, h('dt', {}, 'Revoked'), h('dd', { id: 'count-revoked' }, c.revoked.toLocaleString())),
          h('div', {}, h('dt', {}, `Expiring within ${c.windowDays} days`), h('dd', { id: 'count-expiring' }, c.expiringSoon.toLocaleString())),
        ),
      ),
    )
    .catch((error) => replace(counts, message('error', describe(error))));
  await load(results);
}

async function load(results) {
  const page = state.cursors.length - 1;
  let data;
  try {
    data = await api('devices', { query: { q: state.q, status: state.status, sort: state.sort, limit: '50', cursor: state.cursors[page] } });
  } catch (error) {
    replace(results, message('error', describe(error)));
    return;
  }
  const rows = data.items.map((device) => [
    h('a', { href: `#/device/${encodeURIComponent(device.id)}` }, device.id),
    badge(device.status),
    time(device.enrolledAt),
    time(device.currentNotAfter),
  ]);
  const previous = h('button', { type: 'button', disabled: page === 0 }, 'Previous page');
  previous.addEventListener('click', () => {
    state.cursors.pop();
    load(results).then(() => results.querySelector('table')?.focus());
  });
  const next = h('button', { type: 'button', disabled: !data.nextCursor }, 'Next page');
  next.addEventListener('click', () => {
    state.cursors.push(data.nextCursor);
    load(results);
  });
  replace(
    results,
    table(`Devices, page ${page + 1}`, ['Device', 'Status', 'Enrolled', 'Certificate expires'], rows, 'No device matches.'),
    h('div', { class: 'pager' }, previous, next),
  );
}
