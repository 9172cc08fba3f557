// Usage and balance: requests, errors, tokens and cost per provider over a window; every
// provider's balance state (the TUI's six states and colours), its endpoints, how long the
// money lasts at the recent spend, a forecast chart; and a refresh that looks balances up now.

import { api, SLOW_TIMEOUT_MS } from './api.js';
import { h, fill, syncList, setText } from './dom.js';
import { t } from './i18n.js';
import { chart } from './chart.js';
import { usd, int, tokens, dur, ago, dateTime, num as toNum, axisUsd } from './format.js';
import { section, table, num, balanceBadge, resultLine, showResult, busy } from './ui.js';

let since = '24h';
let attention = false;
const fine = (state) => state === 'ok' || state === 'unlimited';
const WINDOWS = ['1h', '24h', '7d', '30d'];

/** An endpoint's money left as its lookup read it: the balance, else the quota remaining. */
function moneyLeft(b) {
  const a = b.snapshot || {};
  return toNum(a.total_balance) ?? toNum(a.quota_remaining);
}

/** A provider's money left: the same amount on several endpoints counts once (as the helper does). */
function providerMoney(p) {
  const seen = [];
  for (const e of p.endpoints || []) {
    const m = moneyLeft(e);
    if (m !== null && !seen.includes(m)) seen.push(m);
  }
  return seen.length ? seen.reduce((a, b) => a + b, 0) : null;
}

function amountText(b) {
  const a = b.snapshot || {};
  if (a.unlimited_quota) return t('state_unlimited');
  const left = moneyLeft(b);
  if (left === null) return '–';
  const limit = toNum(a.quota_limit);
  return limit !== null && a.total_balance == null ? `${usd(left)} / ${usd(limit)}` : usd(left);
}

function forecastChart(p, money, now) {
  const f = p.forecast || {};
  const rate = toNum(f.cost_per_hour_usd) || 0;
  const hoursLeft = toNum(f.hours_until_balance_zero) ?? (rate > 0 ? money / rate : null);
  const horizonH = hoursLeft !== null && hoursLeft > 0 ? Math.min(hoursLeft * 1.15, 24 * 30) : 24;
  const N = 12;
  const values = [];
  for (let i = 0; i <= N; i++) {
    const hrs = (horizonH * i) / N;
    const y = Math.max(0, money - rate * hrs);
    values.push({ x: now + hrs * 3600e3, y, tip: `${dateTime(now + hrs * 3600e3)}: ${usd(y)}` });
  }
  return chart(`forecast-${p.provider}`, {
    title: `${t('forecast')} (USD) · ${usd(rate)}/h`,
    label: `${t('forecast')} ${p.provider}`,
    x0: now,
    x1: now + horizonH * 3600e3,
    yFmt: axisUsd,
    series: [{ label: t('money_left'), values }],
  });
}

export default {
  title: 'page_usage',
  mount(root, ctx) {
    const totals = h('p.totals');
    const sum = table('by_provider', ['col_provider_only', '#requests', '#errors', '#tokens', '#cost']);
    const sinceSel = h('select#usage-window', {
      onchange: () => {
        since = sinceSel.value;
        summaryPoll.now();
      },
    }, WINDOWS.map((w) => h('option', { value: w, selected: w === since }, w)));
    const providerSel = h('select#balance-provider', h('option', { value: '' }, t('all_providers')));
    const result = resultLine('balance-result');
    const refresh = h('button.primary#balance-refresh', {
      type: 'button',
      onclick: () => busy(refresh, async () => {
        const body = providerSel.value ? { provider_id: providerSel.value } : {};
        showResult(result, true, t('running'));
        try {
          const r = await api('/providers/balances/refresh', { method: 'POST', body, timeoutMs: SLOW_TIMEOUT_MS });
          showResult(result, r.failed === 0, t('refresh_result', int(r.attempted), int(r.refreshed), int(r.failed), int(r.missing_token)));
          result.dataset.done = String(Date.now());
        } catch (e) {
          showResult(result, false, `${t('action_failed')}: ${e.message}`);
        }
        await balancePoll.now();
      }),
    }, t('refresh_balances'));
    const providers = h('div.providers');
    const errorsOf = new Map(); // provider → errors in the window (for "attention only")
    const notFine = new Set(); // providers whose balance is not fine
    const attentionBox = h('label.check', h('input#usage-attention', {
      type: 'checkbox', checked: attention,
      onchange: (e) => {
        attention = e.target.checked;
        summaryPoll.now();
        balancePoll.now();
      },
    }), t('attention_only'));
    const empty = h('p.muted', t('no_balances'));
    fill(root,
      h('div.page-head', h('h1', t('page_usage')), attentionBox),
      section('usage_title',
        h('p.controls', h('label', { for: 'usage-window' }, t('window')), ' ', sinceSel),
        totals, sum.table),
      section('balances',
        h('p.controls', h('label', { for: 'balance-provider' }, t('provider')), ' ', providerSel, ' ', refresh),
        result, empty, providers));

    let gotSum = false;
    let gotBal = false;
    const maybeReady = () => gotSum && gotBal && ctx.ready();

    const summaryPoll = ctx.poll(async () => {
      const w = since;
      const d = await api('/request-ledger/summary', { query: { since: w, by: 'provider' } });
      if (w !== since || !ctx.alive()) return;
      const tot = d.total || {};
      const f = d.forecast || {};
      setText(totals, `${t('window')} ${w} · ${t('requests')} ${int(tot.requests)} · ${t('errors')} ${int(tot.errors)} · ${t('tokens')} ${tokens(tot.total_tokens)} · ${t('cost')} ${usd(tot.cost_usd)}${f.cost_per_hour_usd != null ? ` · ${t('burn_last_hour')} ${usd(f.cost_per_hour_usd)}/h, ${t('until_midnight')} ≈ ${usd(f.projected_cost_until_midnight_usd)}` : ''}`);
      errorsOf.clear();
      for (const r of d.rows || []) errorsOf.set(r.key, r.errors);
      const rows = (d.rows || []).filter((r) => !attention || r.errors > 0 || notFine.has(r.key));
      syncList(sum.body, rows, (r) => r.key, (r) => h('tr',
        h('th', { scope: 'row' }, r.key), num(int(r.requests)), h(`td.num${r.errors > 0 ? '.bad-text' : ''}`, int(r.errors)), num(tokens(r.total_tokens)),
        num(`${usd(r.cost_usd)}${r.unpriced ? ` (+${int(r.unpriced)} ${t('unpriced')})` : ''}`)));
      gotSum = true;
      maybeReady();
    }, 15000);

    let providerSig = '';
    const balancePoll = ctx.poll(async () => {
      const d = await api('/usage/forecast');
      if (!ctx.alive()) return;
      notFine.clear();
      for (const p of d.providers || []) if (!fine(p.status)) notFine.add(p.provider);
      const list = (d.providers || []).filter((p) => !attention || notFine.has(p.provider) || errorsOf.get(p.provider) > 0);
      const names = (d.providers || []).map((p) => p.provider);
      if (names.join('\n') !== providerSig) {
        providerSig = names.join('\n');
        const keep = providerSel.value;
        fill(providerSel, h('option', { value: '' }, t('all_providers')), names.map((n) => h('option', { value: n }, n)));
        providerSel.value = names.includes(keep) ? keep : '';
      }
      empty.hidden = list.length > 0;
      setText(empty, (d.providers || []).length ? t('nothing_needs_attention') : t('no_balances'));
      const now = Date.now();
      syncList(providers, list, (p) => p.provider, (p) => {
        const money = providerMoney(p);
        const f = p.forecast || {};
        const eps = table('endpoints', ['col_endpoint', 'col_state', '#col_balance', 'col_plan', 'col_checked', 'col_detail']);
        for (const e of p.endpoints || []) {
          const sn = e.snapshot || {};
          eps.body.append(h(`tr.bal-row-${e.status}`, { 'data-endpoint-balance': e.endpoint },
            h('th', { scope: 'row' }, e.endpoint), h('td', balanceBadge(e.status)), num(amountText(e)),
            h('td', sn.plan_name || '–'),
            h('td', { title: dateTime(sn.fetched_at_ms) }, sn.fetched_at_ms ? ago(sn.fetched_at_ms, now) : '–'),
            h('td.reason', [sn.error, sn.amounts_carried ? t('amounts_carried') : null, e.routing_exhausted_until_ms ? `${t('state_exhausted')} → ${dateTime(e.routing_exhausted_until_ms)}` : null, sn.trusted_for_routing === false ? t('display_only') : null].filter(Boolean).join(' · ') || '–')));
        }
        const lasts = toNum(f.hours_until_balance_zero);
        return h('article.provider.card', { 'data-provider': p.provider },
          h('h3', p.provider, ' ', balanceBadge(p.status)),
          h('dl.facts',
            h('dt', t('money_left')), h('dd.money', money === null ? '–' : usd(money)),
            h('dt', t('burn_rate')), h('dd', f.cost_per_hour_usd != null ? `${usd(f.cost_per_hour_usd)}/h · ${tokens(f.tokens_per_hour)} ${t('tokens')}/h` : '–'),
            h('dt', t('lasts')), h('dd', lasts !== null ? `≈ ${dur(lasts * 3600e3)} (${dateTime(now + lasts * 3600e3)})` : '–'),
            h('dt', t('until_midnight')), h('dd', f.projected_cost_until_midnight_usd != null ? `≈ ${usd(f.projected_cost_until_midnight_usd)}` : '–'),
            h('dt', t('confidence')), h('dd', f.confidence ? `${t(`conf_${f.confidence}`) === `conf_${f.confidence}` ? f.confidence : t(`conf_${f.confidence}`)} (${int(f.requests)} ${t('requests')}, ${dur(f.window_ms)})` : '–')),
          money !== null ? forecastChart(p, money, now) : h('p.muted', t('no_forecast')),
          eps.table);
      }, (p) => JSON.stringify([p, Math.floor(now / 60000)]));
      gotBal = true;
      maybeReady();
    }, 15000);
  },
};
