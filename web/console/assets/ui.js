// Pieces several pages share: sections, tables, stat cards, state badges, confirmations.

import { h, setText } from './dom.js';
import { t } from './i18n.js';

export function section(titleKey, ...children) {
  return h('section.card', h('h2', t(titleKey)), ...children);
}

/** A table with a caption (for screen readers) and headers; returns {table, body}. */
export function table(captionKey, heads, extraClass = '') {
  const body = h('tbody');
  const tbl = h(
    `table.grid${extraClass ? `.${extraClass}` : ''}`,
    h('caption.sr', t(captionKey)),
    h('thead', h('tr', heads.map((k) => h('th', { scope: 'col', class: k.startsWith('#') ? 'num' : '' }, t(k.replace(/^#/, '')))))),
    body,
  );
  return { table: h('div.table-wrap', tbl), body };
}

/** A stat: a label and a value that updates in place. */
export function stat(labelKey, id) {
  const value = h('span.value', { id }, '–');
  const sub = h('span.sub');
  return { el: h('div.stat', h('span.label', t(labelKey)), value, sub), value, sub };
}

export function setStat(st, value, sub = '') {
  setText(st.value, value);
  setText(st.sub, sub);
}

/** A cell with a number (right aligned). */
export const num = (v) => h('td.num', v);

/** The word and colour class of a balance state, as the TUI's Usage page shows them. */
export const BALANCE_STATES = ['ok', 'unlimited', 'unknown', 'stale', 'exhausted', 'error'];
export function balanceBadge(state) {
  const known = BALANCE_STATES.includes(state) ? state : 'unknown';
  return h(`span.badge.bal-${known}`, { 'data-balance-state': known }, t(`state_${known}`));
}

/** An endpoint state badge: routable, skipped, disabled, draining. */
export function stateBadge(state, text) {
  return h(`span.badge.ep-${state}`, { 'data-state': state }, text);
}

/** A button that asks to be pressed again within 3 s before it acts (like the TUI's P P). */
export function confirmButton(label, confirmLabel, act, attrs = {}) {
  let armed = null;
  const btn = h('button', {
    type: 'button',
    ...attrs,
    onclick: async () => {
      if (!armed) {
        btn.textContent = confirmLabel;
        btn.classList.add('armed');
        armed = setTimeout(() => {
          armed = null;
          btn.textContent = label;
          btn.classList.remove('armed');
        }, 3000);
        return;
      }
      clearTimeout(armed);
      armed = null;
      btn.textContent = label;
      btn.classList.remove('armed');
      await act();
    },
  }, label);
  return btn;
}

/** A line that says what an action did (or why it failed). */
export function resultLine(id) {
  return h('p.result', { id, role: 'status', 'aria-live': 'polite' });
}
export function showResult(el, ok, text) {
  el.classList.toggle('bad', !ok);
  el.classList.toggle('good', ok);
  setText(el, text);
}

/** Disables a button while an action runs. */
export async function busy(btn, fn) {
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } finally {
    btn.disabled = false;
    btn.removeAttribute('aria-busy');
  }
}

export const link = (href, text, attrs = {}) => h('a', { href, ...attrs }, text);
