// Sessions: the list (where each is bound, its last 24 h, its overrides), and one session:
// its binding and where its next request would go, its requests over time, its overrides.

import { api } from './api.js';
import { h, fill, syncList, setText } from './dom.js';
import { t } from './i18n.js';
import { chart } from './chart.js';
import { usd, int, tokens, dur, time, ago, dateTime } from './format.js';
import { section, table, num, link, confirmButton, resultLine, showResult, busy } from './ui.js';

const filters = { overrides: false, errors: false };
const FIELDS = [
  ['model', 'ov_model'],
  ['reasoning_effort', 'ov_effort'],
  ['service_tier', 'ov_tier'],
  ['route_target', 'ov_pin'],
];
const EFFORTS = ['low', 'medium', 'high', 'xhigh'];
const TIERS = ['auto', 'default', 'flex', 'priority'];

export function overridesText(o) {
  if (!o) return t('overrides_none');
  const parts = [];
  if (o.model) parts.push(`${t('ovs_model')} ${o.model}`);
  if (o.reasoning_effort) parts.push(`${t('ovs_effort')} ${o.reasoning_effort}`);
  if (o.service_tier) parts.push(`${t('ovs_tier')} ${o.service_tier}`);
  if (o.route_target) parts.push(`${t('ovs_pin')} ${o.route_target}`);
  if (o.profile) parts.push(`${t('ovs_profile')} ${o.profile}`);
  return parts.length ? parts.join('  ') : t('overrides_none');
}

const sessionHref = (id) => `#/sessions/${encodeURIComponent(id)}`;

function failed(r) {
  return (r.status && r.status >= 400) || !['completed', 'client_disconnected'].includes(r.outcome);
}

function list(root, ctx) {
  const { table: tbl, body } = table('page_sessions', ['col_session', 'col_goes_to', 'col_last_used', '#col_req', '#col_err', '#tokens', '#cost', 'col_overrides']);
  const empty = h('p.muted');
  const box = (key, label) => h('label.check', h('input', {
    type: 'checkbox', checked: filters[key], id: `filter-${key}`,
    onchange: (e) => {
      filters[key] = e.target.checked;
      poll.now();
    },
  }), t(label));
  fill(root,
    h('div.page-head', h('h1', t('page_sessions')),
      h('div.filters', box('overrides', 'filter_overrides'), box('errors', 'filter_errors'))),
    h('p.muted', t('last_24h_note')),
    section('page_sessions', empty, tbl));
  const poll = ctx.poll(async () => {
    const d = await api('/sessions', { query: { limit: 200 } });
    const all = d.sessions || [];
    const rows = all.filter((s) => (!filters.overrides || s.overrides) && (!filters.errors || s.errors_24h > 0));
    setText(empty, all.length === 0 ? t('sessions_none') : rows.length === 0 ? t('sessions_none_match') : '');
    empty.hidden = rows.length > 0;
    tbl.hidden = rows.length === 0;
    syncList(body, rows, (s) => s.session, (s) => h('tr', { 'data-session': s.session },
      h('th', { scope: 'row' }, link(sessionHref(s.session), s.session, { 'data-focus': 'open' })),
      h('td', s.upstream ? `${s.upstream}${s.current_graph === false ? ` (${t('earlier_config')})` : ''}` : t('not_bound')),
      h('td', { title: dateTime(s.last_selected_ms) }, ago(s.last_selected_ms)),
      num(int(s.requests_24h)), num(int(s.errors_24h)), num(tokens(s.tokens_24h)), num(usd(s.cost_usd_24h)),
      h('td', overridesText(s.overrides))),
    (s) => JSON.stringify([s, Math.floor((Date.now() - (s.last_selected_ms || 0)) / 60000)]));
    ctx.ready();
  }, 4000);
}

function detail(root, ctx, id) {
  const facts = h('dl.facts');
  const candidates = table('candidates', ['col_endpoint', '#col_group', 'col_route_path', 'col_reason']);
  const timeline = h('div.charts.one');
  const reqs = table('requests', ['col_time', 'col_model', 'col_provider', '#col_status', '#tokens', '#cost', '#col_ttfb', '#col_duration']);
  const result = resultLine('override-result');
  const current = {};
  const inputs = {};
  const providers = h('datalist#pin-targets');
  const profileSel = h('select#profile-select', h('option', { value: '' }, t('no_profile')));

  async function change(btn, route, body, done) {
    await busy(btn, async () => {
      try {
        await api(route, { method: 'POST', body: { session_id: id, ...body } });
        showResult(result, true, t(done));
      } catch (e) {
        showResult(result, false, `${t('action_failed')}: ${e.message}`);
      }
      await poll.now();
    });
  }

  const fieldRows = FIELDS.map(([key, label]) => {
    current[key] = h('span.current', '–');
    const inputId = `ov-${key}`;
    let input;
    if (key === 'reasoning_effort') input = h('select', { id: inputId }, h('option', { value: '' }, '–'), EFFORTS.map((e) => h('option', { value: e }, e)));
    else input = h('input', { id: inputId, type: 'text', autocomplete: 'off', spellcheck: false, list: key === 'route_target' ? 'pin-targets' : key === 'service_tier' ? 'tier-values' : null });
    inputs[key] = input;
    const set = h('button', { type: 'button', 'data-override': key, onclick: () => {
      const v = input.value.trim();
      if (!v) return input.focus();
      change(set, '/overrides/session', { [key]: v }, 'session_updated');
    } }, t('set'));
    const clear = h('button', { type: 'button', 'data-clear': key, onclick: () => change(clear, '/overrides/session', { clear: [key] }, 'override_cleared') }, t('clear'));
    return h('div.field', h('label', { for: inputId }, t(label)), current[key], input, set, clear);
  });
  current.profile = h('span.current', '–');
  const applyProfile = h('button', { type: 'button', onclick: () => change(applyProfile, '/overrides/session/profile', { profile: profileSel.value || null }, profileSel.value ? 'session_updated' : 'profile_removed') }, t('apply'));
  const reset = confirmButton(t('reset_all'), t('reset_confirm'), () => change(reset, '/overrides/session/reset', {}, 'overrides_reset'), { id: 'override-reset' });

  fill(root,
    h('div.page-head', h('h1', `${t('col_session')} `, h('code', id)), link('#/sessions', `← ${t('page_sessions')}`)),
    section('binding', facts, candidates.table),
    section('requests_over_time', timeline),
    section('overrides',
      h('form.overrides', { onsubmit: (e) => e.preventDefault() },
        fieldRows,
        h('div.field', h('label', { for: 'profile-select' }, t('ov_profile')), current.profile, profileSel, applyProfile),
        h('datalist#tier-values', TIERS.map((v) => h('option', { value: v }))),
        providers,
        h('p.actions', reset)),
      result),
    section('requests', reqs.table));

  let profilesSig = '';
  async function loadChoices() {
    const [p, prof] = await Promise.all([api('/providers'), api('/profiles')]);
    const targets = [...new Set((p.providers || []).flatMap((e) => [e.provider, e.key]))];
    fill(providers, targets.map((v) => h('option', { value: v })));
    const names = (prof.profiles || []).map((x) => x.name);
    const sig = names.join('\n');
    if (sig !== profilesSig) {
      profilesSig = sig;
      const keep = profileSel.value;
      fill(profileSel, h('option', { value: '' }, t('no_profile')), names.map((n) => h('option', { value: n }, n)));
      profileSel.value = keep;
    }
  }

  const poll = ctx.poll(async () => {
    const [s, r] = await Promise.all([
      // A session the router never bound (its requests all failed, say) is unknown here but
      // still has its ledger rows.
      api(`/sessions/${encodeURIComponent(id)}`).catch((e) => {
        if (e.status === 404) return { unknown: e.message };
        throw e;
      }),
      api('/request-ledger/recent', { query: { session: id, limit: 200 } }),
    ]);
    if (!ctx.alive()) return;
    const b = s.binding || {};
    const next = s.next || {};
    const rows = [
      ['bound_to', b.upstream || t('not_bound')],
      ['last_used', b.last_selected_ms ? `${dateTime(b.last_selected_ms)} (${ago(b.last_selected_ms)})` : '–'],
      ['binding_changed', b.last_changed_ms ? `${dateTime(b.last_changed_ms)}: ${b.change_reason || ''}` : '–'],
      ['next_goes_to', next.chosen ? `${next.chosen} (${next.why || ''})` : t('no_route')],
      ['affinity_policy', next.affinity_policy || '–'],
    ];
    if (next.continuity_broken) rows.push(['continuity', t('continuity_broken')]);
    if (s.unknown) rows.splice(0, rows.length, ['bound_to', `${t('not_bound')} (${s.unknown})`]);
    fill(facts, rows.map(([k, v]) => [h('dt', t(k)), h('dd', v)]));
    syncList(candidates.body, next.candidates || [], (c) => c.upstream, (c) => h('tr',
      h('td', c.upstream), num(c.group ?? '–'), h('td', (c.route_path || []).join(' → ')),
      h('td', c.skip_reason || c.skip?.why || (c.upstream === next.chosen ? t('chosen') : '–'))));
    const o = s.overrides || {};
    for (const [key] of FIELDS) setText(current[key], o[key] || '–');
    setText(current.profile, o.profile || '–');
    const list = (r.requests || []).slice().reverse();
    const sig = JSON.stringify(list.map((x) => x.id));
    if (timeline.dataset.sig !== sig) {
      timeline.dataset.sig = sig;
      const xs = list.map((x) => x.started_ms);
      // At least a minute wide, the requests in the middle.
      const first = xs[0] ?? Date.now();
      const last = xs[xs.length - 1] ?? first;
      const span = Math.max((last - first) * 1.04, 60000);
      const mid = (first + last) / 2;
      fill(timeline, list.length ? chart('session-timeline', {
        title: `${t('col_duration')} · ${t('n_requests', int(list.length))}`,
        x0: mid - span / 2,
        x1: mid + span / 2,
                yFmt: dur,
        width: 1000,
        series: [{
          label: t('col_duration'),
          line: false,
          values: list.map((x) => ({ x: x.started_ms, y: Number(x.duration_ms) || 0, tip: `${time(x.started_ms)} ${x.model || ''} ${x.provider || ''}.${x.endpoint || ''} ${x.status ?? x.outcome} ${dur(x.duration_ms)}` })),
        }],
      }) : h('p.muted', t('no_requests')));
      for (const [i, c] of timeline.querySelectorAll('circle.point').entries()) if (failed(list[i])) c.classList.add('bad');
    }
    syncList(reqs.body, r.requests || [], (x) => x.id, (x) => h(`tr${failed(x) ? '.bad' : ''}`,
      h('td', link(`#/requests/${encodeURIComponent(x.trace_id)}`, time(x.started_ms))),
      h('td', x.model || '–'), h('td', x.provider ? `${x.provider}.${x.endpoint || ''}` : '–'),
      num(x.status ?? x.outcome), num(tokens(x.total_tokens)), num(usd(x.cost_usd)), num(dur(x.ttfb_ms)), num(dur(x.duration_ms))));
    ctx.ready();
  }, 5000);
  ctx.poll(loadChoices, 30000);
}

export default {
  title: 'page_sessions',
  mount(root, ctx) {
    if (ctx.param) detail(root, ctx, ctx.param);
    else list(root, ctx);
  },
};
