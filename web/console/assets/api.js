// Every call to the admin API: relative to the page (so a reverse-proxy prefix works), with the
// console's header, the token when one is known, and the token prompt when the helper asks.

import { h, fill } from './dom.js';
import { t } from './i18n.js';

export const TOKEN_KEY = 'codex-helper-admin-token';
const BASE = '__codex_helper/api/v1';
const TOKEN_CODES = new Set(['peer_not_loopback', 'bad_token', 'token_required']);

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
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

/** Calls a route; resolves with its JSON, rejects with an ApiError. */
export async function api(route, { method = 'GET', query, body } = {}) {
  for (;;) {
    const headers = { 'x-codex-helper-console': '1', accept: 'application/json' };
    const tok = token();
    if (tok) headers.authorization = `Bearer ${tok}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res;
    try {
      res = await fetch(apiUrl(route, query), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'same-origin',
        redirect: 'error',
      });
    } catch {
      throw new ApiError(0, 'unreachable', t('unreachable'));
    }
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (res.ok) return data;
    const err = (data && data.error) || {};
    if ((res.status === 401 || res.status === 403) && TOKEN_CODES.has(err.code)) {
      await askToken(err.code, err.message || res.statusText, !!tok);
      continue;
    }
    throw new ApiError(res.status, err.code || `http_${res.status}`, err.message || `HTTP ${res.status}`);
  }
}

let pending = null;

/** Shows the token prompt (once for every call waiting on it); resolves when a token is entered. */
function askToken(code, message, hadToken) {
  if (pending) return pending;
  if (hadToken) {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      /* storage off: the token lives as long as the prompt */
    }
  }
  pending = new Promise((resolve) => {
    const layer = document.getElementById('token-layer');
    const input = h('input#token-input', {
      type: 'password',
      name: 'token',
      autocomplete: 'current-password',
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
          try {
            sessionStorage.setItem(TOKEN_KEY, value);
          } catch {
            /* kept nowhere: asked again next time */
          }
          layer.hidden = true;
          fill(layer);
          document.body.classList.remove('locked');
          pending = null;
          resolve();
        },
      },
      h('h2#token-title', t('token_title')),
      h('p', t(hadToken ? 'token_wrong' : 'token_needed')),
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
