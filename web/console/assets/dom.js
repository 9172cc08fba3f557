// Small DOM helpers: build elements without innerHTML, and update lists in place so a
// poll never replaces a row (or the focus inside it) whose content did not change.

const SVG = 'http://www.w3.org/2000/svg';

/** h('a.cls#id', {href, onclick, dataset:{…}}, ...children) */
export function h(spec, attrs, ...children) {
  return build(document.createElement(tagOf(spec)), spec, attrs, children);
}

/** The same for SVG elements. */
export function s(spec, attrs, ...children) {
  return build(document.createElementNS(SVG, tagOf(spec)), spec, attrs, children);
}

function tagOf(spec) {
  return spec.match(/^[a-z0-9]+/i)[0];
}

function build(el, spec, attrs, children) {
  for (const m of spec.matchAll(/([.#])([\w-]+)/g)) {
    if (m[1] === '.') el.classList.add(m[2]);
    else el.id = m[2];
  }
  if (attrs !== null && attrs !== undefined && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'class') for (const c of String(v).split(/\s+/).filter(Boolean)) el.classList.add(c);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else if (k in el && !(el instanceof SVGElement) && k !== 'list' && k !== 'form') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Sets text only when it changed (keeps selections and screen readers calm). */
export function setText(el, text) {
  const t = String(text ?? '');
  if (el.textContent !== t) el.textContent = t;
}

/**
 * Keeps `parent`'s children in step with `items`: one child per key, rebuilt by `render(item)`
 * only when `sig(item)` changed, kept (with any focus inside it) otherwise.
 */
export function syncList(parent, items, key, render, sig = (x) => JSON.stringify(x)) {
  const old = new Map();
  for (const el of [...parent.children]) if (el.dataset.key !== undefined) old.set(el.dataset.key, el);
  let prev = null;
  for (const item of items) {
    const k = String(key(item));
    const sg = sig(item);
    let el = old.get(k);
    if (el && el.dataset.sig !== sg) {
      const fresh = render(item);
      const hadFocus = el.contains(document.activeElement);
      const focusKey = hadFocus ? document.activeElement.dataset.focus : null;
      el.replaceWith(fresh);
      el = fresh;
      if (hadFocus) {
        // The same control again, else (it may be disabled now) the first one that can take it.
        const same = focusKey ? el.querySelector(`[data-focus="${CSS.escape(focusKey)}"]`) : null;
        const next = same && !same.disabled ? same : el.querySelector('a[href], button:not(:disabled), input:not(:disabled), select:not(:disabled)');
        if (next) next.focus();
        else if (el.tabIndex >= 0) el.focus();
      }
    } else if (!el) {
      el = render(item);
    }
    old.delete(k);
    el.dataset.key = k;
    el.dataset.sig = sg;
    const want = prev ? prev.nextSibling : parent.firstChild;
    if (want !== el) parent.insertBefore(el, want);
    prev = el;
  }
  for (const el of old.values()) el.remove();
}

/** Whether the user is typing in a field (then keys and refreshes must not interfere). */
export function typing(el = document.activeElement) {
  return !!el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
}
