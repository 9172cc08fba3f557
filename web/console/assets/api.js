// Every call to the admin API: relative to the page (so a reverse-proxy prefix works), with the
// console's header, the token when one is known, and the token prompt when the helper asks.

import { h, fill } from './dom.js';
import { t } from './i18n.js';

export const TOKEN_KEY = 'codex-helper-admin-token';
const BASE = '__codex_helper/api/v1';
const TOKEN_CODES = new Set(['peer_not_loopback', 'bad_token', 'token_required']);
/** How long a call may take: reads are quick; a probe or a balance refresh asks every relay. */
const TIMEOUT_MS = 20000;
export const SLOW_TIMEOUT_MS = 150000;

// The token when the browser keeps no session storage: it lives as long as the page.
let memoryToken = null;
// Aborted when the user leaves a page, so its reads do not land on the next one.
let pageController = new AbortController();

/** Cancels the reads of the page being left; the next page's calls get a fresh signal. */
export function leavePage() {
  pageController.abort();
  pageController = new AbortController();
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? memoryToken;
  } catch {
    return memoryToken;
  }
}

function keepToken(value) {
  memoryToken = value;
  try {
    if (value === null) sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, value);
  } catch {
    /* storage off: the token lives as long as the page */
  }
}

/** The URL of a route, relative to the page. */
export function apiUrl(route, query) {
  const url = new URL(BASE + route, document.baseURI);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '' && v !== false) url.searchParams.set(k, String(v));
  }
  return url;
}

/**
 * Calls a route; resolves with its JSON, rejects with an ApiError. A read (`GET`) belongs to
 * the page that made it and is cancelled when the user leaves it (`page: false` for the
 * shell's own); an action runs to its end. Nothing waits longer than `timeoutMs`.
 */
export async function api(route, { method = 'GET', query, body, timeoutMs = TIMEOUT_MS, page = method === 'GET' } = {}) {
  let retriedBare = false;
  for (;;) {
    // The browser's own view of where the console is: a reverse proxy that does not say it
    // forwards (no X-Forwarded-For) still cannot hide that the page was loaded from afar.
    const headers = { 'x-codex-helper-console': location.host || '1', accept: 'application/json' };
    const tok = retriedBare ? null : token();
    if (tok) headers.authorization = `Bearer ${tok}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const signals = [AbortSignal.timeout(timeoutMs)];
    if (page) signals.push(pageController.signal);
    let res;
    let text;
    try {
      res = await fetch(apiUrl(route, query), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'same-origin',
        redirect: 'error',
        signal: AbortSignal.any(signals),
      });
      text = await res.text();
    } catch (e) {
      if (e && e.name === 'TimeoutError') throw new ApiError(0, 'timeout', t('timed_out', Math.round(timeoutMs / 1000)));
      if (e && e.name === 'AbortError') throw new ApiError(0, 'aborted', t('aborted'));
      throw new ApiError(0, 'unreachable', t('unreachable'));
    }
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (res.ok) return data;
    const err = (data && data.error) || {};
    if ((res.status === 401 || res.status === 403) && TOKEN_CODES.has(err.code)) {
      // A token the helper does not know (it restarted with another one, or with none): forget
      // it if it is still the one kept, and ask once without it before prompting.
      if (err.code === 'bad_token' && tok) {
        if (token() === tok) keepToken(null);
        retriedBare = true;
        continue;
      }
      await askToken(err.code, err.message || res.statusText, retriedBare);
      retriedBare = false;
      continue;
    }
    throw new ApiError(res.status, err.code || `http_${res.status}`, err.message || `HTTP ${res.status}`);
  }
}

let pending = null;

/** Shows the token prompt (once for every call waiting on it); resolves when a token is entered. */
function askToken(code, message, hadToken) {
  if (pending) return pending;
  pending = new Promise((resolve) => {
    const layer = document.getElementById('token-layer');
    const input = h('input#token-input', {
      type: 'password',
      name: 'token',
      autocomplete: 'off',
      required: true,
      minLength: 1,
      'aria-describedby': 'token-message',
    });
    const form = h(
      'form#token-form.card',
      {
        'aria-labelledby': 'token-title',
        onsubmit: (e) => {
          e.preventDefault();
          const value = input.value.trim();
          if (!value) return;
          keepToken(value);
          layer.hidden = true;
          fill(layer);
          document.body.classList.remove('locked');
          pending = null;
          resolve();
        },
      },
      h('h2#token-title', t('token_title')),
      h('p#token-reason', { dataset: { reason: hadToken ? 'refused' : 'needed' } }, t(hadToken ? 'token_wrong' : 'token_needed')),
      h('p#token-message.muted', `${message} (${code})`),
      h('label', { for: 'token-input' }, t('token_label')),
      input,
      h('div.actions', h('button.primary', { type: 'submit' }, t('token_submit'))),
    );
    fill(layer, form);
    layer.hidden = false;
    document.body.classList.add('locked');
    input.focus();
  });
  return pending;
}
