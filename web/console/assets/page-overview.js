// Overview: requests, success, latency, TTFB, tokens and cost over 1 h / 24 h / 30 d (the
// ledger's series), the requests in flight and the last finished ones (the snapshot).

import { api } from './api.js';
import { h, fill, syncList } from './dom.js';
import { t } from './i18n.js';
import { chart } from './chart.js';
import { usd, int, tokens, percent, dur, time, axisUsd, axisNum } from './format.js';
import { section, table, stat, setStat, num, link } from './ui.js';

let win = '1h';
const WINDOWS = ['1h', '24h', '30d'];
const EVERY = { '1h': 10000, '24h': 30000, '30d': 60000 };

/** The nearest-rank percentile, as the helper computes its own: the smallest value with at least q of them at or below it. */
export function pct(values, q) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  return v[Math.max(0, Math.ceil(q * v.length) - 1)];
}

/** This browser's last 31 local midnights, the last one after today: its own days, DST included. */
function dayStarts(now = new Date()) {
  const out = [];
  for (let back = 30; back >= 0; back--) out.push(new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1 - back).getTime());
  return out.join(',');
}

/** Two durations, the unit said once when they share it: 171 / 469 ms. */
function pair(a, b) {
  const [x, y] = [dur(a), dur(b)];
  const unit = x.match(/ [a-z]+$/)?.[0];
  return unit && y.endsWith(unit) ? `${x.slice(0, -unit.length)} / ${y}` : `${x} / ${y}`;
}

export default {
  title: 'page_overview',
  mount(root, ctx) {
    const stats = {
      requests: stat('requests', 'stat-requests'),
      success: stat('success_rate', 'stat-success'),
      latency: stat('latency_recent', 'stat-latency'),
      ttfb: stat('ttfb_recent', 'stat-ttfb'),
      tokens: stat('tokens', 'stat-tokens'),
      cost: stat('cost', 'stat-cost'),
      inflight: stat('in_flight', 'stat-inflight'),
      routable: stat('endpoints_routable', 'stat-routable'),
      statuses: stat('status_recent', 'stat-statuses'),
    };
    const buttons = WINDOWS.map((w) =>
      h('button', {
        type: 'button',
        'data-window': w,
        'aria-pressed': String(w === win),
        onclick: () => {
          win = w;
          for (const b of buttons) b.setAttribute('aria-pressed', String(b.dataset.window === win));
          series.stop();
          series = ctx.poll(loadSeries, EVERY[win]);
        },
      }, w),
    );
    const charts = h('div.charts');
    const seriesNote = h('p.muted#series-note', { hidden: true });
    const active = table('in_flight', ['col_started', 'col_model', 'col_session', 'col_path', '#col_elapsed']);
    const finished = table('last_finished', ['col_time', 'col_model', 'col_provider', 'col_session', '#col_status', '#col_tokens', '#col_ttfb', '#col_duration']);
    const noActive = h('p.muted', t('none_in_flight'));
    fill(
      root,
      h('div.page-head', h('h1', t('page_overview')),
        h('div.switch', { role: 'group', 'aria-label': t('window') }, h('span.label', t('window')), buttons)),
      h('div.stats', Object.values(stats).map((s) => s.el)),
      seriesNote,
      charts,
      section('in_flight', noActive, active.table),
      section('last_finished', finished.table),
    );

    let gotSeries = false;
    let gotSnap = false;
    const maybeReady = () => gotSeries && gotSnap && ctx.ready();

    async function loadSeries() {
      const w = win;
      try {
        const data = await api('/request-ledger/series', { query: { window: w, day_starts: w === '30d' ? dayStarts() : undefined } });
        if (w !== win || !ctx.alive()) return;
        drawSeries(data);
      } finally {
        gotSeries = true;
        maybeReady();
      }
    }

    function drawSeries(d) {
      const b = d.buckets || [];
      const sum = (k) => b.reduce((a, x) => a + (Number(x[k]) || 0), 0);
      const req = sum('requests');
      const err = sum('errors');
      setStat(stats.requests, int(req), `${t('errors')} ${int(err)} · ${d.window}`);
      setStat(stats.success, req ? percent((req - err) / req) : '–', d.window);
      setStat(stats.tokens, tokens(sum('total_tokens')), `${t('input')} ${tokens(sum('input_tokens'))} · ${t('output')} ${tokens(sum('output_tokens'))}`);
      setStat(stats.cost, usd(sum('cost_usd')), d.window);
      const long = d.window === '30d';
      const x0 = d.from_ms ?? b[0]?.start_ms;
      const x1 = d.to_ms ?? (b.length ? b[b.length - 1].start_ms + d.bucket_ms : undefined);
      seriesNote.hidden = !d.truncated;
      if (d.truncated) seriesNote.textContent = t('series_truncated', int(b.reduce((a, x) => a + (Number(x.requests) || 0), 0)));
      // A point sits in the middle of its bucket (a DST day is an hour longer or shorter).
      const at = (x) => (x.end_ms ? (x.start_ms + x.end_ms) / 2 : x.start_ms);
      const pts = (k) => b.map((x) => ({ x: at(x), y: x[k] === null || x[k] === undefined ? null : Number(x[k]) }));
      const per = long ? t('per_day') : d.window === '24h' ? t('per_15min') : t('per_minute');
      const common = { x0, x1 };
      fill(
        charts,
        chart('requests', {
          ...common,
          title: `${t('requests')} (${per})`,
          bars: true,
          yFmt: axisNum,
          integer: true,
          series: [{ label: t('requests'), values: b.map((x) => ({ x: at(x), y: Number(x.requests) || 0, tip: `${time(x.start_ms)}: ${int(x.requests)} ${t('requests')}, ${int(x.errors)} ${t('errors')}` })) }],
        }),
        chart('errors', { ...common, title: `${t('errors')} (${per})`, yFmt: axisNum, integer: true, series: [{ label: t('errors'), cls: 'bad', values: pts('errors') }] }),
        chart('latency', {
          ...common,
          title: t('latency'),
          yFmt: dur,
          series: [{ label: 'p50', key: 'p50', values: pts('latency_p50_ms') }, { label: 'p95', key: 'p95', values: pts('latency_p95_ms') }],
        }),
        chart('ttfb', {
          ...common,
          title: t('ttfb'),
          yFmt: dur,
          series: [{ label: 'p50', key: 'p50', values: pts('ttfb_p50_ms') }, { label: 'p95', key: 'p95', values: pts('ttfb_p95_ms') }],
        }),
        chart('tokens', {
          ...common,
          title: `${t('tokens')} (${per})`,
          yFmt: axisNum,
          series: [{ label: t('input'), key: 'input', values: pts('input_tokens') }, { label: t('output'), key: 'output', values: pts('output_tokens') }],
        }),
        chart('cost', { ...common, title: `${t('cost')} (${per}, USD)`, yFmt: axisUsd, series: [{ label: t('cost'), values: pts('cost_usd') }] }),
      );
    }

    async function loadRecent() {
      const d = await api('/request-ledger/recent', { query: { limit: 200 } });
      const rows = d.requests || [];
      const durs = rows.map((r) => Number(r.duration_ms));
      const ttfbs = rows.map((r) => (r.ttfb_ms === null ? NaN : Number(r.ttfb_ms)));
      const n = t('n_requests', int(rows.length));
      const s429 = rows.filter((r) => r.status === 429).length;
      const s5xx = rows.filter((r) => r.status >= 500).length;
      setStat(stats.statuses, `${int(s429)} / ${int(s5xx)}`, `429 / 5xx · ${n}`);
      setStat(stats.latency, pair(pct(durs, 0.5), pct(durs, 0.95)), `p50 / p95 · ${n}`);
      setStat(stats.ttfb, pair(pct(ttfbs, 0.5), pct(ttfbs, 0.95)), `p50 / p95 · ${n}`);
    }

    let series = ctx.poll(loadSeries, EVERY[win]);
    ctx.poll(loadRecent, 10000);
    ctx.onSnapshot((snap) => {
      const act = snap.active || [];
      const now = snap.at_ms || Date.now();
      setStat(stats.inflight, int(act.length), `${t('ledger_written')} ${int(snap.runtime?.ledger?.written)}`);
      const eps = snap.endpoints || [];
      const skipped = eps.filter((e) => !e.routable).map((e) => e.key);
      setStat(stats.routable, `${int(eps.length - skipped.length)} / ${int(eps.length)}`, skipped.length ? `${t('skipped')}: ${skipped.join(', ')}` : '');
      noActive.hidden = act.length > 0;
      active.table.hidden = act.length === 0;
      syncList(active.body, act, (r) => r.trace_id, (r) =>
        h('tr', h('td', time(r.started_at_ms)), h('td', r.model_requested || '–'),
          h('td', r.session ? link(`#/sessions/${encodeURIComponent(r.session)}`, r.session) : '–'),
          h('td', `${r.method} ${r.path}${r.streaming ? ' (SSE)' : ''}`), num(dur(now - r.started_at_ms))),
      (r) => `${r.trace_id}|${Math.floor((now - r.started_at_ms) / 1000)}`);
      syncList(finished.body, snap.recent || [], (r) => r.trace_id, (r) => {
        const bad = (r.status && r.status >= 400) || !['completed', 'client_disconnected'].includes(r.outcome);
        return h(`tr${bad ? '.bad' : ''}`,
          h('td', link(`#/requests/${encodeURIComponent(r.trace_id)}`, time(r.started_at_ms))),
          h('td', r.model_sent && r.model_sent !== r.model_requested ? `${r.model_requested || '–'} → ${r.model_sent}` : r.model_requested || '–'),
          h('td', r.provider ? `${r.provider}.${r.endpoint || ''}` : '–'),
          h('td', r.session ? link(`#/sessions/${encodeURIComponent(r.session)}`, r.session) : '–'),
          num(r.status ?? r.outcome),
          num(tokens((r.input_tokens || 0) + (r.output_tokens || 0))),
          num(dur(r.ttfb_ms)),
          num(dur(r.duration_ms)));
      });
      gotSnap = true;
      maybeReady();
    });
  },
};
