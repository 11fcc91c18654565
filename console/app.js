// The console shell: who is signed in (the client certificate), which sections that role
// may see, and a hash router (#/fleet, #/device/<id>, #/batches, #/audit, #/status).
import { api, describe } from './api.js';
import { h, message, replace } from './dom.js';
import { fleetPage } from './fleet.js';
import { devicePage } from './device.js';
import { batchesPage } from './batches.js';
import { auditPage } from './audit.js';
import { statusPage } from './status.js';

const ROUTES = {
  fleet: { page: fleetPage, admin: true },
  device: { page: devicePage, admin: true },
  batches: { page: batchesPage, admin: false },
  audit: { page: auditPage, admin: true },
  status: { page: statusPage, admin: true },
};

const main = document.getElementById('main');
let session;
/** Bumped on every navigation: a page that finishes loading after the next one started draws nothing. */
let generation = 0;

/** The current route: its name and the rest of the path (decoded). */
function parseHash() {
  const [name = '', ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  return { name, argument: rest.length ? decodeURIComponent(rest.join('/')) : undefined };
}

async function render() {
  const { name, argument } = parseHash();
  const fallback = session.role === 'admin' ? 'fleet' : 'batches';
  const route = ROUTES[name];
  if (!route || (route.admin && session.role !== 'admin')) {
    location.replace(`#/${fallback}`);
    return;
  }
  for (const link of document.querySelectorAll('#nav a')) {
    const current = link.getAttribute('href') === `#/${name === 'device' ? 'fleet' : name}`;
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const mine = ++generation;
  const view = h('div', { class: 'page' });
  try {
    await route.page(view, { session, argument, isCurrent: () => mine === generation });
  } catch (error) {
    view.append(message('error', describe(error)));
  }
  if (mine !== generation) return;
  replace(main, view);
  const heading = main.querySelector('h1');
  document.title = `${heading?.textContent ?? 'Console'} - imprint`;
  // Move focus to the new page so keyboard and screen-reader users start at its top.
  main.focus({ preventScroll: false });
}

async function start() {
  try {
    session = await api('session');
  } catch (error) {
    replace(main, message('error', `The console could not start: ${describe(error)}`));
    return;
  }
  for (const item of document.querySelectorAll('#nav [data-role="admin"]')) item.hidden = session.role !== 'admin';
  replace(document.getElementById('who'), `${session.operator} (${session.role})`);
  window.addEventListener('hashchange', render);
  await render();
}

start();
