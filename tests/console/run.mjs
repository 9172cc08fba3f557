// The web console in headless Chromium (Debian's, never a downloaded one), driven by
// playwright-core. tests/e2e_console.rs starts a real helper with mock relays and real ledger
// rows and runs this with:
//   CONSOLE_URL   the console (the admin base), e.g. http://127.0.0.1:4567/
//   ADMIN_TOKEN   the helper's admin token
//   SCREENSHOTS   a folder: <page>.png for every page, token-prompt.png, and a few more
//   FACTS         JSON: {session:{id,requests}, providers, endpoint_to_disable, balance_provider,
//                 balance_after_refresh:{state,amount}, requests_total, window_requests, …}
//   CHROMIUM      the browser (default /usr/bin/chromium)
// One line per check; exit 1 when any fails. Nothing leaves the machine: the console and the
// reverse proxy this starts are on loopback, and the browser is told not to phone home.

import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const need = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`run.mjs: ${name} is not set (tests/e2e_console.rs sets it)`);
    process.exit(2);
  }
  return v;
};
const CONSOLE_URL = new URL(need('CONSOLE_URL'));
const TOKEN = need('ADMIN_TOKEN');
const SHOTS = need('SCREENSHOTS');
const FACTS = JSON.parse(need('FACTS'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PAGES = ['overview', 'routing', 'sessions', 'requests', 'usage', 'diagnostics'];
const WAIT = 15000;
fs.mkdirSync(SHOTS, { recursive: true });

let passed = 0;
let failed = 0;
async function check(name, fn) {
  const started = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${(e && e.message) || e}`.split('\n').slice(0, 6).join('\n'));
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message);
}

/** GET a route of the admin API from here (no browser), with the token. */
function apiGet(route) {
  return new Promise((resolve, reject) => {
    const url = new URL(`__codex_helper/api/v1${route}`, CONSOLE_URL);
    const req = http.get(url, { headers: { authorization: `Bearer ${TOKEN}`, accept: 'application/json' } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`GET ${route}: ${res.statusCode} ${body}`));
        resolve(JSON.parse(body));
      });
    });
    req.on('error', reject);
    req.setTimeout(10000, () => req.destroy(new Error(`GET ${route}: timed out`)));
  });
}

/** Records every console error or warning, page error, failed request and error response. */
function watch(page, label, deliberate = () => false) {
  const problems = [];
  page.on('console', (m) => {
    if (m.type() !== 'error' && m.type() !== 'warning') return;
    const at = m.location()?.url || '';
    if (/Failed to load resource/.test(m.text()) && deliberate(at)) return;
    problems.push(`${label}: console ${m.type()}: ${m.text()} ${at}`);
  });
  page.on('pageerror', (e) => problems.push(`${label}: page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`${label}: request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText || ''}`));
  page.on('response', (r) => {
    if (r.status() >= 400 && !deliberate(r.url(), r.status())) problems.push(`${label}: ${r.status()} for ${r.request().method()} ${r.url()}`);
  });
  return problems;
}

function noProblems(problems, from = 0) {
  const list = problems.slice(from);
  assert(list.length === 0, `${list.length} problem(s):\n  ${list.slice(0, 8).join('\n  ')}`);
}

async function ready(page, name) {
  await page.waitForSelector(`main#page[data-page="${name}"][data-ready="true"]`, { timeout: WAIT });
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** Polls fn in the page until it returns something truthy. */
async function until(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT, polling: 200 });
  } catch {
    throw new Error(`timed out waiting for ${what}`);
  }
}

// ---- a reverse proxy under a path prefix, as people put in front of a headless box ----------
function startProxy() {
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push(req.url);
    if (!req.url.startsWith('/codex/')) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      return res.end('not under /codex/');
    }
    const headers = { ...req.headers };
    headers.host = CONSOLE_URL.host;
    headers['x-forwarded-for'] = '203.0.113.9';
    headers['x-forwarded-host'] = req.headers.host || '';
    headers['x-forwarded-proto'] = 'http';
    headers['x-forwarded-prefix'] = '/codex';
    const upstream = http.request({
      host: CONSOLE_URL.hostname,
      port: CONSOLE_URL.port,
      method: req.method,
      path: req.url.slice('/codex'.length),
      headers,
    }, (up) => {
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    });
    upstream.on('error', (e) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(String(e));
    });
    req.pipe(upstream);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, seen, port: server.address().port })));
}

// ---- a proxy that says nothing: nginx's default (Host rewritten, no X-Forwarded-*) ----------
function startSilentProxy() {
  const server = http.createServer((req, res) => {
    const headers = { ...req.headers, host: CONSOLE_URL.host };
    const upstream = http.request({ host: CONSOLE_URL.hostname, port: CONSOLE_URL.port, method: req.method, path: req.url, headers }, (up) => {
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    });
    upstream.on('error', (e) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(String(e));
    });
    req.pipe(upstream);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: server.address().port })));
}

// ---- another site on this machine, trying to drive the helper from a visitor's browser -------
function startForeignSite() {
  const api = new URL('__codex_helper/api/v1/', CONSOLE_URL).href;
  const page = `<!doctype html><meta charset="utf-8"><title>foreign</title><script>
    window.attempts = (async () => {
      const out = {};
      try {
        const r = await fetch(${JSON.stringify(api)} + 'providers', { headers: { 'x-codex-helper-console': '1' } });
        out.read = 'status ' + r.status;
      } catch (e) { out.read = 'blocked: ' + e.name; }
      try {
        await fetch(${JSON.stringify(api)} + 'providers/runtime', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' },
          body: JSON.stringify({ provider_id: 'a', endpoint_id: 'default', enabled: false }) });
        out.write = 'sent';
      } catch (e) { out.write = 'blocked: ' + e.name; }
      return out;
    })();
  </script>`;
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: server.address().port })));
}

// ---- the run ---------------------------------------------------------------------------------
await check('i18n: every text has English and Chinese', async () => {
  const mod = await import(pathToFileURL(path.join(here, '../../web/console/assets/i18n.js')).href);
  const missing = mod.missing();
  assert(Object.keys(mod.TEXTS).length > 50, 'the text table is nearly empty');
  assert(missing.length === 0, `untranslated: ${missing.join(', ')}`);
});

await check('the console files are small', async () => {
  const dir = path.join(here, '../../web/console');
  let total = 0;
  for (const f of ['index.html', ...fs.readdirSync(path.join(dir, 'assets')).map((a) => `assets/${a}`)]) total += fs.statSync(path.join(dir, f)).size;
  assert(total < 200 * 1024, `${total} bytes`);
});

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  chromiumSandbox: false,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    // box.test: a name for this machine that is not a loopback name, as a remote visitor's is.
    '--host-resolver-rules=MAP box.test 127.0.0.1'],
  timeout: 30000,
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US', timezoneId: 'Europe/Paris' });
const page = await context.newPage();
const problems = watch(page, 'console');
let requestTrace = null;

try {
  await check('every page loads with no console error, warning or failed request', async () => {
    await page.goto(CONSOLE_URL.href, { waitUntil: 'load', timeout: WAIT });
    await ready(page, 'overview');
    for (const name of PAGES) {
      await page.click(`a[data-page="${name}"]`);
      await ready(page, name);
      await page.waitForTimeout(300);
      await shot(page, name);
    }
    const tz = await page.textContent('#tz');
    assert(/Europe\/Paris/.test(tz) && /(CET|CEST|GMT\+\d)/.test(tz), `the header's time zone: ${tz}`);
    noProblems(problems);
  });

  await check('the requests chart: 60 points for 1h (summing to the window\'s requests), 96 for 24h, 30 for 30d', async () => {
    await page.click('a[data-page="overview"]');
    await ready(page, 'overview');
    const sel = 'svg.chart[data-chart="requests"] circle.point';
    const values = await page.$$eval(sel, (els) => els.map((e) => Number(e.getAttribute('data-value'))));
    assert(values.length === 60, `${values.length} points`);
    const sum = values.reduce((a, b) => a + b, 0);
    assert(sum === FACTS.window_requests, `the points sum to ${sum}, the window had ${FACTS.window_requests}`);
    // The other windows re-fetch the series: 96 quarter hours, 30 days, the same requests.
    for (const [w, n] of [['24h', 96], ['30d', 30], ['1h', 60]]) {
      await page.click(`button[data-window="${w}"]`);
      await until(page, `the ${w} chart with ${n} points`, ([sel, k]) => document.querySelectorAll(sel).length === k, [sel, n]);
      const total = await page.$$eval(sel, (els) => els.reduce((a, e) => a + Number(e.dataset.value), 0));
      assert(total === FACTS.requests_total, `${w}: the points sum to ${total}, the ledger has ${FACTS.requests_total}`);
    }
  });

  await check('the session timeline has one point per request of the session', async () => {
    await page.goto(`${CONSOLE_URL.href}#/sessions/${encodeURIComponent(FACTS.session.id)}`);
    await ready(page, 'sessions');
    const n = await page.$$eval('svg.chart[data-chart="session-timeline"] circle.point', (els) => els.length);
    assert(n === FACTS.session.requests, `${n} points, the session made ${FACTS.session.requests} requests`);
    await shot(page, 'session-detail');
  });

  await check('a session override acts (effort set, then every override reset)', async () => {
    const id = FACTS.session.id;
    const effort = () => page.$eval('#ov-reasoning_effort', (e) => e.closest('.field').querySelector('.current').textContent);
    await page.selectOption('#ov-reasoning_effort', 'high');
    await page.click('button[data-override="reasoning_effort"]');
    await until(page, 'the effort to read high', () => document.querySelector('#ov-reasoning_effort').closest('.field').querySelector('.current').textContent === 'high');
    const all = await apiGet('/overrides/session');
    const mine = (all.sessions || []).find((x) => x.session === id || x.session_id === id);
    assert(mine && JSON.stringify(mine).includes('"high"'), `GET /overrides/session: ${JSON.stringify(all)}`);
    await page.click('#override-reset');
    await page.click('#override-reset'); // the second press within 3 s confirms
    await until(page, 'the effort to be cleared', () => document.querySelector('#ov-reasoning_effort').closest('.field').querySelector('.current').textContent === '–');
    assert((await effort()) === '–', 'not reset');
  });

  await check('the requests table lists the ledger and a row opens its chain', async () => {
    await page.click('a[data-page="requests"]');
    await ready(page, 'requests');
    const rows = await page.$$eval('tr[data-trace]', (els) => els.map((e) => e.dataset.trace));
    assert(rows.length === FACTS.requests_total, `${rows.length} rows, the ledger has ${FACTS.requests_total}`);
    // The failover's request when the harness made one: its chain has the failed attempt first.
    const failover = FACTS.failover_session
      ? await page.$$eval('tr[data-trace]', (els, id) => els.find((e) => e.textContent.includes(id))?.dataset.trace, FACTS.failover_session)
      : null;
    assert(!FACTS.failover_session || failover, `no row of the failover's session ${FACTS.failover_session}`);
    requestTrace = failover || rows[0];
    // Keyboard: the row's link takes Enter.
    await page.focus(`tr[data-trace="${requestTrace}"] a`);
    await page.keyboard.press('Enter');
    await until(page, 'the chain page', (id) => [...document.querySelectorAll('main#page[data-page="requests"][data-ready="true"]')].some((m) => m.dataset.param === id), requestTrace);
    const attempts = await page.$$eval('main#page section:nth-of-type(2) tbody tr', (els) => els.map((e) => e.textContent));
    assert(attempts.length >= 1, 'no attempt shown');
    if (failover) assert(attempts.length === 2 && /500/.test(attempts[0]), `the failover's attempts: ${attempts.join(' | ')}`);
    const chosen = await page.$eval('main#page section:nth-of-type(3) dl dd', (e) => e.textContent);
    assert((FACTS.providers || []).some((p) => chosen === `${p}.default`), `the route decision's chosen upstream: ${chosen}`);
    await shot(page, 'request-detail');
  });

  await check('the requests filters work and a poll keeps what is being typed', async () => {
    await page.click('a[data-page="requests"]');
    await ready(page, 'requests');
    if (FACTS.error_session) {
      await page.fill('#f-session', FACTS.error_session);
      await page.check('#f-errors');
      await page.press('#f-session', 'Enter');
      await until(page, `only ${FACTS.error_session}'s failed request`, (id) => {
        const rows = [...document.querySelectorAll('tr[data-trace]')];
        return rows.length === 1 && rows[0].textContent.includes(id);
      }, FACTS.error_session);
    }
    await page.fill('#f-model', 'typed-but-not-sent');
    await page.focus('#f-model');
    await page.waitForTimeout(5600); // past a poll of the page (5 s) and of the snapshot (2 s)
    const kept = await page.evaluate(() => [document.activeElement?.id, document.querySelector('#f-model').value]);
    assert(kept[0] === 'f-model' && kept[1] === 'typed-but-not-sent', `after a poll: focus on ${kept[0]}, value ${kept[1]}`);
    await page.fill('#f-model', '');
    await page.click('#request-filters button[type="button"]');
  });

  await check('the config reload acts and says so', async () => {
    await page.click('a[data-page="diagnostics"]');
    await ready(page, 'diagnostics');
    await page.waitForSelector('#runtime [data-fact="version"]', { timeout: WAIT });
    await page.click('#config-reload');
    await until(page, 'the reload result', () => document.querySelector('#reload-result.good'));
  });

  await check('a balance refresh acts and the page shows its result', async () => {
    const p = FACTS.balance_provider;
    const want = FACTS.balance_after_refresh || { state: 'ok' };
    await page.click('a[data-page="usage"]');
    await ready(page, 'usage');
    for (const prov of FACTS.providers || []) {
      await page.waitForSelector(`[data-provider="${prov}"] [data-balance-state]`, { timeout: WAIT });
    }
    const stateSel = `[data-provider="${p}"] [data-balance-state]`;
    const before = await page.$eval(stateSel, (e) => e.dataset.balanceState).catch(() => 'absent');
    await page.waitForSelector(`#balance-provider option[value="${p}"]`, { state: 'attached', timeout: WAIT });
    await page.selectOption('#balance-provider', p);
    await page.click('button#balance-refresh');
    await until(page, `${p}'s balance state to read ${want.state}`, ([sel, state]) => document.querySelector(sel)?.dataset.balanceState === state, [stateSel, want.state]);
    await until(page, 'the refresh result line', () => document.querySelector('#balance-result')?.dataset.done);
    if (want.amount) {
      await until(page, `${p}'s money left to show ${want.amount}`, ([prov, amount]) => (document.querySelector(`[data-provider="${prov}"] .money`)?.textContent || '').includes(amount), [p, want.amount]);
      const pts = await page.$$eval(`svg.chart[data-chart="forecast-${p}"] circle.point`, (els) => els.length);
      assert(pts > 1, `the forecast chart of ${p} has ${pts} points`);
    }
    assert(before !== want.state, `${p}'s balance already read ${before} before the refresh`);
    const said = await page.textContent('#balance-result');
    assert(/\b1 refreshed\b/.test(said) && /\b0 failed\b/.test(said), `the refresh result line: ${said}`);
    console.log(`     ${p}: ${before} -> ${want.state}`);
    await shot(page, 'usage-after-refresh');
  });

  await check('a runtime disable acts: the row and GET /providers say disabled', async () => {
    const key = FACTS.endpoint_to_disable;
    await page.click('a[data-page="routing"]');
    await ready(page, 'routing');
    const row = `[data-endpoint="${key}"]`;
    const before = await page.$eval(`${row} [data-state]`, (e) => e.dataset.state);
    assert(before !== 'disabled', `${key} is disabled already`);
    await page.click(`${row} button[data-action="disable"]`);
    await until(page, `${key}'s state to read disabled`, (sel) => document.querySelector(sel)?.dataset.state === 'disabled', `${row} [data-state]`);
    const providers = await apiGet('/providers');
    const ep = (providers.providers || []).find((e) => e.key === key);
    assert(ep, `GET /providers has no ${key}`);
    assert(ep.routable === false && ep.skip?.detail?.kind === 'runtime_disabled', `GET /providers says ${JSON.stringify(ep)}`);
    await shot(page, 'routing-after-disable');
  });

  await check('the entry order is saved in the config file (and put back)', async () => {
    const children = async () => {
      const g = await apiGet('/routing');
      return (g.nodes || []).find((n) => n.name === g.entry).children.map((c) => c.name);
    };
    const before = await children();
    assert(before.length >= 2, `the entry has ${before.length} children`);
    const flip = async (first) => {
      await page.click(`ol.order li[data-child="${first}"] button[data-focus="down-${first}"]`);
      await page.click('#order-save');
      await until(page, 'the saved order', () => /./.test(document.querySelector('#entry-result.good')?.textContent || ''));
      await page.evaluate(() => document.querySelector('#entry-result').classList.remove('good'));
    };
    await flip(before[0]);
    const after = await children();
    assert(after[0] === before[1] && after[1] === before[0], `the entry's order is ${after.join(', ')}`);
    await until(page, 'the page to show the saved order', (want) => [...document.querySelectorAll('ol.order li')].map((li) => li.dataset.child).join(',') === want, after.join(','));
    await flip(after[0]);
    const back = await children();
    assert(back.join(',') === before.join(','), `put back: ${back.join(', ')}`);
  });

  await check('the relay capability probe runs and shows its results, then the evidence', async () => {
    await page.click('a[data-page="diagnostics"]');
    await ready(page, 'diagnostics');
    const p = FACTS.balance_provider || FACTS.providers[0];
    await page.selectOption('#d-provider', p);
    await page.fill('#d-timeout', '5');
    await page.click('#caps-run');
    try {
      await page.waitForSelector(`article.report[data-report^="${p}."] tr[data-probe="responses"]`, { timeout: 30000 });
    } catch {
      throw new Error(`no report for ${p}: ${await page.textContent('#caps-result')}`);
    }
    await until(page, 'the evidence record of the probe', (prov) => [...document.querySelectorAll('main#page section:last-of-type tbody tr')].some((tr) => tr.textContent.includes(`${prov}.`)), p);
    await shot(page, 'diagnostics-after-probe');
  });

  await check('the dark theme follows the system', async () => {
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.click('a[data-page="overview"]');
    await ready(page, 'overview');
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const [r, g, b] = bg.match(/\d+/g).map(Number);
    assert(r + g + b < 150, `the dark background is ${bg}`);
    await shot(page, 'overview-dark');
    await page.emulateMedia({ colorScheme: 'light' });
  });

  await check('both languages render (中文 nav), and back to English', async () => {
    const on = await page.getAttribute('main#page', 'data-page');
    await page.selectOption('#lang-select', 'zh');
    await until(page, 'the Chinese nav', () => document.querySelector('a[data-page="overview"]').textContent === '总览');
    await ready(page, on);
    const nav = await page.$$eval('#nav a', (els) => els.map((e) => e.textContent));
    assert(nav.every((t) => /[\u4e00-\u9fff]/.test(t)), `nav: ${nav.join(' ')}`);
    for (const name of PAGES) {
      await page.click(`a[data-page="${name}"]`);
      await ready(page, name);
    }
    await page.click('a[data-page="usage"]');
    await ready(page, 'usage');
    await shot(page, 'usage-zh');
    await page.click('a[data-page="overview"]');
    await ready(page, 'overview');
    await shot(page, 'overview-zh');
    await page.selectOption('#lang-select', 'en');
    await until(page, 'the English nav', () => document.querySelector('a[data-page="overview"]').textContent === 'Overview');
  });

  await check('keyboard: Tab reaches the nav, Enter switches page, keys 1–6 too, ? shows the keys', async () => {
    // A fresh tab: the keyboard starts at the top of the page.
    const kp = await context.newPage();
    const mine = watch(kp, 'keyboard');
    try {
      await kp.goto(`${CONSOLE_URL.href}#/diagnostics`, { waitUntil: 'load', timeout: WAIT });
      await ready(kp, 'diagnostics');
      let onNav = null;
      for (let i = 0; i < 12 && onNav !== 'sessions'; i++) {
        await kp.keyboard.press('Tab');
        onNav = await kp.evaluate(() => (document.activeElement?.closest('#nav') ? document.activeElement.dataset.page : null));
      }
      assert(onNav === 'sessions', 'Tab never reached the Sessions link');
      const ring = await kp.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
      assert(ring !== 'none', 'the focused link shows no focus ring');
      await kp.keyboard.press('Enter');
      await ready(kp, 'sessions');
      await kp.keyboard.press('5');
      await ready(kp, 'usage');
      await kp.keyboard.press('1');
      await ready(kp, 'overview');
      await kp.keyboard.press('?');
      await kp.waitForSelector('dialog#help[open]', { timeout: WAIT });
      await kp.keyboard.press('Escape');
      await kp.waitForSelector('dialog#help:not([open])', { state: 'attached', timeout: WAIT });
      noProblems(mine);
    } finally {
      kp.removeAllListeners();
      await kp.close();
    }
  });

  await check('no console error, warning or failed request in the whole run', async () => noProblems(problems));

  await check('on this machine a stale token is dropped and the page loads without a prompt', async () => {
    // A tab that kept a token from an earlier run: in storage before the page's first script.
    const staleCtx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
    await staleCtx.addInitScript(() => {
      if (!sessionStorage.getItem('seeded')) {
        sessionStorage.setItem('seeded', '1');
        sessionStorage.setItem('codex-helper-admin-token', 'stale-token-from-before-0123');
      }
    });
    const sp = await staleCtx.newPage();
    const mine = watch(sp, 'stale token', (u, status) => u.includes('/__codex_helper/api/v1/') && (status === undefined || status === 401));
    try {
      await sp.goto(CONSOLE_URL.href, { waitUntil: 'load', timeout: WAIT });
      await ready(sp, 'overview');
      const prompt = await sp.isVisible('#token-form');
      assert(!prompt, 'the token prompt trapped a page that needs no token');
      const kept = await sp.evaluate(() => sessionStorage.getItem('codex-helper-admin-token'));
      assert(kept === null, `the stale token is still kept: ${kept}`);
      noProblems(mine);
    } finally {
      await staleCtx.close();
    }
  });

  await check('a page of another site cannot read or drive the admin API', async () => {
    const site = await startForeignSite();
    const fp = await context.newPage();
    try {
      await fp.goto(`http://127.0.0.1:${site.port}/`, { waitUntil: 'load', timeout: WAIT });
      const got = await fp.evaluate(() => window.attempts);
      assert(/^blocked/.test(got.read), `the foreign page read the API: ${got.read}`);
      const providers = await apiGet('/providers');
      const a = (providers.providers || []).find((e) => e.key === 'a.default');
      assert(a && a.routable === true, `the foreign page's disable acted: ${JSON.stringify(a)}`);
    } finally {
      await fp.close();
      site.server.close();
    }
  });

  // ---- behind a reverse proxy under /codex/: remote, so the token is asked --------------------
  const proxy = await startProxy();
  try {
    const remote = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US', timezoneId: 'Europe/Paris' });
    const rp = await remote.newPage();
    const api = (u) => u.includes('/codex/__codex_helper/api/v1/');
    const remoteProblems = watch(rp, 'proxied', (u, status) => api(u) && (status === undefined || status === 401 || status === 403));
    const base = `http://127.0.0.1:${proxy.port}/codex/`;
    await check('under /codex/ behind a proxy the token prompt appears', async () => {
      await rp.goto(base, { waitUntil: 'load', timeout: WAIT });
      await rp.waitForSelector('#token-form #token-input[type="password"]', { state: 'visible', timeout: WAIT });
      const ready = await rp.getAttribute('main#page', 'data-ready');
      assert(ready !== 'true', 'the page claims data before the token');
      await shot(rp, 'token-prompt');
    });
    await check('a wrong token shows the prompt again with the helper\'s word', async () => {
      await rp.fill('#token-input', 'not-the-token-0123456789');
      await rp.click('#token-form button[type="submit"]');
      await until(rp, 'the prompt again, saying the token was refused', () => document.querySelector('#token-reason')?.dataset.reason === 'refused');
      await rp.waitForSelector('#token-form', { state: 'visible', timeout: WAIT });
    });
    await check('a token the helper no longer knows is dropped, not sent forever', async () => {
      // A tab that kept a token from an earlier run of the helper: it is refused once, forgotten,
      // and the prompt asks for the new one (instead of every call failing with bad_token).
      await rp.evaluate(() => sessionStorage.setItem('codex-helper-admin-token', 'stale-token-from-before-0123'));
      await rp.reload({ waitUntil: 'load' });
      await rp.waitForSelector('#token-form #token-input', { state: 'visible', timeout: WAIT });
      const kept = await rp.evaluate(() => sessionStorage.getItem('codex-helper-admin-token'));
      assert(kept === null, `the stale token is still kept: ${kept}`);
      const reason = await rp.getAttribute('#token-reason', 'data-reason');
      assert(reason === 'refused', `the prompt says ${reason}`);
    });
    await check('the right token loads the Overview with data through the proxy', async () => {
      await rp.fill('#token-input', TOKEN);
      await rp.click('#token-form button[type="submit"]');
      await ready(rp, 'overview');
      const n = await rp.$$eval('svg.chart[data-chart="requests"] circle.point', (els) => els.length);
      assert(n === 60, `${n} points`);
      const sum = await rp.$$eval('svg.chart[data-chart="requests"] circle.point', (els) => els.reduce((a, e) => a + Number(e.dataset.value), 0));
      assert(sum === FACTS.window_requests, `the points sum to ${sum}`);
      await rp.click('a[data-page="routing"]');
      await ready(rp, 'routing');
      noProblems(remoteProblems);
      const outside = proxy.seen.filter((u) => !u.startsWith('/codex/'));
      assert(outside.length === 0, `requests outside the prefix: ${outside.join(', ')}`);
      await shot(rp, 'overview-proxied');
    });
    await remote.close();
  } finally {
    proxy.server.close();
  }

  // ---- behind a proxy that says nothing, opened by a name that is not this machine's --------
  const silent = await startSilentProxy();
  try {
    const remote = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' });
    const sp = await remote.newPage();
    const silentProblems = watch(sp, 'silent proxy', (u, status) => u.includes('/__codex_helper/api/v1/') && (status === undefined || status === 403));
    await check('behind a proxy that adds no X-Forwarded-For the token is still asked', async () => {
      await sp.goto(`http://box.test:${silent.port}/`, { waitUntil: 'load', timeout: WAIT });
      await sp.waitForSelector('#token-form #token-input', { state: 'visible', timeout: WAIT });
      await until(sp, 'the helper\'s token_required', () => /token_required/.test(document.querySelector('#token-message')?.textContent || ''));
      await sp.fill('#token-input', TOKEN);
      await sp.click('#token-form button[type="submit"]');
      await ready(sp, 'overview');
      noProblems(silentProblems);
    });
    await remote.close();
  } finally {
    silent.server.close();
  }
} finally {
  await browser.close();
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
