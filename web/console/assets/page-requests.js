// Requests: the ledger's newest requests, filtered by provider, model, session and errors; one
// request's attempt chain and route decision.

import { api } from './api.js';
import { h, fill, syncList, setText } from './dom.js';
import { t } from './i18n.js';
import { usd, tokens, dur, time, int } from './format.js';
import { section, table, num, link } from './ui.js';

const filters = { provider: '', model: '', session: '', errors: false };

function failed(r) {
  return (r.status && r.status >= 400) || !['completed', 'client_disconnected'].includes(r.outcome);
}

function list(root, ctx) {
  const { table: tbl, body } = table('page_requests', ['col_time', 'col_model', 'col_provider', 'col_session', '#col_status', '#tokens', '#cost', '#col_ttfb', '#col_duration']);
  const provider = h('select#f-provider', { name: 'provider' }, h('option', { value: '' }, t('all')));
  const model = h('input#f-model', { name: 'model', type: 'text', value: filters.model, autocomplete: 'off' });
  const session = h('input#f-session', { name: 'session', type: 'text', value: filters.session, autocomplete: 'off' });
  const errors = h('input#f-errors', { name: 'errors', type: 'checkbox', checked: filters.errors });
  const count = h('p.muted', { role: 'status' });
  const form = h('form.filters#request-filters', {
    onsubmit: (e) => {
      e.preventDefault();
      Object.assign(filters, { provider: provider.value, model: model.value.trim(), session: session.value.trim(), errors: errors.checked });
      poll.now();
    },
  },
  h('span.pair', h('label', { for: 'f-provider' }, t('col_provider_only')), provider),
  h('span.pair', h('label', { for: 'f-model' }, t('col_model')), model),
  h('span.pair', h('label', { for: 'f-session' }, t('col_session')), session),
  h('label.check', errors, t('errors_only')),
  h('button.primary', { type: 'submit' }, t('filter')),
  h('button', { type: 'button', onclick: () => {
    Object.assign(filters, { provider: '', model: '', session: '', errors: false });
    provider.value = model.value = session.value = '';
    errors.checked = false;
    poll.now();
  } }, t('clear')));
  fill(root, h('div.page-head', h('h1', t('page_requests'))), section('filters', form), section('page_requests', count, tbl));

  let providersSig = '';
  const poll = ctx.poll(async () => {
    const [d, p] = await Promise.all([
      api('/request-ledger/recent', { query: { limit: 200, provider: filters.provider, model: filters.model, session: filters.session, errors: filters.errors ? 'true' : '' } }),
      api('/providers'),
    ]);
    if (!ctx.alive()) return;
    const names = [...new Set((p.providers || []).map((e) => e.provider))];
    if (names.join('\n') !== providersSig) {
      providersSig = names.join('\n');
      fill(provider, h('option', { value: '' }, t('all')), names.map((n) => h('option', { value: n }, n)));
      provider.value = filters.provider;
    }
    const rows = d.requests || [];
    setText(count, rows.length ? t('n_requests', int(rows.length)) : t('no_requests'));
    tbl.hidden = rows.length === 0;
    syncList(body, rows, (r) => r.id, (r) => h(`tr${failed(r) ? '.bad' : ''}`, { 'data-trace': r.trace_id },
      h('td', link(`#/requests/${encodeURIComponent(r.trace_id)}`, time(r.started_ms), { 'data-focus': 'open' })),
      h('td', r.model_sent && r.model_requested && r.model_sent !== r.model_requested ? `${r.model_requested} → ${r.model_sent}` : r.model || '–'),
      h('td', r.provider ? `${r.provider}.${r.endpoint || ''}` : '–'),
      h('td', r.session_id ? link(`#/sessions/${encodeURIComponent(r.session_id)}`, r.session_id) : '–'),
      num(r.status ?? r.outcome), num(tokens(r.total_tokens)), num(usd(r.cost_usd)), num(dur(r.ttfb_ms)), num(dur(r.duration_ms))));
    ctx.ready();
  }, 5000);
}

function detail(root, ctx, id) {
  const facts = h('dl.facts');
  const attempts = table('attempts', ['#col_n', 'col_endpoint', '#col_status', 'col_outcome', 'col_class', '#col_duration', 'col_detail']);
  const decision = h('dl.facts');
  const candidates = table('candidates', ['col_endpoint', '#col_group', 'col_route_path', 'col_reason']);
  fill(root,
    h('div.page-head', h('h1', `${t('request')} `, h('code', id)), link('#/requests', `← ${t('page_requests')}`)),
    section('request', facts),
    section('attempts', attempts.table),
    section('route_decision', decision, candidates.table));
  ctx.poll(async () => {
    let c;
    try {
      c = await api(`/request-ledger/chain/${encodeURIComponent(id)}`);
    } catch (e) {
      if (e.status === 404) {
        fill(facts, h('p.muted', t('request_unknown')));
        ctx.ready();
        return;
      }
      throw e;
    }
    if (!ctx.alive()) return;
    fill(facts, [
      ['col_time', c.started_local], ['col_outcome', c.outcome], ['col_status', c.status ?? '–'], ['error', c.error || '–'],
    ].map(([k, v]) => [h('dt', t(k)), h('dd', String(v))]));
    syncList(attempts.body, (c.attempts || []).map((a, i) => ({ ...a, n: i + 1 })), (a) => a.n, (a) => h(`tr${a.status >= 400 || (a.outcome && a.outcome !== 'responded') ? '.bad' : ''}`,
      num(a.n), h('td', `${a.provider || '–'}.${a.endpoint || ''}`), num(a.status ?? '–'), h('td', a.outcome || '–'),
      h('td', a.class || '–'), num(dur(a.duration_ms)),
      h('td.reason', [a.error, a.retry_after_secs ? `retry-after ${a.retry_after_secs} s` : null, a.body_preview].filter(Boolean).join(' · ') || '–')));
    const d = c.decision;
    if (!d) {
      fill(decision, h('p.muted', t('no_decision')));
      candidates.table.hidden = true;
    } else {
      fill(decision, [
        ['chosen', d.chosen || '–'], ['why', d.why || '–'], ['affinity', d.affinity || '–'],
        ['affinity_policy', d.affinity_policy || '–'], ['binding_changed', d.affinity_change ? JSON.stringify(d.affinity_change) : '–'],
        ['relay_bound', d.relay_bound ? t('yes') : t('no')], ['graph_key', d.graph_key || '–'],
      ].map(([k, v]) => [h('dt', t(k)), h('dd', String(v))]));
      candidates.table.hidden = false;
      syncList(candidates.body, d.candidates || [], (x) => x.upstream, (x) => h('tr',
        h('td', x.upstream), num(x.group ?? '–'), h('td', (x.route_path || []).join(' → ')),
        h('td', x.skip ? (x.skip.why || JSON.stringify(x.skip)) : x.upstream === d.chosen ? t('chosen') : '–')));
    }
    ctx.ready();
  }, 15000);
}

export default {
  title: 'page_requests',
  mount(root, ctx) {
    if (ctx.param) detail(root, ctx, ctx.param);
    else list(root, ctx);
  },
};
