// Routing: the route graph in force, every endpoint's live state and why routing skips it,
// runtime switch-off / on / drain per endpoint, and the entry node's pin and order in the
// config file.

import { api } from './api.js';
import { h, fill, syncList, setText } from './dom.js';
import { t } from './i18n.js';
import { time, int } from './format.js';
import { section, table, stateBadge, confirmButton, resultLine, showResult, busy } from './ui.js';

let minutes = '30';

function endpointState(u) {
  const st = u.state || {};
  const rt = st.runtime || {};
  if (rt.disabled) return { state: 'disabled', text: t('ep_disabled'), why: rt.disabled.reason, until: rt.disabled.until_ms };
  if (rt.draining) return { state: 'draining', text: t('ep_draining'), why: rt.draining.reason, until: rt.draining.until_ms };
  if (st.routable) return { state: 'routable', text: t('routable'), why: '' };
  return { state: 'skipped', text: t('skipped'), why: st.skip?.why || '' };
}

export default {
  title: 'page_routing',
  mount(root, ctx) {
    const info = h('dl.facts');
    const chosen = h('p.chosen#route-chosen', { role: 'status' });
    const tree = h('div.tree');
    const eps = table('endpoints', ['col_endpoint', 'col_host', 'col_tags', '#in_flight', 'col_state', 'col_reason', 'col_actions']);
    const result = resultLine('routing-result');
    const noEndpoints = h('p.muted', t('no_endpoints'));
    const minutesSel = h('select#switch-minutes', { onchange: () => (minutes = minutesSel.value) },
      ['5', '30', '60', '240', ''].map((m) => h('option', { value: m, selected: m === minutes }, m ? t('n_minutes', m) : t('until_switched_back'))));
    const entryBox = h('div.entry');
    const entryResult = resultLine('entry-result');
    fill(
      root,
      h('div.page-head', h('h1', t('page_routing'))),
      section('route_graph', chosen, info, tree),
      section('endpoints',
        h('p.controls', h('label', { for: 'switch-minutes' }, t('switch_for')), ' ', minutesSel),
        result, noEndpoints, eps.table),
      section('entry_node', h('p.muted', t('entry_help')), entryBox, entryResult),
    );

    let order = null; // the entry's children as being edited
    let orderDirty = false;
    let lastEntry = '';

    async function act(u, action, btn) {
      const body = { provider_id: u.provider, endpoint_id: u.endpoint };
      if (action === 'disable') {
        body.enabled = false;
        if (minutes) body.minutes = Number(minutes);
      } else if (action === 'drain') {
        body.state = 'draining';
        if (minutes) body.minutes = Number(minutes);
      } else if (u.state?.runtime?.draining) body.state = 'normal';
      else body.enabled = true;
      await busy(btn, async () => {
        try {
          const r = await api('/providers/runtime', { method: 'POST', body });
          const until = r.until_ms ? ` ${t('until')} ${time(r.until_ms)}` : '';
          showResult(result, true, `${(r.changed || []).join(', ')}: ${t(`ep_${r.state}`)}${until}`);
        } catch (e) {
          showResult(result, false, `${t('action_failed')}: ${e.message}`);
        }
        await poll.now();
      });
    }

    function row(u) {
      const st = endpointState(u);
      const rt = u.state?.runtime || {};
      const btn = (action, label, enabled) => {
        const b = h('button', { type: 'button', 'data-action': action, 'data-focus': action, disabled: !enabled, onclick: () => act(u, action, b) }, t(label));
        return b;
      };
      const tags = Object.entries(u.tags || {}).map(([k, v]) => `${k}=${v}`).join(', ');
      return h('tr', { 'data-endpoint': u.key },
        h('th', { scope: 'row' }, u.key),
        h('td', u.base_url || u.host),
        h('td', tags || '–'),
        h('td.num', int(u.state?.in_flight ?? 0)),
        h('td', stateBadge(st.state, st.text)),
        h('td.reason', [st.why, st.until ? ` (${t('until')} ${time(st.until)})` : ''].join('')),
        h('td.actions',
          btn('disable', 'act_disable', !rt.disabled),
          btn('enable', 'act_enable', !!(rt.disabled || rt.draining)),
          btn('drain', 'act_drain', !rt.draining)));
    }

    function drawEntry(g) {
      const node = (g.nodes || []).find((n) => n.name === g.entry);
      const names = node ? (node.children || []).map((c) => c.name) : [];
      if (!orderDirty || g.entry !== lastEntry) order = names;
      lastEntry = g.entry;
      const sig = JSON.stringify([g.entry, names, node?.strategy, order, orderDirty]);
      if (entryBox.dataset.sig === sig) return;
      entryBox.dataset.sig = sig;
      const save = h('button.primary', {
        type: 'button', id: 'order-save', disabled: !orderDirty,
        onclick: () => busy(save, async () => {
          try {
            await api('/routing/persisted', { method: 'POST', body: { order } });
            orderDirty = false;
            showResult(entryResult, true, t('order_saved'));
          } catch (e) {
            showResult(entryResult, false, `${t('action_failed')}: ${e.message}`);
          }
          await poll.now();
        }),
      }, t('save_order'));
      const move = (i, d) => {
        const j = i + d;
        if (j < 0 || j >= order.length) return;
        order = order.slice();
        [order[i], order[j]] = [order[j], order[i]];
        orderDirty = true;
        drawEntry(g);
        entryBox.querySelector(`[data-focus="${d < 0 ? 'up' : 'down'}-${order[j]}"]`)?.focus();
      };
      const keep = document.activeElement && entryBox.contains(document.activeElement) ? document.activeElement.dataset.focus : null;
      fill(entryBox,
        h('p', `${t('entry')}: `, h('strong', g.entry), ` (${node ? node.strategy : '–'})`),
        h('ol.order', order.map((name, i) => h('li', { 'data-child': name },
          h('span.name', name),
          h('button', { type: 'button', 'data-focus': `up-${name}`, 'aria-label': `${t('move_up')}: ${name}`, disabled: i === 0, onclick: () => move(i, -1) }, '↑'),
          h('button', { type: 'button', 'data-focus': `down-${name}`, 'aria-label': `${t('move_down')}: ${name}`, disabled: i === order.length - 1, onclick: () => move(i, 1) }, '↓'),
          confirmButton(t('pin'), t('pin_confirm', name), async () => {
            try {
              await api('/routing/persisted', { method: 'POST', body: { pin: name } });
              showResult(entryResult, true, `${t('pinned_in_config')}: ${name}`);
            } catch (e) {
              showResult(entryResult, false, `${t('action_failed')}: ${e.message}`);
            }
            await poll.now();
          }, { 'data-focus': `pin-${name}`, 'data-pin': name })))),
        h('p', save));
      if (keep) entryBox.querySelector(`[data-focus="${CSS.escape(keep)}"]`)?.focus();
    }

    function drawTree(g) {
      const byName = new Map((g.nodes || []).map((n) => [n.name, n]));
      const seen = new Set();
      const nodeEl = (n) => {
        seen.add(n.name);
        return h('li', h('span.node', n.name), ' ', h('span.muted', n.strategy),
          h('ul', (n.children || []).map((c) => {
            if (c.kind === 'node' && byName.has(c.name) && !seen.has(c.name)) return nodeEl(byName.get(c.name));
            return h('li', h('span.child', c.name), ' ', h('span.muted', c.kind), c.endpoints?.length ? h('span.eps', ` → ${c.endpoints.join(', ')}`) : null);
          })));
      };
      const entry = byName.get(g.entry);
      const roots = [entry, ...(g.nodes || []).filter((n) => n !== entry)].filter(Boolean);
      const sig = JSON.stringify(g.nodes);
      if (tree.dataset.sig !== sig) {
        tree.dataset.sig = sig;
        fill(tree, h('ul.tree-root', roots.filter((n) => !seen.has(n.name)).map(nodeEl)));
      }
      const facts = [
        ['entry', g.entry], ['affinity_policy', g.affinity_policy], ['graph_key', g.key],
        ['fallback_ttl', g.fallback_ttl_ms ?? '–'], ['config_file', g.config_path],
      ];
      const sig2 = JSON.stringify(facts);
      if (info.dataset.sig !== sig2) {
        info.dataset.sig = sig2;
        fill(info, facts.map(([k, v]) => [h('dt', t(k)), h('dd', String(v ?? '–'))]));
      }
    }

    const poll = ctx.poll(async () => {
      const [g, ex] = await Promise.all([api('/routing'), api('/routing/explain')]);
      if (!ctx.alive()) return;
      setText(chosen, ex.chosen ? `${t('next_goes_to')}: ${ex.chosen}${ex.why ? ` (${ex.why})` : ''}` : t('no_route'));
      chosen.classList.toggle('bad', !ex.chosen);
      drawTree(g);
      syncList(eps.body, g.upstreams || [], (u) => u.key, row);
      noEndpoints.hidden = (g.upstreams || []).length > 0;
      eps.table.hidden = !noEndpoints.hidden;
      drawEntry(g);
      ctx.ready();
    }, 3000);
    return () => setText(result, '');
  },
};
