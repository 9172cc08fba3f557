// Diagnostics: the relay capability probe (what Codex needs, a recommended preset; nothing
// spent) and the evidence records it and the live smoke test left.

import { api, SLOW_TIMEOUT_MS } from './api.js';
import { h, fill, syncList, setText } from './dom.js';
import { t } from './i18n.js';
import { dateTime, dur, int } from './format.js';
import { section, table, num, resultLine, showResult, busy } from './ui.js';

const PRESETS = ['default', 'chatgpt-bridge', 'imagegen-bridge', 'official-relay', 'official-imagegen'];
const COMPACTION = ['auto', 'local', 'remote-v1', 'remote-v2'];
const kept = { provider: '', endpoint: '', model: '', preset: '', compaction: 'auto', image: false, timeout: '' };

function supportClass(s) {
  return s === 'supported' ? 'good' : s === 'unsupported' || s === 'error' ? 'bad' : 'warn';
}

function report(r) {
  const probes = table('probes', ['col_probe', 'col_support', '#col_status', 'col_sent', '#col_duration', 'col_reason']);
  for (const p of r.probes || []) {
    probes.body.append(h('tr', { 'data-probe': p.probe },
      h('th', { scope: 'row' }, p.probe), h('td', h(`span.badge.${supportClass(p.support)}`, p.support), ' ', h('span.muted', p.basis || '')),
      num(p.status ?? '–'), h('td', p.sent ? `${p.sent.method} ${p.sent.path}` : '–'), num(dur(p.ms)), h('td.reason', p.reason || '–')));
  }
  const rec = r.recommendation || {};
  const presets = table('presets', ['col_preset', 'col_fit', 'col_needs', 'col_reason']);
  for (const p of r.presets || []) {
    presets.body.append(h('tr', h('th', { scope: 'row' }, p.preset), h('td', h(`span.badge.${['works', 'fits', 'proven'].includes(p.fit) ? 'good' : p.fit === 'unproven' ? 'warn' : 'bad'}`, p.fit), p.preset === rec.preset ? h('strong', ` ← ${t('recommendation')}`) : null),
      h('td', (p.needs || []).join(', ')), h('td.reason', (p.reasons || []).join('; ') || '–')));
  }
  return h('article.card.report', { 'data-report': `${r.provider}.${r.endpoint}` },
    h('h3', `${r.provider}.${r.endpoint}`, ' ', h('span.muted', r.host || '')),
    h('p', h('strong', `${t('recommendation')}: `), rec.preset || t('no_preset'), rec.confidence ? ` (${t('confidence')}: ${rec.confidence})` : ''),
    h('p.muted', r.summary || (rec.reasons || []).join('; ')),
    probes.table, presets.table);
}

export default {
  title: 'page_diagnostics',
  mount(root, ctx) {
    const provider = h('select#d-provider', h('option', { value: '' }, t('all_providers')));
    const endpoint = h('input#d-endpoint', { type: 'text', value: kept.endpoint, autocomplete: 'off' });
    const model = h('input#d-model', { type: 'text', value: kept.model, autocomplete: 'off' });
    const preset = h('select#d-preset', h('option', { value: '' }, t('preset_current')), PRESETS.map((p) => h('option', { value: p }, p)));
    const compaction = h('select#d-compaction', COMPACTION.map((p) => h('option', { value: p }, p)));
    const image = h('input#d-image', { type: 'checkbox', checked: kept.image });
    const timeout = h('input#d-timeout', { type: 'number', min: 1, max: 300, value: kept.timeout, placeholder: '15', inputMode: 'numeric' });
    preset.value = kept.preset;
    compaction.value = kept.compaction;
    const result = resultLine('caps-result');
    const reports = h('div.reports');
    const run = h('button.primary#caps-run', { type: 'submit' }, t('run_probe'));
    const form = h('form.filters#caps-form', {
      onsubmit: (e) => {
        e.preventDefault();
        Object.assign(kept, { provider: provider.value, endpoint: endpoint.value.trim(), model: model.value.trim(), preset: preset.value, compaction: compaction.value, image: image.checked, timeout: timeout.value });
        const body = { compaction: kept.compaction, image: kept.image };
        if (kept.provider) body.provider_id = kept.provider;
        if (kept.endpoint) body.endpoint_id = kept.endpoint;
        if (kept.model) body.model = kept.model;
        if (kept.preset) body.preset = kept.preset;
        if (kept.timeout) body.timeout_secs = Number(kept.timeout);
        busy(run, async () => {
          showResult(result, true, t('running'));
          try {
            const r = await api('/codex/relay-capabilities', { method: 'POST', body, timeoutMs: SLOW_TIMEOUT_MS });
            fill(reports, (r.endpoints || []).map(report));
            showResult(result, true, `${t('probe_done')}: ${t('n_endpoints', int((r.endpoints || []).length))}${r.evidence?.path ? ` · ${t('evidence')}: ${r.evidence.path}` : ''}`);
          } catch (e) {
            showResult(result, false, `${t('action_failed')}: ${e.message}`);
          }
          evidencePoll.now();
        });
      },
    },
    h('span.pair', h('label', { for: 'd-provider' }, t('provider')), provider),
    h('span.pair', h('label', { for: 'd-endpoint' }, t('col_endpoint')), endpoint),
    h('span.pair', h('label', { for: 'd-model' }, t('col_model')), model),
    h('span.pair', h('label', { for: 'd-preset' }, t('col_preset')), preset),
    h('span.pair', h('label', { for: 'd-compaction' }, t('compaction')), compaction),
    h('span.pair', h('label', { for: 'd-timeout' }, t('timeout_s')), timeout),
    h('label.check', image, t('probe_image')),
    run);
    const ev = table('evidence', ['col_time', 'col_kind', 'col_endpoint', 'col_model', 'col_summary']);
    const evEmpty = h('p.muted', t('no_evidence'));
    const runtime = h('dl.facts#runtime');
    const reloadResult = resultLine('reload-result');
    const reload = h('button#config-reload', {
      type: 'button',
      onclick: () => busy(reload, async () => {
        try {
          const r = await api('/runtime/reload', { method: 'POST', timeoutMs: SLOW_TIMEOUT_MS });
          showResult(reloadResult, r.reloaded !== false, `${t(r.reloaded === false ? 'reload_failed' : 'reloaded')}: ${r.message || ''}`);
        } catch (e) {
          showResult(reloadResult, false, `${t('reload_failed')}: ${e.message}`);
        }
      }),
    }, t('reload_config'));
    fill(root,
      h('div.page-head', h('h1', t('page_diagnostics'))),
      section('runtime', runtime, h('p', reload), reloadResult),
      section('verdicts', h('p.muted', t('probe_help')), form, result, reports),
      section('evidence', evEmpty, ev.table));

    ctx.onSnapshot((snap) => {
      const rt = snap.runtime || {};
      const led = rt.ledger || {};
      const rows = [
        ['version', rt.version], ['pid', rt.pid], ['uptime', dur(rt.uptime_ms)],
        ['config_file', rt.config_path], ['preset', rt.preset || t('no_preset')], ['proxy_address', rt.proxy],
        ['entry', rt.entry], ['ledger', t('ledger_counts', int(led.written), int(led.failed), int(led.dropped))],
      ];
      const sig = JSON.stringify(rows.map((r) => (r[0] === 'uptime' ? '' : r[1])));
      if (runtime.dataset.sig !== sig || !runtime.firstChild) {
        runtime.dataset.sig = sig;
        fill(runtime, rows.map(([k, v]) => [h('dt', t(k)), h('dd', { dataset: { fact: k } }, String(v ?? '–'))]));
      } else {
        setText(runtime.querySelector('[data-fact="uptime"]'), dur(rt.uptime_ms));
      }
    });
    let providersSig = '';
    ctx.poll(async () => {
      const p = await api('/providers');
      const names = [...new Set((p.providers || []).map((e) => e.provider))];
      if (names.join('\n') !== providersSig) {
        providersSig = names.join('\n');
        fill(provider, h('option', { value: '' }, t('all_providers')), names.map((n) => h('option', { value: n }, n)));
        provider.value = names.includes(kept.provider) ? kept.provider : '';
      }
    }, 30000);
    const evidencePoll = ctx.poll(async () => {
      const d = await api('/codex/relay-evidence', { query: { limit: 20 } });
      if (!ctx.alive()) return;
      const recs = d.records || [];
      evEmpty.hidden = recs.length > 0;
      ev.table.hidden = recs.length === 0;
      syncList(ev.body, recs, (r) => r.id, (r) => h('tr',
        h('td', dateTime(r.at_ms)), h('td', r.kind), h('td', `${r.provider || r.payload?.provider || ''}.${r.endpoint || ''} ${r.host ? `(${r.host})` : ''}`),
        h('td', r.model || '–'), h('td.reason', r.payload?.summary || r.payload?.verdict || r.summary || '–')));
      setText(evEmpty, recs.length ? '' : t('no_evidence'));
      ctx.ready();
    }, 20000);
  },
};
