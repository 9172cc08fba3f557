// Numbers, money, durations and times as the console shows them, in the chosen language.

import { lang } from './i18n.js';

const locale = () => (lang() === 'zh' ? 'zh-CN' : 'en-US');
const cache = new Map();
function nf(key, opts) {
  const k = `${locale()}|${key}`;
  if (!cache.has(k)) cache.set(k, new Intl.NumberFormat(locale(), opts));
  return cache.get(k);
}
function df(key, opts) {
  const k = `${locale()}|d|${key}`;
  if (!cache.has(k)) cache.set(k, new Intl.DateTimeFormat(locale(), opts));
  return cache.get(k);
}

/** A number from the API, which sends amounts as decimal strings. */
export function num(v) {
  if (v === null || v === undefined || v === '') return null;
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) ? n : null;
}

/** Money in USD with its currency: cents, more digits below a dollar. */
export function usd(v) {
  let n = num(v);
  if (n === null) return '–';
  if (Math.abs(n) < 5e-7) n = 0;
  const small = Math.abs(n) > 0 && Math.abs(n) < 1;
  return nf(small ? 'usd4' : 'usd2', {
    style: 'currency',
    currency: 'USD',
    currencyDisplay: 'code',
    minimumFractionDigits: 2,
    maximumFractionDigits: small ? 4 : 2,
  }).format(n);
}

/** A count as is (1,234). */
export function int(v) {
  const n = num(v);
  return n === null ? '–' : nf('int', { maximumFractionDigits: 0 }).format(n);
}

/** Tokens, compact (1.2K, 3.4M). */
export function tokens(v) {
  const n = num(v);
  return n === null ? '–' : nf('tok', { notation: 'compact', maximumFractionDigits: 1 }).format(n);
}

export function percent(v) {
  const n = num(v);
  return n === null ? '–' : nf('pct', { style: 'percent', maximumFractionDigits: 1 }).format(n);
}

/** A duration in ms: 850 ms, 1.2 s, 3 min, 2.5 h, 4.1 d. */
export function dur(v) {
  const n = num(v);
  if (n === null) return '–';
  const a = Math.abs(n);
  const f = (x, d) => nf(`f${d}`, { maximumFractionDigits: d }).format(x);
  if (a < 10) return `${f(n, 1)} ms`;
  if (a < 1000) return `${f(n, 0)} ms`;
  if (a < 60e3) return `${f(n / 1e3, 1)} s`;
  if (a < 3600e3) return `${f(n / 60e3, 1)} min`;
  if (a < 86400e3) return `${f(n / 3600e3, 1)} h`;
  return `${f(n / 86400e3, 1)} d`;
}

/** The browser's time zone, as a name (Europe/Paris) and short (CET). */
export function zone() {
  const name = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  const part = df('tzs', { timeZoneName: 'short' })
    .formatToParts(new Date())
    .find((p) => p.type === 'timeZoneName');
  return { name, short: part ? part.value : name };
}

/** A local time with its zone: 14:03:05 CET (with the day when it is not today). */
export function time(ms) {
  const n = num(ms);
  if (n === null) return '–';
  if (new Date(n).toDateString() !== new Date().toDateString()) {
    return df('mdt', { month: 'numeric', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false, timeZoneName: 'short' }).format(n);
  }
  return df('t', { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false, timeZoneName: 'short' }).format(n);
}

/** A local date and time with its zone. */
export function dateTime(ms) {
  const n = num(ms);
  if (n === null) return '–';
  return df('dt', {
    year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
    second: '2-digit', hour12: false, timeZoneName: 'short',
  }).format(n);
}

/** An axis label for a range `span` ms wide: hh:mm, a day and hour, or a day. */
export function tick(ms, span) {
  if (span > 5 * 86400e3) return df('day', { month: 'short', day: 'numeric' }).format(ms);
  if (span > 20 * 3600e3) return df('dayh', { month: 'numeric', day: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false }).format(ms);
  if (span < 10 * 60e3) return df('hms', { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false }).format(ms);
  return df('hm', { hour: '2-digit', minute: '2-digit', hour12: false }).format(ms);
}

/** An axis value in USD (the chart's title names the currency). */
export function axisUsd(v) {
  const n = num(v);
  if (n === null) return '';
  return nf(n < 1 && n > 0 ? 'ax4' : 'ax2', { maximumFractionDigits: n < 1 && n > 0 ? 4 : 2 }).format(n);
}

/** An axis value, compact. */
export function axisNum(v) {
  return nf('axn', { notation: 'compact', maximumFractionDigits: 2 }).format(v);
}

/** How long ago (a duration followed by the language's "ago"). */
export function ago(ms, now = Date.now()) {
  const n = num(ms);
  if (n === null) return '–';
  const d = Math.max(0, now - n);
  return lang() === 'zh' ? `${dur(d)}前` : `${dur(d)} ago`;
}
