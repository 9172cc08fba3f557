// The console's shell: the router (pages by the hash), the snapshot poll, the header, the
// language switch and the keys 1–6. Each page is a module that mounts into main#page.

import { api, leavePage } from './api.js';
import { h, setText, typing } from './dom.js';
import { t, lang, setLang, applyStatic } from './i18n.js';
import { zone, int } from './format.js';
import overview from './page-overview.js';
import routing from './page-routing.js';
import sessions from './page-sessions.js';
import requests from './page-requests.js';
import usage from './page-usage.js';
import diagnostics from './page-diagnostics.js';

const PAGES = { overview, routing, sessions, requests, usage, diagnostics };
const ORDER = Object.keys(PAGES);
const main = document.getElementById('page');
const notice = document.getElementById('notice');

let current = null; // { name, param, stops: [], snapHooks: [] }
let snapshot = null;
let snapshotAt = 0;

/** Runs fn now and every ms while mounted; waits while the tab is hidden. */
function poller(fn, ms, owner) {
  let timer = null;
  let stopped = false;
  let running = false;
  let again = false; // asked for while a run was in flight: run once more right after it
  const run = async () => {
    clearTimeout(timer);
    if (stopped) return;
    if (document.hidden) {
      timer = setTimeout(run, 1000);
      return;
    }
    if (running) {
      again = true;
      return;
    }
    running = true;
    again = false;
    try {
      await fn();
      if (owner) clearNotice(owner);
    } catch (e) {
      if (!stopped) showNotice(e, owner);
    } finally {
      running = false;
    }
    if (!stopped) timer = setTimeout(run, again ? 0 : ms);
  };
  run();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    now: run,
  };
}

function showNotice(e, owner) {
  notice.hidden = false;
  notice.dataset.owner = owner || '';
  setText(notice, `${t('fetch_failed')}: ${e.message || e}`);
}
function clearNotice(owner) {
  if (!notice.hidden && notice.dataset.owner === owner) notice.hidden = true;
}

function parseHash() {
  const m = location.hash.match(/^#\/([a-z]+)(?:\/(.+))?$/);
  const name = m && PAGES[m[1]] ? m[1] : 'overview';
  let param = null;
  if (m && m[2]) {
    try {
      param = decodeURIComponent(m[2]);
    } catch {
      param = m[2]; // a hand-typed `%` that is not an escape: taken as it is
    }
  }
  return { name, param };
}

function mount() {
  const { name, param } = parseHash();
  if (current) {
    current.stops.forEach((p) => p.stop());
    leavePage();
    current.cleanup?.();
  }
  const me = { name, param, stops: [], snapHooks: [] };
  current = me;
  notice.hidden = true;
  main.replaceChildren();
  main.dataset.page = name;
  main.dataset.ready = 'false';
  if (param) main.dataset.param = param;
  else delete main.dataset.param;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const ctx = {
    param,
    ready() {
      if (current === me) main.dataset.ready = 'true';
    },
    poll(fn, ms) {
      const p = poller(fn, ms, name);
      me.stops.push(p);
      return p;
    },
    onSnapshot(fn) {
      me.snapHooks.push(fn);
      if (snapshot) fn(snapshot);
    },
    get snapshot() {
      return snapshot;
    },
    error(e) {
      showNotice(e, name);
    },
    alive: () => current === me,
  };
  document.title = `${t(PAGES[name].title)} · codex-helper`;
  try {
    me.cleanup = PAGES[name].mount(main, ctx) || null;
  } catch (e) {
    showNotice(e, name);
  }
}

/** The keys, as the TUI's ? shows them (Esc or the button closes it). */
function showHelp() {
  let dlg = document.getElementById('help');
  if (dlg?.open) return dlg.close();
  dlg?.remove();
  dlg = h('dialog#help.card', { 'aria-labelledby': 'help-title' },
    h('h2#help-title', t('help_title')),
    h('ul.keys', ['help_pages', 'help_tab', 'help_enter', 'help_lang', 'help_help'].map((k) => h('li', t(k)))),
    h('form', { method: 'dialog' }, h('button.primary', { type: 'submit' }, t('close'))));
  document.body.append(dlg);
  dlg.showModal();
}

function renderHeader() {
  const z = zone();
  setText(document.getElementById('tz'), `${t('time_zone')}: ${z.name} (${z.short})`);
  const live = document.getElementById('live');
  if (!snapshot) return setText(live, t('waiting'));
  const rt = snapshot.runtime || {};
  const stale = Date.now() - snapshotAt > 10000;
  live.classList.toggle('stale', stale);
  setText(live, `v${rt.version || '?'} · ${t('in_flight')} ${int((snapshot.active || []).length)}${stale ? ` · ${t('stale_data')}` : ''}`);
}

function start() {
  const sel = document.getElementById('lang-select');
  sel.value = lang();
  sel.addEventListener('change', () => {
    setLang(sel.value);
    applyStatic();
    renderHeader();
    mount();
  });
  applyStatic();
  renderHeader();
  // The skip link focuses the content without touching the hash (the hash is the page).
  document.querySelector('a.skip').addEventListener('click', (e) => {
    e.preventDefault();
    main.focus();
  });
  window.addEventListener('hashchange', () => {
    mount();
    // The user went to another page: the keyboard continues from its content.
    main.focus({ preventScroll: true });
  });
  document.addEventListener('keydown', (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey || typing(e.target)) return;
    if (document.body.classList.contains('locked')) return;
    if (e.key === '?') {
      e.preventDefault();
      showHelp();
      return;
    }
    const i = '123456'.indexOf(e.key);
    if (i >= 0) {
      e.preventDefault();
      location.hash = `#/${ORDER[i]}`;
    }
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) snap.now();
  });
  const snap = poller(async () => {
    snapshot = await api('/snapshot', { query: { recent: 20 }, page: false });
    snapshotAt = Date.now();
    renderHeader();
    for (const fn of current?.snapHooks || []) fn(snapshot);
  }, 2000, 'snapshot');
  setInterval(renderHeader, 5000);
  mount();
}

start();
