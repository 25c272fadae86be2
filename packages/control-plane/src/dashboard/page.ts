/**
 * The spend dashboard the admin port serves at `/` and `/dashboard`: one self-contained page
 * (inline CSS and vanilla JS, charts drawn as inline SVG, no external resources) reading the admin
 * JSON API — `/v1/usage`, `/v1/usage/series`, `/v1/limits`, `/v1/sidecars` — every 10 s. The
 * response-cache panel reads the same `/v1/usage` totals (`cacheHits`, `cacheSavedMicros`).
 *
 * The page is public; the data is not: when the API answers 401/403 the page asks for a token,
 * keeps it in sessionStorage and sends it as `Authorization: Bearer`. A `#token=…` fragment is
 * taken once and removed from the location. Strings from the API only ever reach the DOM as text
 * nodes or attribute values (never as markup).
 */

const STYLE = String.raw`
:root {
  --bg: #f4f6fa; --card: #fff; --ink: #1d2433; --muted: #667085; --line: #e4e7ec; --soft: #f0f2f6;
  --accent: #3d5afe; --ok: #12b76a; --warn: #f79009; --bad: #e5484d;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--ink); background: var(--bg);
}
* { box-sizing: border-box; }
body { margin: 0; }
header {
  display: flex; flex-wrap: wrap; align-items: center; gap: 12px 20px; padding: 14px 24px;
  background: #141a2e; color: #fff;
}
.brand { font-size: 18px; font-weight: 650; letter-spacing: .2px; margin-right: auto; }
.brand small { font-weight: 400; color: #aab3c5; margin-left: 8px; font-size: 14px; }
.controls { display: flex; flex-wrap: wrap; align-items: center; gap: 10px 16px; }
.controls .label { color: #aab3c5; font-size: 12px; text-transform: uppercase; letter-spacing: .6px; margin-right: 6px; }
.seg { display: inline-flex; border: 1px solid #3a4463; border-radius: 8px; overflow: hidden; }
.seg button { background: transparent; color: #d5dbe8; border: 0; padding: 5px 11px; font: inherit; cursor: pointer; }
.seg button + button { border-left: 1px solid #3a4463; }
.seg button[aria-pressed="true"] { background: var(--accent); color: #fff; }
button.plain { background: #26304d; color: #fff; border: 1px solid #3a4463; border-radius: 8px; padding: 5px 12px; font: inherit; cursor: pointer; }
#status { font-size: 12px; color: #aab3c5; min-width: 150px; }
#status.error { color: #ff8a8e; }
main { display: grid; grid-template-columns: repeat(12, minmax(0, 1fr)); gap: 16px; padding: 18px 24px 8px; max-width: 1600px; margin: 0 auto; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 14px 16px 16px; min-width: 0; box-shadow: 0 1px 2px rgba(16, 24, 40, .04); }
.card h2 { margin: 0 0 10px; font-size: 15px; font-weight: 650; display: flex; align-items: baseline; gap: 8px; }
.card h2 .sub { font-size: 12px; font-weight: 400; color: var(--muted); }
.span-12 { grid-column: span 12; } .span-8 { grid-column: span 8; } .span-6 { grid-column: span 6; } .span-4 { grid-column: span 4; }
@media (max-width: 1000px) { .span-8, .span-6, .span-4 { grid-column: span 12; } }
.kpis { display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 12px; padding: 12px 16px; }
.kpi .k { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .5px; }
.kpi .v { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; }
.kpi .d { font-size: 12px; color: var(--muted); }
.muted { color: var(--muted); }
.empty { color: var(--muted); padding: 12px 0; }
.error-text { color: var(--bad); }
.chart svg { display: block; width: 100%; }
.chart text { font-size: 11px; fill: var(--muted); font-variant-numeric: tabular-nums; }
.chart .grid-line { stroke: var(--line); }
.chart .axis-line { stroke: #c7ccd6; }
.chart .bar:hover { opacity: .8; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 16px; margin-top: 8px; font-size: 12.5px; }
.legend .item { display: inline-flex; align-items: center; gap: 6px; }
.swatch { width: 10px; height: 10px; border-radius: 3px; display: inline-block; flex: none; }
table { width: 100%; border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: 11.5px; text-transform: uppercase; letter-spacing: .4px; padding: 6px 7px; border-bottom: 1px solid var(--line); white-space: nowrap; }
td { padding: 6px 7px; border-bottom: 1px solid var(--soft); vertical-align: middle; }
tr:last-child td { border-bottom: 0; }
th.num, td.num { text-align: right; white-space: nowrap; }
td.name { font-weight: 550; white-space: nowrap; }
.scroll { overflow-x: auto; }
td.share { width: 22%; min-width: 96px; }
.meter { display: flex; align-items: center; gap: 8px; }
.track { flex: 1; height: 8px; border-radius: 4px; background: var(--soft); overflow: hidden; min-width: 40px; }
.fill { height: 100%; border-radius: 4px; background: var(--accent); }
.fill.ok { background: var(--ok); } .fill.warn { background: var(--warn); } .fill.bad { background: var(--bad); }
.meter .pct { font-size: 12px; color: var(--muted); width: 40px; text-align: right; flex: none; }
.more { font-size: 12px; color: var(--muted); margin-top: 6px; }
.limit { padding: 10px 0; border-bottom: 1px solid var(--soft); }
.limit:last-child { border-bottom: 0; padding-bottom: 0; }
.limit:first-child { padding-top: 0; }
.limit .title { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; }
.limit .id { font-weight: 600; overflow-wrap: anywhere; }
.badge { font-size: 11px; padding: 1px 7px; border-radius: 10px; background: var(--soft); color: #475467; white-space: nowrap; }
.badge.shadow { background: #fef0c7; color: #93370d; }
.badge.bad { background: #fee4e2; color: #b42318; }
.limit .note { font-size: 12px; color: var(--muted); margin: 3px 0 6px; }
.key { display: grid; grid-template-columns: minmax(80px, 38%) 1fr; gap: 10px; align-items: center; font-size: 12.5px; margin-top: 5px; }
.key .kname { overflow-wrap: anywhere; }
.key .amount { font-size: 11.5px; color: var(--muted); }
.cache-kpis { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 12px; margin-bottom: 10px; }
.cache-note { font-size: 12px; color: var(--muted); margin-top: 8px; }
.chips { display: flex; flex-wrap: wrap; gap: 6px; margin-bottom: 10px; }
.chip { font-size: 12px; padding: 3px 9px; border-radius: 12px; background: #eef1ff; color: #283593; font-variant-numeric: tabular-nums; }
.chip.none { background: var(--soft); color: var(--muted); }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.nack { color: var(--bad); font-size: 12.5px; }
.pending { color: var(--warn); font-size: 11.5px; margin-left: 4px; }
#token-panel { max-width: 520px; margin: 28px auto 0; padding: 0 24px; }
#token-panel[hidden] { display: none; }
#token-form { display: grid; gap: 10px; }
#token-form .row { display: flex; gap: 8px; }
#token-form input { flex: 1; font: inherit; padding: 7px 10px; border: 1px solid #c7ccd6; border-radius: 8px; }
#token-form button { font: inherit; padding: 7px 14px; border: 0; border-radius: 8px; background: var(--accent); color: #fff; cursor: pointer; }
#token-error { margin: 0; min-height: 1em; }
body.locked main { display: none; }
footer { color: var(--muted); font-size: 12px; padding: 6px 24px 18px; max-width: 1600px; margin: 0 auto; }
`;

const BODY = String.raw`
<header>
  <div class="brand">Sluice<small>spend dashboard</small></div>
  <div class="controls">
    <span><span class="label">Range</span><span class="seg" id="range" data-testid="range"><button type="button" data-value="1h">1h</button><button type="button" data-value="24h">24h</button><button type="button" data-value="7d">7d</button><button type="button" data-value="30d">30d</button></span></span>
    <span><span class="label">Split by</span><span class="seg" id="dimension" data-testid="dimension"><button type="button" data-value="team">team</button><button type="button" data-value="model">model</button><button type="button" data-value="feature">feature</button></span></span>
    <button type="button" class="plain" id="refresh" data-testid="refresh">Refresh</button>
    <span id="status" data-testid="status" role="status">Loading…</span>
  </div>
</header>
<section id="token-panel" hidden>
  <form id="token-form" class="card" data-testid="token-form" autocomplete="off">
    <h2>Admin token required</h2>
    <div class="muted">This control plane protects its admin API. Paste a token (<code>SLUICE_CP_ADMIN_TOKEN</code> or a Kubernetes token allowed to read it). It is kept in this tab's session storage only.</div>
    <div class="row"><input id="token-input" data-testid="token-input" type="password" placeholder="Bearer token" aria-label="Admin token" autocomplete="off" required><button type="submit" data-testid="token-submit">Use token</button></div>
    <p id="token-error" class="error-text" data-testid="token-error" role="alert"></p>
  </form>
</section>
<main>
  <section class="card span-12 kpis" id="kpis" data-testid="kpis"></section>
  <section class="card span-8">
    <h2>Spend over time <span class="sub" id="spend-sub"></span></h2>
    <div class="chart" id="spend-chart" data-testid="spend-chart"></div>
    <div class="legend" id="spend-legend" data-testid="spend-legend"></div>
  </section>
  <section class="card span-4">
    <h2>Limit utilisation <span class="sub">current window</span></h2>
    <div id="limits" data-testid="limits"></div>
  </section>
  <section class="card span-6"><h2>By team <span class="sub" data-sub="team"></span></h2><div class="scroll" id="breakdown-team" data-testid="breakdown-team"></div></section>
  <section class="card span-6"><h2>By model <span class="sub" data-sub="model"></span></h2><div class="scroll" id="breakdown-model" data-testid="breakdown-model"></div></section>
  <section class="card span-6"><h2>By feature <span class="sub" data-sub="feature"></span></h2><div class="scroll" id="breakdown-feature" data-testid="breakdown-feature"></div></section>
  <section class="card span-6" data-testid="cache">
    <h2>Cache hit rate <span class="sub" id="cache-sub"></span></h2>
    <div id="cache-panel"></div>
  </section>
  <section class="card span-12"><h2>Sidecars and policy versions</h2><div class="scroll" id="sidecars" data-testid="sidecars"></div></section>
</main>
<footer>Refreshes every 10 s. Amounts are list-price estimates from the sidecars' usage reports (micro-USD, shown in dollars).</footer>
`;

const SCRIPT = String.raw`
(() => {
  'use strict';
  const TOKEN_KEY = 'sluice.adminToken';
  const REFRESH_MS = 10000;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const RANGES = {
    '1h': { since: '1h', granularity: 'minute', per: 'minute' },
    '24h': { since: '24h', granularity: 'hour', per: 'hour' },
    '7d': { since: '7d', granularity: 'hour', per: 'hour' },
    '30d': { since: '30d', granularity: 'day', per: 'day' },
  };
  const DIMENSIONS = ['team', 'model', 'feature'];
  const PALETTE = ['#3d5afe', '#12b76a', '#f79009', '#e5484d', '#7a5af8', '#0ba5ec', '#ee46bc', '#66c61c'];
  const OTHER_COLOR = '#98a2b3';
  const state = { range: '24h', dim: 'team', busy: false, again: false, locked: false, series: null };

  class AuthError extends Error {}

  // ---- DOM helpers (text only: API strings never become markup) ----
  const $ = (id) => document.getElementById(id);
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    setAttrs(e, attrs);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  }
  function fill(container, ...children) {
    container.replaceChildren(...children.filter((c) => c !== null && c !== undefined));
  }

  // ---- formatting ----
  function usd(micros) {
    const d = Math.abs(micros) / 1e6;
    const digits = d > 0 && d < 0.01 ? 4 : 2;
    return (micros < 0 ? '-$' : '$') + d.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }
  const int = (n) => Math.round(n).toLocaleString('en-US');
  function compact(n) {
    if (Math.abs(n) < 10000) return int(n);
    const units = [[1e9, 'B'], [1e6, 'M'], [1e3, 'k']];
    for (const [v, s] of units) if (Math.abs(n) >= v) return (n / v).toLocaleString('en-US', { maximumFractionDigits: n / v < 10 ? 2 : n / v < 100 ? 1 : 0 }) + s;
    return int(n);
  }
  function amount(unit, n) {
    if (unit === 'microUSD') return usd(n);
    return int(n) + ' ' + unit;
  }
  const pct = (x) => (x * 100).toLocaleString('en-US', { maximumFractionDigits: x < 0.1 ? 1 : 0 }) + '%';
  const name = (v) => (v === '' || v === undefined ? '(none)' : v);
  function keyLabel(key) {
    if (key === 'other') return 'other';
    return Object.values(key).map(name).join(' / ');
  }
  function clock(iso, opts) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString('en-US', opts);
  }
  function bucketLabel(iso, granularity, long) {
    if (granularity === 'day') return clock(iso, { month: 'short', day: 'numeric' });
    if (long) return clock(iso, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    return clock(iso, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  }
  const shortVersion = (v) => (v.length > 14 ? v.slice(0, 12) + '…' : v);

  // ---- token (sessionStorage; this page's memory when storage is disabled) ----
  let memoryToken = '';
  function currentToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || memoryToken;
    } catch {
      return memoryToken;
    }
  }
  function saveToken(t) {
    memoryToken = t;
    try {
      sessionStorage.setItem(TOKEN_KEY, t);
    } catch {
      // storage disabled: memoryToken it is
    }
  }
  // '#token=…' once: stored, then removed from the location (and history). Not URLSearchParams: '+' stays '+'.
  function takeFragmentToken() {
    const m = /(?:^|&)token=([^&]*)/.exec(location.hash.slice(1));
    if (!m) return;
    let t = m[1];
    try {
      t = decodeURIComponent(t);
    } catch {
      // not percent-encoded: taken as is
    }
    if (t.trim()) saveToken(t.trim());
    history.replaceState(null, '', location.pathname + location.search);
  }
  function lock(message, refused) {
    state.locked = true;
    document.body.classList.add('locked');
    $('token-panel').hidden = false;
    $('token-error').textContent = message;
    $('token-error').className = refused ? 'error-text' : 'muted';
    setStatus('Waiting for a token', true);
    $('token-input').focus();
  }
  function unlock() {
    state.locked = false;
    document.body.classList.remove('locked');
    $('token-panel').hidden = true;
    $('token-error').textContent = '';
  }

  // ---- API ----
  async function api(path) {
    const headers = { accept: 'application/json' };
    const t = currentToken();
    if (t) headers.authorization = 'Bearer ' + t;
    const r = await fetch(path, { headers, cache: 'no-store', credentials: 'omit' });
    let body = null;
    try {
      body = await r.json();
    } catch {
      body = null;
    }
    const message = body && typeof body.error === 'string' ? body.error : r.status + ' ' + r.statusText;
    if (r.status === 401 || r.status === 403) throw new AuthError(message);
    if (!r.ok) throw new Error(message);
    return body;
  }
  function usageQuery(extra) {
    const params = new URLSearchParams({ since: RANGES[state.range].since, ...extra });
    return params.toString();
  }

  // ---- spend chart ----
  // Steps of 1, 2 or 5 × 10^k µ$, at least $0.0001: every label is exact with 2 (or 4) decimals.
  function niceTicks(max, count) {
    if (!(max > 0)) return [0, 2000, 4000, 6000, 8000, 10000];
    const raw = max / count;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / p;
    const step = Math.max(100, (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p);
    const ticks = [];
    for (let v = 0; v < max + step; v += step) ticks.push(v);
    return ticks;
  }
  function colorOf(s, i) {
    return s.key === 'other' ? OTHER_COLOR : PALETTE[i % PALETTE.length];
  }
  function renderSpend(data) {
    const box = $('spend-chart');
    const W = Math.max(360, Math.floor(box.clientWidth || 800));
    const H = 300;
    const m = { l: 70, r: 10, t: 12, b: 30 };
    const pw = W - m.l - m.r;
    const ph = H - m.t - m.b;
    const n = data.t.length;
    const totals = data.t.map((_, i) => data.series.reduce((a, s) => a + (s.values[i] || 0), 0));
    const ticks = niceTicks(Math.max(0, ...totals), 6);
    const top = ticks[ticks.length - 1];
    const y = (v) => m.t + ph - (v / top) * ph;
    const root = svg('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'Spend over time, stacked by ' + state.dim });
    for (const v of ticks) {
      root.append(svg('line', { class: 'grid-line', x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }));
      root.append(svg('text', { x: m.l - 8, y: y(v) + 4, 'text-anchor': 'end' }, usd(v)));
    }
    const slot = pw / Math.max(1, n);
    const bw = Math.max(1, slot > 6 ? slot * 0.78 : slot - 0.5);
    const long = state.range === '7d';
    const bars = svg('g', { class: 'bars' });
    for (let i = 0; i < n; i++) {
      let base = 0;
      data.series.forEach((s, k) => {
        const v = s.values[i] || 0;
        if (v <= 0) return;
        const rect = svg('rect', { class: 'bar', x: (m.l + i * slot + (slot - bw) / 2).toFixed(2), y: y(base + v).toFixed(2), width: bw.toFixed(2), height: Math.max(0.5, (v / top) * ph).toFixed(2), fill: colorOf(s, k), 'data-series': keyLabel(s.key) });
        rect.append(svg('title', {}, keyLabel(s.key) + ' · ' + bucketLabel(data.t[i], data.granularity, true) + ' · ' + usd(v)));
        bars.append(rect);
        base += v;
      });
    }
    root.append(bars);
    root.append(svg('line', { class: 'axis-line', x1: m.l, x2: W - m.r, y1: m.t + ph, y2: m.t + ph }));
    const every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(pw / (long ? 110 : 70)))));
    for (let i = 0; i < n; i += every) {
      root.append(svg('text', { x: m.l + i * slot + slot / 2, y: H - 10, 'text-anchor': 'middle' }, bucketLabel(data.t[i], data.granularity, long)));
    }
    if (totals.every((v) => v === 0)) root.append(svg('text', { x: m.l + pw / 2, y: m.t + ph / 2, 'text-anchor': 'middle' }, 'No spend in this range'));
    fill(box, root);
    const sum = totals.reduce((a, b) => a + b, 0);
    $('spend-sub').textContent = usd(sum) + ' in the last ' + state.range + ' · per ' + RANGES[state.range].per + ' · by ' + state.dim;
    fill($('spend-legend'), ...data.series.map((s, k) => el('span', { class: 'item', 'data-series': keyLabel(s.key) }, el('span', { class: 'swatch', style: 'background:' + colorOf(s, k) }), keyLabel(s.key), el('span', { class: 'muted' }, usd(s.total)))));
  }

  // ---- KPIs and breakdowns ----
  function kpi(label, value, detail, testid, raw) {
    return el('div', { class: 'kpi', 'data-testid': testid, 'data-value': raw }, el('div', { class: 'k' }, label), el('div', { class: 'v' }, value), el('div', { class: 'd' }, detail));
  }
  function renderKpis(total) {
    const perReq = total.requests > 0 ? usd(total.costMicros / total.requests) + ' per request' : '—';
    const errRate = total.requests > 0 ? pct(total.errors / total.requests) + ' of requests' : '—';
    fill(
      $('kpis'),
      kpi('Spend · ' + state.range, usd(total.costMicros), perReq, 'kpi-cost'),
      kpi('Requests', int(total.requests), 'last ' + state.range, 'kpi-requests'),
      kpi('Errors', int(total.errors), errRate, 'kpi-errors'),
      kpi('Input tokens', compact(total.inputTokens), int(total.cachedInputTokens) + ' cached', 'kpi-input'),
      kpi('Output tokens', compact(total.outputTokens), int(total.reasoningTokens) + ' reasoning', 'kpi-output'),
    );
  }
  // Response cache: hits, their share of requests and the spend they avoided (list price of each
  // cached answer when it was produced), over the selected range.
  function renderCache(total) {
    const hits = total.cacheHits || 0;
    const saved = total.cacheSavedMicros || 0;
    const share = total.requests > 0 ? hits / total.requests : 0;
    const wouldHave = total.costMicros + saved;
    $('cache-sub').textContent = 'last ' + state.range;
    fill(
      $('cache-panel'),
      el(
        'div',
        { class: 'cache-kpis' },
        kpi('Cache hits', int(hits), 'served from the cache', 'cache-hits', hits),
        kpi('Hit rate', total.requests > 0 ? pct(share) : '—', int(hits) + ' of ' + int(total.requests) + ' requests', 'cache-share', share),
        kpi('Saved', usd(saved), wouldHave > 0 ? pct(saved / wouldHave) + ' of spend avoided' : '—', 'cache-saved', saved),
      ),
      meter(share, 'ok'),
      hits === 0 ? el('div', { class: 'cache-note' }, 'No answers from the response cache in this range (LLMCache policies enable it).') : null,
    );
  }
  function meter(fraction, cls) {
    const f = Math.max(0, Math.min(1, fraction));
    const bar = el('div', { class: 'fill' + (cls ? ' ' + cls : '') });
    bar.style.width = (f * 100).toFixed(1) + '%';
    return el('div', { class: 'meter' }, el('div', { class: 'track' }, bar), el('span', { class: 'pct' }, pct(fraction)));
  }
  function numCell(value, text, col) {
    return el('td', { class: 'num', 'data-col': col, 'data-value': value, title: int(value) }, text);
  }
  function renderBreakdown(dim, data) {
    const box = $('breakdown-' + dim);
    document.querySelector('[data-sub="' + dim + '"]').textContent = data.totalRows + (data.totalRows === 1 ? ' ' + dim : ' ' + dim + 's') + ' · last ' + state.range;
    if (data.rows.length === 0) return fill(box, el('div', { class: 'empty' }, 'No usage in this range.'));
    const cost = data.total.costMicros;
    const head = el('tr', {}, ...[dim, 'Requests', 'Errors', 'Input', 'Output', 'Cost', 'Share'].map((h, i) => el('th', { class: i > 0 && i < 6 ? 'num' : undefined }, h)));
    const rows = data.rows.map((r) => {
      const key = r.key[dim];
      return el(
        'tr',
        { 'data-key': key },
        el('td', { class: 'name' }, name(key)),
        numCell(r.requests, int(r.requests), 'requests'),
        numCell(r.errors, int(r.errors), 'errors'),
        numCell(r.inputTokens, compact(r.inputTokens), 'inputTokens'),
        numCell(r.outputTokens, compact(r.outputTokens), 'outputTokens'),
        numCell(r.costMicros, usd(r.costMicros), 'costMicros'),
        el('td', { class: 'share' }, meter(cost > 0 ? r.costMicros / cost : 0)),
      );
    });
    const more = data.totalRows > data.rows.length ? el('div', { class: 'more' }, (data.totalRows - data.rows.length) + ' more not shown') : null;
    fill(box, el('table', {}, el('thead', {}, head), el('tbody', {}, ...rows)), more);
  }

  // ---- limits ----
  function level(u) {
    return u >= 0.9 ? 'bad' : u >= 0.7 ? 'warn' : 'ok';
  }
  function renderLimit(l) {
    const badges = [el('span', { class: 'badge' }, l.unit + ' / ' + l.window), el('span', { class: 'badge' }, l.scope)];
    if (l.mode === 'shadow') badges.push(el('span', { class: 'badge shadow' }, 'shadow'));
    badges.push(el('span', { class: 'badge' }, l.failureMode));
    const item = el('div', { class: 'limit', 'data-limit': l.id }, el('div', { class: 'title' }, el('span', { class: 'id' }, l.id), ...badges));
    if (l.scope !== 'global') {
      item.append(el('div', { class: 'note' }, 'Max ' + amount(l.unit, l.max) + ' per ' + l.window + ', counted per sidecar (no shared counter to show).'));
      return item;
    }
    const windowText = l.windowStart && l.windowEnd ? 'Window ' + clock(l.windowStart, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }) + ' → ' + clock(l.windowEnd, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }) : 'No current window';
    item.append(el('div', { class: 'note' }, 'Max ' + amount(l.unit, l.max) + ' per key · ' + windowText));
    const keys = l.keys || [];
    if (keys.length === 0) item.append(el('div', { class: 'empty' }, 'Nothing used in this window.'));
    for (const k of keys) {
      item.append(
        el(
          'div',
          { class: 'key', 'data-testid': 'limit-key', 'data-key': k.key, 'data-spent': k.spent },
          el('div', {}, el('div', { class: 'kname' }, k.key === '' ? '(everyone)' : k.key), el('div', { class: 'amount' }, amount(l.unit, k.spent) + ' of ' + amount(l.unit, l.max))),
          meter(k.utilisation, level(k.utilisation)),
        ),
      );
    }
    return item;
  }
  function renderLimits(data) {
    const box = $('limits');
    if (data.limits.length === 0) return fill(box, el('div', { class: 'empty' }, 'No LLMLimit objects in the policy.'));
    const global = data.limits.filter((l) => l.scope === 'global');
    const local = data.limits.filter((l) => l.scope !== 'global');
    fill(box, ...global.map(renderLimit), ...local.map(renderLimit));
  }

  // ---- sidecars ----
  function renderSidecars(data) {
    const box = $('sidecars');
    const list = data.sidecars.slice().sort((a, b) => (a.namespace + '/' + a.pod).localeCompare(b.namespace + '/' + b.pod));
    if (list.length === 0) return fill(box, el('div', { class: 'empty', 'data-testid': 'sidecars-empty' }, 'No sidecars connected.'));
    const counts = new Map();
    for (const s of list) counts.set(s.versionAcked, (counts.get(s.versionAcked) || 0) + 1);
    const chips = [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([v, c]) =>
      el('span', { class: 'chip' + (v ? '' : ' none'), 'data-testid': 'version-count', 'data-version': v, 'data-count': c, title: v }, (v ? shortVersion(v) : 'nothing ACKed') + ' · ' + c + (c === 1 ? ' sidecar' : ' sidecars')),
    );
    const head = el('tr', {}, ...['Namespace', 'Pod', 'Version sent', 'Version ACKed', 'Last NACK'].map((h) => el('th', {}, h)));
    const rows = list.map((s) => {
      const acked = el('td', { class: 'mono', title: s.versionAcked }, s.versionAcked ? shortVersion(s.versionAcked) : '—');
      if (s.versionSent && s.versionSent !== s.versionAcked) acked.append(el('span', { class: 'pending' }, 'pending'));
      const nack = s.lastNack ? el('td', { class: 'nack', title: s.lastNack.message }, shortVersion(s.lastNack.version) + ': ' + s.lastNack.message + ' (' + clock(s.lastNack.at, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }) + ')') : el('td', { class: 'muted' }, '—');
      return el('tr', { 'data-pod': s.pod }, el('td', {}, s.namespace), el('td', { class: 'name' }, s.pod), el('td', { class: 'mono', title: s.versionSent }, s.versionSent ? shortVersion(s.versionSent) : '—'), acked, nack);
    });
    fill(box, el('div', { class: 'chips' }, ...chips), el('table', {}, el('thead', {}, head), el('tbody', {}, ...rows)));
  }

  // ---- refresh ----
  function setStatus(text, isError) {
    const s = $('status');
    s.textContent = text;
    s.classList.toggle('error', !!isError);
  }
  function panelError(id, e) {
    fill($(id), el('div', { class: 'empty error-text' }, 'Could not load: ' + e.message));
  }
  async function load(id, path, render) {
    try {
      render(await api(path));
      return null;
    } catch (e) {
      if (!(e instanceof AuthError)) panelError(id, e);
      return e;
    }
  }
  async function refresh() {
    if (state.busy) {
      state.again = true;
      return;
    }
    state.busy = true;
    try {
      const range = RANGES[state.range];
      const results = await Promise.all([
        load('spend-chart', '/v1/usage/series?' + usageQuery({ by: state.dim, metric: 'costMicros', top: '6', granularity: range.granularity }), (d) => {
          state.series = d;
          renderSpend(d);
        }),
        ...DIMENSIONS.map((dim) => load('breakdown-' + dim, '/v1/usage?' + usageQuery({ by: dim, limit: '8' }), (d) => {
          renderBreakdown(dim, d);
          if (dim === 'team') {
            renderKpis(d.total);
            renderCache(d.total);
          }
        })),
        load('limits', '/v1/limits', renderLimits),
        load('sidecars', '/v1/sidecars', renderSidecars),
      ]);
      const auth = results.find((e) => e instanceof AuthError);
      const failed = results.filter((e) => e !== null);
      if (auth) {
        if (currentToken()) lock('The token was refused: ' + auth.message, true);
        else lock('Sign in to see spend data.', false);
        return;
      }
      unlock();
      const time = new Date().toLocaleTimeString('en-US', { hourCycle: 'h23' });
      if (failed.length > 0) setStatus('Updated ' + time + ' · ' + failed.length + ' panel(s) failed', true);
      else setStatus('Updated ' + time);
    } finally {
      state.busy = false;
      if (state.again) {
        state.again = false;
        void refresh();
      }
    }
  }

  // ---- controls ----
  function markPressed(groupId, value) {
    for (const b of $(groupId).querySelectorAll('button')) b.setAttribute('aria-pressed', String(b.dataset.value === value));
  }
  function bindSegment(groupId, field) {
    $(groupId).addEventListener('click', (ev) => {
      const b = ev.target.closest('button');
      if (!b || state[field] === b.dataset.value) return;
      state[field] = b.dataset.value;
      markPressed(groupId, state[field]);
      void refresh();
    });
    markPressed(groupId, state[field]);
  }
  function start() {
    takeFragmentToken();
    bindSegment('range', 'range');
    bindSegment('dimension', 'dim');
    $('refresh').addEventListener('click', () => void refresh());
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const t = $('token-input').value.trim();
      if (!t) return;
      saveToken(t);
      $('token-input').value = '';
      $('token-error').textContent = 'Checking…';
      $('token-error').className = 'muted';
      void refresh();
    });
    let resizeTimer = 0;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => state.series && renderSpend(state.series), 150);
    });
    setInterval(() => {
      if (!state.locked && document.visibilityState !== 'hidden') void refresh();
    }, REFRESH_MS);
    void refresh();
  }
  start();
})();
`;

/** What the page may load: its own inline script and style, fetches to its origin, nothing else. */
export const DASHBOARD_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:";

/** The dashboard page; serve it with `DASHBOARD_CSP`. */
export const DASHBOARD_HTML: string = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Sluice · spend</title>
<style>${STYLE}</style>
</head>
<body>${BODY}<script>${SCRIPT}</script>
</body>
</html>
`;
