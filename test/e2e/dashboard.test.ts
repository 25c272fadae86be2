/**
 * The spend dashboard in a real browser: a control plane with Redis usage and quota stores (seeded
 * with ~22 hours of usage and some credit drawn on a global limit) behind an admin token, and
 * headless Chromium (Debian's /usr/bin/chromium, or SLUICE_CHROMIUM) driven by playwright-core.
 * Signs in through the token form, checks every panel against the seeded data, saves a screenshot
 * (test/e2e/dist/dashboard.png, and SLUICE_SCREENSHOT_OUT when set). Everything on 127.0.0.1.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { seededRandom } from '@sluice/core';
import { FileSource, staticTokenAuth, startControlPlane, type ControlPlane } from '@sluice/control-plane';
import { RedisQuotaStore } from '@sluice/control-plane/redis';
import { RedisUsageStore, zeroTotals, type UsageRecordIn } from '@sluice/control-plane/usage';
import { windowOf } from '@sluice/policy/limits';
import { PolicyClient } from '@sluice/sidecar';
import { quietLogger, startRedis, waitFor, type TestRedis } from '@sluice/testkit';

const TOKEN = 'dash+board/test=token'; // '+', '/' and '=' survive the form and the #token= fragment
const WAIT_MS = 20_000;
const SCREENSHOT = fileURLToPath(new URL('./dashboard.png', import.meta.url));
const logger = quietLogger();

const TEAMS = [
  { team: 'search', namespace: 'shop', features: ['chat', 'summarize'], weight: 1.4 },
  { team: 'support', namespace: 'shop', features: ['chat', 'classify'], weight: 0.8 },
  { team: 'ledger', namespace: 'bank', features: ['summarize', 'classify'], weight: 1 },
];
// µ$ per token = $ per million tokens.
const MODELS = [
  { id: 'gpt-4o-mini', input: 0.15, output: 0.6 },
  { id: 'claude-haiku-4-5', input: 1, output: 5 },
  { id: 'claude-sonnet-4-5', input: 3, output: 15 },
];
const BUDGET = { id: 'shop/team-budget', max: 50_000_000, spent: { 'team=ledger': 46_500_000, 'team=search': 31_200_000, 'team=support': 9_750_000 } };

let redis: TestRedis;
let usageStore: RedisUsageStore;
let quotaStore: RedisQuotaStore;
let cp: ControlPlane;
let browser: Browser;
let dir: string;
const clients: PolicyClient[] = [];
/** Seeded request totals per dimension value. */
const expected = { team: new Map<string, number>(), model: new Map<string, number>(), feature: new Map<string, number>() };
/** Seeded response-cache hits and the micro-dollars they saved. */
const expectedCache = { hits: 0, savedMicros: 0 };

/** Two records per team and feature for each of the last 22 hours, busier in the "daytime" hours. */
function seedRecords(nowSec: number): Map<string, UsageRecordIn[]> {
  const rnd = seededRandom(7);
  const pick = (n: number): number => Math.floor(rnd() * n);
  const thisMinute = Math.floor(nowSec / 60) * 60;
  const out = new Map<string, UsageRecordIn[]>();
  for (let h = 0; h < 22; h++) {
    const load = 0.35 + 0.65 * Math.sin(((h + 3) / 24) * Math.PI) ** 2;
    for (const t of TEAMS) {
      for (const feature of t.features) {
        for (let n = 0; n < 2; n++) {
          const model = MODELS[rnd() < 0.5 ? 0 : rnd() < 0.6 ? 1 : 2]!;
          const requests = 1 + Math.round((4 + pick(30)) * load * t.weight);
          const inputTokens = requests * (250 + pick(1800));
          const outputTokens = requests * (60 + pick(450));
          // Chat answers come from the response cache more often (no draw from rnd: the seeded data stays as it was).
          const cacheHits = Math.floor(requests * (feature === 'chat' ? 0.3 : 0.1));
          const record: UsageRecordIn = {
            ...zeroTotals(),
            minuteUnix: thisMinute - 60 * (h * 60 + 1 + pick(58)),
            serviceAccount: `${t.team}-api`,
            team: t.team,
            feature,
            user: '',
            route: `${t.namespace}/main`,
            backend: `${t.namespace}/llm`,
            model: model.id,
            requests,
            errors: rnd() < 0.25 ? 1 + pick(Math.min(3, requests)) : 0,
            inputTokens,
            outputTokens,
            costMicros: Math.round(inputTokens * model.input + outputTokens * model.output),
            cacheHits,
            cacheSavedMicros: cacheHits * Math.round(((inputTokens + outputTokens) / requests) * model.input),
          };
          expectedCache.hits += record.cacheHits;
          expectedCache.savedMicros += record.cacheSavedMicros;
          let list = out.get(t.namespace);
          if (list === undefined) out.set(t.namespace, (list = []));
          list.push(record);
          for (const [dim, value] of [['team', t.team], ['model', model.id], ['feature', feature]] as const) expected[dim].set(value, (expected[dim].get(value) ?? 0) + requests);
        }
      }
    }
  }
  return out;
}

async function seedUsage(store: RedisUsageStore): Promise<void> {
  for (const [namespace, records] of seedRecords(Math.floor(Date.now() / 1000))) {
    let seq = 0;
    for (let i = 0; i < records.length; i += 40) assert.equal(await store.apply(namespace, 'dashboard-seed', ++seq, records.slice(i, i + 40)), 'applied');
  }
}

function policyYaml(namespace: string, limits: boolean): string {
  const base = `apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: llm, namespace: ${namespace} }
spec:
  provider: openai-compatible
  endpoint: "http://127.0.0.1:9/v1"
  models: [${MODELS.map((m) => `{ id: ${m.id} }`).join(', ')}]
---
apiVersion: sluice.dev/v1alpha1
kind: LLMRoute
metadata: { name: main, namespace: ${namespace} }
spec: { rules: [{ match: { models: ["*"] }, backends: [{ name: llm }] }] }
`;
  if (!limits) return base;
  return `${base}---
apiVersion: sluice.dev/v1alpha1
kind: LLMLimit
metadata: { name: team-budget, namespace: ${namespace} }
spec: { unit: microUSD, window: month, calendarAligned: true, timeZone: UTC, max: ${BUDGET.max}, scope: global, key: [{ source: label, name: team }] }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMLimit
metadata: { name: requests-per-minute, namespace: ${namespace} }
spec: { unit: requests, window: minute, max: 600, scope: local }
`;
}

/** Draws credit on the global limit the way the quota streams do, so utilisation is non-zero. */
async function drawCredit(): Promise<void> {
  const w = windowOf('month', true, 'UTC', Date.now());
  for (const [key, want] of Object.entries(BUDGET.spent)) {
    const r = await quotaStore.debit({ limitId: BUDGET.id, key, windowId: w.id, windowEndMs: w.endMs, leaseId: `seed-${key}`, drawer: 'dashboard-test', want, need: 0, max: BUDGET.max });
    assert.equal(r.granted, want);
  }
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-dashboard-'));
  redis = await startRedis();
  usageStore = RedisUsageStore.open(redis.url);
  await waitFor('the usage store connected', async () => Array.isArray(await usageStore.namespaces()), WAIT_MS);
  await seedUsage(usageStore);
  await writeFile(join(dir, 'shop.yaml'), policyYaml('shop', true));
  await writeFile(join(dir, 'bank.yaml'), policyYaml('bank', false));
  quotaStore = await RedisQuotaStore.connect(redis.url);
  await drawCredit();
  cp = await startControlPlane({ source: new FileSource(dir), logger, grpcAddress: '127.0.0.1:0', adminHost: '127.0.0.1', adminPort: 0, usageStore, quotaStore, adminAuth: staticTokenAuth(TOKEN) });
  await waitFor('policy compiled', async () => (await fetch(`${cp.adminUrl}/ready`)).status === 200, WAIT_MS);
  // No skip: a missing browser is a failure.
  browser = await chromium.launch({ executablePath: process.env['SLUICE_CHROMIUM'] ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
});

after(async () => {
  for (const c of clients) c.close();
  await browser?.close();
  await cp?.close(); // closes both stores too
  if (cp === undefined) {
    await usageStore?.close();
    await quotaStore?.close();
  }
  await redis?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** Console errors and uncaught exceptions of a page; `allow` matches the ones expected right now. */
function watchErrors(page: Page): { errors: string[]; allow: RegExp | undefined } {
  const w = { errors: [] as string[], allow: undefined as RegExp | undefined };
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = `console: ${m.text()} (${m.location().url})`;
    if (w.allow === undefined || !w.allow.test(m.text())) w.errors.push(text);
  });
  page.on('pageerror', (e) => w.errors.push(`pageerror: ${e.message}`));
  return w;
}

/** Waits until `count` of the elements matching `selector` satisfies `ok`. */
async function waitCount(page: Page, selector: string, ok: (n: number) => boolean, what: string): Promise<void> {
  await waitFor(what, async () => ok(await page.locator(selector).count()), WAIT_MS);
}

/** The given attributes of every element matching `selector`. */
async function attrs(page: Page, selector: string, names: readonly string[]): Promise<Array<Array<string | null>>> {
  const out: Array<Array<string | null>> = [];
  for (const e of await page.locator(selector).all()) out.push(await Promise.all(names.map((n) => e.getAttribute(n))));
  return out;
}

/** `{ value → data-value of the requests column }` of a breakdown table (each row also shows its name). */
async function tableRequests(page: Page, dim: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const tr of await page.locator(`[data-testid="breakdown-${dim}"] tbody tr`).all()) {
    const key = (await tr.getAttribute('data-key')) ?? '';
    assert.ok(((await tr.textContent()) ?? '').includes(key), `row ${key} shows its name`);
    out.set(key, Number(await tr.locator('[data-col="requests"]').getAttribute('data-value')));
  }
  return out;
}

const text = async (page: Page, selector: string): Promise<string> => (await page.locator(selector).first().textContent()) ?? '';
const storedToken = (page: Page): Promise<string | null> => page.evaluate<string | null>('sessionStorage.getItem("sluice.adminToken")');

const sorted = (m: Map<string, number>): Array<[string, number]> => [...m].sort((a, b) => a[0].localeCompare(b[0]));

/** Four policy streams like sidecars': three apply what they get (ACK), one refuses it (NACK). */
async function connectSidecars(): Promise<void> {
  const pods = [
    { pod: 'search-api-7d9f-x2k4q', namespace: 'shop', team: 'search', refuse: false },
    { pod: 'support-bot-5c7b-m8n2p', namespace: 'shop', team: 'support', refuse: false },
    { pod: 'ledger-worker-6f4d-q7r1t', namespace: 'bank', team: 'ledger', refuse: false },
    { pod: 'ledger-worker-6f4d-z9w3c', namespace: 'bank', team: 'ledger', refuse: true },
  ];
  for (const [i, p] of pods.entries()) {
    let version = '';
    const node = { pod: p.pod, namespace: p.namespace, serviceAccount: `${p.team}-api`, labels: { team: p.team }, instanceId: `dash-${i}`, sidecarVersion: 'test' };
    const client = new PolicyClient({
      address: cp.grpcAddress,
      node,
      logger,
      currentVersion: () => version,
      apply: (s) => {
        if (p.refuse) return [{ resource: 'backend bank/llm', code: 'ProviderUnsupported', message: 'provider openai-compatible is disabled in this build' }];
        version = s.version;
        return [];
      },
      backoffInitialMs: 50,
      backoffMaxMs: 500,
    });
    clients.push(client);
    await client.start();
  }
  await waitFor('sidecars ACKed or NACKed', () => {
    const s = cp.streams.sidecars();
    return s.length === pods.length && s.filter((x) => x.versionAcked !== '').length === 3 && s.some((x) => x.lastNack !== null);
  }, WAIT_MS);
}

test('the dashboard signs in with a token and shows spend, breakdowns, limits and sidecars', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US', timezoneId: 'UTC' });
  const page = await context.newPage();
  const watch = watchErrors(page);
  // Until signed in, the API's 401s show up as failed loads in the console.
  watch.allow = /status of 401/u;
  const t0 = Date.now();
  const response = await page.goto(`${cp.adminUrl}/dashboard`);
  assert.ok(response);
  assert.equal(response.status(), 200);
  const headers = response.headers();
  assert.match(headers['content-type'] ?? '', /^text\/html; charset=utf-8/u);
  assert.equal(headers['content-security-policy'], "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:");
  assert.equal(headers['x-content-type-options'], 'nosniff');
  assert.equal(headers['cache-control'], 'no-store');

  // 401 → the token form; a wrong token is refused, the right one lets the data in.
  const form = page.getByTestId('token-form');
  await form.waitFor({ state: 'visible', timeout: WAIT_MS });
  await page.getByTestId('token-input').fill('not-the-token');
  await page.getByTestId('token-submit').click();
  await waitFor('the wrong token refused', async () => (await text(page, '[data-testid="token-error"]')).includes('refused'), WAIT_MS);
  await page.getByTestId('token-input').fill(TOKEN);
  await page.getByTestId('token-submit').click();
  await form.waitFor({ state: 'hidden', timeout: WAIT_MS });
  watch.allow = undefined;
  assert.equal(await storedToken(page), TOKEN);

  // Spend chart: stacked bars, one legend entry per team.
  await waitCount(page, '[data-testid="spend-chart"] svg rect.bar', (n) => n >= 20, 'the spend chart');
  const legend = (await attrs(page, '[data-testid="spend-legend"] .item', ['data-series'])).map(([s]) => s);
  assert.deepEqual([...legend].sort(), [...expected.team.keys()].sort());
  assert.match(await text(page, '[data-testid="spend-chart"] svg'), /\$\d+\.\d{2}/u, 'the y axis is labelled in dollars');

  // Breakdowns: every seeded name with its request total.
  for (const dim of ['team', 'model', 'feature'] as const) {
    await waitCount(page, `[data-testid="breakdown-${dim}"] tbody tr`, (n) => n > 0, `the ${dim} breakdown`);
    assert.deepEqual(sorted(await tableRequests(page, dim)), sorted(expected[dim]), `requests by ${dim}`);
  }
  const total = [...expected.team.values()].reduce((a, b) => a + b, 0);
  assert.equal(await page.getByTestId('kpi-requests').locator('.v').textContent(), total.toLocaleString('en-US'));

  // Limits: the global limit with each key's use, the local one counted per sidecar.
  const limits = page.getByTestId('limits');
  await limits.locator(`[data-limit="${BUDGET.id}"]`).waitFor({ timeout: WAIT_MS });
  const keys = (await attrs(page, '[data-testid="limit-key"]', ['data-key', 'data-spent'])).map(([k, s]) => [k, Number(s)]);
  assert.deepEqual(
    [...keys].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    Object.entries(BUDGET.spent).sort((a, b) => a[0].localeCompare(b[0])),
  );
  assert.match((await limits.textContent()) ?? '', /\$46\.50 of \$50\.00/u);
  assert.match((await limits.locator('[data-limit="shop/requests-per-minute"]').textContent()) ?? '', /counted per sidecar/u);

  // Cache panel: hits, their share of requests and the dollars saved over the range.
  const cache = page.getByTestId('cache');
  assert.ok(expectedCache.hits > 0 && expectedCache.savedMicros > 10_000);
  await waitFor('the cache panel', async () => (await cache.locator('[data-testid="cache-hits"]').count()) === 1, WAIT_MS);
  assert.equal(Number(await cache.getByTestId('cache-hits').getAttribute('data-value')), expectedCache.hits);
  assert.equal(await cache.getByTestId('cache-hits').locator('.v').textContent(), expectedCache.hits.toLocaleString('en-US'));
  assert.equal(Number(await cache.getByTestId('cache-saved').getAttribute('data-value')), expectedCache.savedMicros);
  assert.equal(await cache.getByTestId('cache-saved').locator('.v').textContent(), `$${(expectedCache.savedMicros / 1e6).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`);
  const share = expectedCache.hits / total;
  assert.equal(Number(await cache.getByTestId('cache-share').getAttribute('data-value')), share);
  assert.equal(await cache.getByTestId('cache-share').locator('.v').textContent(), `${(share * 100).toLocaleString('en-US', { maximumFractionDigits: share < 0.1 ? 1 : 0 })}%`);

  // Sidecars: none at first, then four streams (three ACKs, one NACK) after a refresh.
  await page.getByTestId('sidecars-empty').waitFor({ timeout: WAIT_MS });
  await connectSidecars();
  await page.getByTestId('refresh').click();
  await waitCount(page, '[data-testid="sidecars"] tbody tr', (n) => n === 4, 'four sidecars listed');
  const sidecarsText = (await page.getByTestId('sidecars').textContent()) ?? '';
  assert.match(sidecarsText, /ledger-worker-6f4d-z9w3c/u);
  assert.match(sidecarsText, /provider openai-compatible is disabled in this build/u);
  const counts = (await attrs(page, '[data-testid="version-count"]', ['data-version', 'data-count'])).map(([v, c]) => [v, Number(c)] as const);
  // Snapshots are per workload: each namespace's sidecars ACK their own version.
  const want = new Map<string, number>();
  for (const s of cp.streams.sidecars()) want.set(s.versionAcked, (want.get(s.versionAcked) ?? 0) + 1);
  assert.equal(want.get(''), 1, 'the refusing sidecar ACKed nothing');
  assert.deepEqual(sorted(new Map(counts.map(([v, c]) => [v ?? '?', c]))), sorted(want));

  // The split selector redraws the chart by model.
  await page.locator('#dimension button[data-value="model"]').click();
  const models = new Set(MODELS.map((m) => m.id));
  await waitFor('the chart split by model', async () => {
    const series = (await attrs(page, '[data-testid="spend-legend"] .item', ['data-series'])).map(([s]) => s ?? '');
    return series.length === models.size && series.every((s) => models.has(s));
  }, WAIT_MS);
  await page.locator('#dimension button[data-value="team"]').click();
  await waitFor('the chart split by team again', async () => (await text(page, '#spend-sub')).includes('by team') && (await text(page, '#status')).startsWith('Updated'), WAIT_MS);

  await mkdir(dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  console.log(`dashboard screenshot: ${SCREENSHOT} (signed in and rendered in ${Date.now() - t0} ms)`);
  const out = process.env['SLUICE_SCREENSHOT_OUT'];
  if (out !== undefined && out !== '') {
    await mkdir(dirname(resolve(out)), { recursive: true });
    await copyFile(SCREENSHOT, resolve(out));
    console.log(`dashboard screenshot: ${resolve(out)}`);
  }
  assert.deepEqual(watch.errors, []);
  await context.close();
});

test('a #token= fragment signs in once and leaves the URL; API strings stay text', async () => {
  const hostile = '<img src=x onerror="window.__pwned=1">';
  const minute = Math.floor(Date.now() / 60_000) * 60 - 120;
  await usageStore.apply('shop', 'dashboard-hostile', 1, [{ ...zeroTotals(), minuteUnix: minute, serviceAccount: 'x', team: hostile, feature: 'chat', user: '', route: 'shop/main', backend: 'shop/llm', model: 'gpt-4o-mini', requests: 1, costMicros: 1 }]);
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const watch = watchErrors(page);
  await page.goto(`${cp.adminUrl}/#token=${encodeURIComponent(TOKEN)}`);
  await waitFor('the hostile team listed', async () => (await attrs(page, '[data-testid="breakdown-team"] tbody tr', ['data-key'])).some(([k]) => k === hostile), WAIT_MS);
  assert.equal(await page.evaluate<string>('location.hash'), '');
  assert.equal(new URL(page.url()).hash, '');
  assert.equal(await storedToken(page), TOKEN);
  assert.equal(await page.getByTestId('token-form').isVisible(), false);
  assert.equal(await page.locator('[data-testid="breakdown-team"] img').count(), 0);
  assert.match((await page.getByTestId('breakdown-team').textContent()) ?? '', /<img src=x onerror=/u);
  assert.equal(await page.evaluate<unknown>('window.__pwned'), undefined);
  assert.deepEqual(watch.errors, []);
  await context.close();
});
