/**
 * Where the money goes, in the one-process mode: requests with attribution headers through the
 * sidecar, usage over StreamUsage into the control plane's store, then the spend API and the
 * `sluice usage` command (the real binary) reading it back, behind the admin token.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp as copyDir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startDevGateway, type DevGateway } from '../src/dev.js';
import { dollars, fetchUsage, formatUsage, type UsageArgs } from '../src/usage.js';
import { waitFor, quietLogger } from '@sluice/testkit';

const EXAMPLES = new URL('../../../../examples/', import.meta.url);
const CLI = fileURLToPath(new URL('../src/main.js', import.meta.url));
const TOKEN = 'admin-secret-token';
let dir: string;
let gw: DevGateway;
const costs: Record<string, number> = {};
const ids: string[] = [];

async function call(model: string, feature: string | undefined, user = 'alice'): Promise<number> {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-sluice-user': user };
  if (feature !== undefined) headers['x-sluice-feature'] = feature;
  const r = await fetch(`${gw.sidecar.url}/v1/chat/completions`, { method: 'POST', headers, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello there' }] }) });
  await r.text();
  costs[model] = (costs[model] ?? 0) + Number(r.headers.get('x-sluice-cost-micros') ?? 0);
  ids.push(r.headers.get('x-request-id') ?? '');
  return r.status;
}

const args = (over: Partial<UsageArgs> = {}): UsageArgs => ({ url: gw.controlPlane.adminUrl, token: TOKEN, by: 'model', since: '1h', until: undefined, filters: {}, limit: 50, sort: 'costMicros', ...over });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-usage-cli-'));
  await copyDir(EXAMPLES, join(dir, 'policy'), { recursive: true });
  await writeFile(join(dir, 'labels'), 'team="search"\n');
  gw = await startDevGateway({
    policyDir: join(dir, 'policy'),
    env: { SLUICE_POD_LABELS_FILE: join(dir, 'labels'), SLUICE_CP_ADMIN_TOKEN: TOKEN },
    fake: 'auto',
    sidecar: { port: 0, adminPort: 0 },
    grpcAddress: '127.0.0.1:0',
    cpAdminPort: 0,
    logger: quietLogger(),
  });
  const statuses = [
    await call('gpt-4o-mini', 'search'),
    await call('gpt-4o-mini', 'search'),
    await call('gpt-4o-mini', 'search', 'bob'),
    await call('claude-haiku-4-5', 'chat'),
    await call('claude-haiku-4-5', 'chat'),
    await call('no-such-model', undefined),
  ];
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 404]);
  await waitFor('usage reported (flushed every second)', async () => (await fetchUsage(args())).total.requests === 6, 10_000);
});
after(async () => {
  await gw.close();
  await rm(dir, { recursive: true, force: true });
});

test('the spend API groups by model with exact integer costs, the priciest first', async () => {
  const u = await fetchUsage(args());
  assert.equal(u.granularity, 'minute');
  assert.deepEqual(
    u.rows.map((r) => [r.key['model'], r.requests, r.errors, r.costMicros]),
    [
      ['claude-haiku-4-5', 2, 0, costs['claude-haiku-4-5']],
      ['gpt-4o-mini', 3, 0, costs['gpt-4o-mini']],
      ['no-such-model', 1, 1, 0],
    ].sort((a, b) => (b[3] as number) - (a[3] as number)),
  );
  assert.ok((costs['gpt-4o-mini'] ?? 0) > 0 && (costs['claude-haiku-4-5'] ?? 0) > 0);
  assert.equal(u.total.costMicros, (costs['gpt-4o-mini'] ?? 0) + (costs['claude-haiku-4-5'] ?? 0));
});

test('grouping by team, feature and user, filters, sorting and pages', async () => {
  const team = await fetchUsage(args({ by: 'team' }));
  assert.deepEqual(
    team.rows.map((r) => [r.key['team'], r.requests]),
    [['search', 6]],
  );
  const features = await fetchUsage(args({ by: 'feature', filters: { namespace: 'default' }, sort: 'requests' }));
  assert.deepEqual(
    features.rows.map((r) => [r.key['feature'], r.requests]),
    [
      ['search', 3],
      ['chat', 2],
      ['', 1],
    ],
  );
  const users = await fetchUsage(args({ by: 'user,model', filters: { model: 'gpt-4o-mini' }, sort: 'requests', limit: 1 }));
  assert.deepEqual(users.rows[0]?.key, { user: 'alice', model: 'gpt-4o-mini' });
  assert.equal(users.totalRows, 2);
  assert.equal(users.nextOffset, 1);
  assert.equal((await fetchUsage(args({ filters: { namespace: 'elsewhere' } }))).total.requests, 0);
});

test('time series, limits, and errors of the spend API', async () => {
  const h = { authorization: `Bearer ${TOKEN}` };
  const s = (await (await fetch(`${gw.controlPlane.adminUrl}/v1/usage/series?by=model&since=1h&metric=requests&top=1`, { headers: h })).json()) as {
    t: string[];
    series: Array<{ key: unknown; values: number[]; total: number }>;
  };
  assert.equal(s.t.length, 61, 'one point per minute of the hour (edges included)');
  assert.equal(s.series.length, 2, 'the top group, then "other"');
  assert.equal(s.series[1]?.key, 'other');
  assert.equal(s.series.reduce((a, x) => a + x.values.reduce((p, v) => p + v, 0), 0), 6);
  const limits = (await (await fetch(`${gw.controlPlane.adminUrl}/v1/limits`, { headers: h })).json()) as { limits: unknown[] };
  assert.ok(Array.isArray(limits.limits));
  const bad = await fetch(`${gw.controlPlane.adminUrl}/v1/usage?by=planet`, { headers: h });
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { error: string }).error, /unknown dimension "planet"/);
  const anon = await fetch(`${gw.controlPlane.adminUrl}/v1/usage`);
  assert.equal(anon.status, 401, 'the spend API needs the admin token');
  assert.equal((await fetch(`${gw.controlPlane.adminUrl}/v1/usage`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
  assert.equal((await fetch(`${gw.controlPlane.adminUrl}/healthz`)).status, 200, 'health stays open');
});

test('`sluice usage` prints an aligned table, or JSON', async () => {
  const run = promisify(execFile);
  const env = { ...process.env, SLUICE_CP_ADMIN_URL: gw.controlPlane.adminUrl, SLUICE_CP_ADMIN_TOKEN: TOKEN };
  const { stdout } = await run(process.execPath, [CLI, 'usage', '--by', 'model', '--since', '1h'], { env });
  const lines = stdout.trimEnd().split('\n');
  assert.match(lines[0] ?? '', /^MODEL\s+REQUESTS\s+ERRORS\s+INPUT\s+CACHED\s+OUTPUT\s+COST\s+CACHE HITS\s+SAVED \$$/);
  assert.ok(lines.some((l) => /^gpt-4o-mini\s+3\s+0\s/.test(l)));
  assert.match(lines.find((l) => l.startsWith('TOTAL')) ?? '', /^TOTAL\s+6\s+1\s.*\$\d/);
  const cols = lines[0]!.indexOf('REQUESTS');
  assert.ok(
    lines.slice(1, 5).every((l) => /\d/.test(l.charAt(cols)) && l.charAt(cols - 1) === ' '),
    `every row's request count starts under the REQUESTS header:\n${stdout}`,
  );
  const json = JSON.parse((await run(process.execPath, [CLI, 'usage', '--by', 'feature', '--namespace', 'default', '--json'], { env })).stdout) as { rows: unknown[] };
  assert.equal(json.rows.length, 3);
  await assert.rejects(run(process.execPath, [CLI, 'usage'], { env: { ...env, SLUICE_CP_ADMIN_TOKEN: '' } }), /401.*SLUICE_CP_ADMIN_TOKEN/s);
  assert.equal(dollars(12_345_678), '$12.35');
  assert.equal(dollars(1_500), '$0.001500');
  assert.equal(dollars(7), '$0.000007');
  assert.equal(dollars(0), '$0.00');
  assert.match(formatUsage(await fetchUsage(args({ by: 'team' }))), /^TEAM\s+REQUESTS/);
});

test('feedback about a request is recorded with its attribution and joins spend by model', async () => {
  const post = (body: unknown): Promise<Response> => fetch(`${gw.sidecar.url}/v1/feedback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const claudeId = ids[3] as string;
  const ok = await post({ request_id: claudeId, score: 0.8, label: 'helpful', comment: 'good answer' });
  assert.equal(ok.status, 202);
  assert.deepEqual(await ok.json(), { status: 'recorded', request_id: claudeId });
  const again = await post({ request_id: claudeId, score: 0.1 });
  assert.equal(again.status, 409);
  assert.equal(((await again.json()) as { error: { code: string } }).error.code, 'SLUICE_ERR_FEEDBACK_DUPLICATE');
  assert.equal((await post({ request_id: 'never-seen', score: 1 })).status, 404);
  const bad = await post({ request_id: ids[0], score: 7 });
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { error: { param: string } }).error.param, 'score');
  assert.equal((await post({ request_id: ids[0] })).status, 400, 'a score or a label is required');
  assert.equal((await fetch(`${gw.sidecar.url}/v1/feedback`, { method: 'POST', body: '{nope' })).status, 400);
  assert.equal((await post({ request_id: ids[1], label: 'wrong-tone' })).status, 202, 'a label alone is logged');
  await waitFor('feedback counted', async () => {
    const u = await fetchUsage(args());
    const claude = u.rows.find((r) => r.key['model'] === 'claude-haiku-4-5');
    return claude?.feedback === 1 && claude.feedbackScoreMilli === 800;
  }, 5000);
  const total = (await fetchUsage(args())).total;
  assert.equal(total.feedback, 1, 'only scored feedback is counted (label-only feedback is in the log)');
  assert.equal(total.requests, 6, 'feedback is not a request');
});

// Last: it adds usage in another namespace (the tests above count every namespace).
test('`sluice usage` shows response-cache hits and the dollars they saved, in the table and the JSON', async () => {
  const minuteUnix = Math.floor(Date.now() / 60_000) * 60;
  const rec = { serviceAccount: 'sa', team: 'search', feature: 'chat', user: '', route: 'r', backend: 'b', minuteUnix, requests: 0, errors: 0, inputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 0, reasoningTokens: 0, costMicros: 0, feedback: 0, feedbackScoreMilli: 0, cacheHits: 0, cacheSavedMicros: 0 };
  assert.equal(
    await gw.controlPlane.usageStore.apply('cache-demo', 'cli-cache', 1, [
      // gpt-4o-mini: 4 requests, 3 from the cache ($1.23 avoided); claude: 1 paid request, no hit.
      { ...rec, model: 'gpt-4o-mini', requests: 4, inputTokens: 10, outputTokens: 5, costMicros: 7_500, cacheHits: 3, cacheSavedMicros: 1_234_567 },
      { ...rec, model: 'claude-haiku-4-5', requests: 1, inputTokens: 10, outputTokens: 5, costMicros: 12_345_678 },
    ]),
    'applied',
  );
  const run = promisify(execFile);
  const env = { ...process.env, SLUICE_CP_ADMIN_URL: gw.controlPlane.adminUrl, SLUICE_CP_ADMIN_TOKEN: TOKEN };
  const { stdout } = await run(process.execPath, [CLI, 'usage', '--by', 'model', '--since', '1h', '--namespace', 'cache-demo'], { env });
  const lines = stdout.trimEnd().split('\n');
  const cells = (prefix: string): string[] => (lines.find((l) => l.startsWith(prefix)) ?? '').trim().split(/\s{2,}/u);
  // MODEL REQUESTS ERRORS INPUT CACHED OUTPUT COST | CACHE HITS | SAVED $
  assert.deepEqual(cells('claude-haiku-4-5').slice(-3), ['$12.35', '0', '$0.00'], stdout);
  assert.deepEqual(cells('gpt-4o-mini').slice(-3), ['$0.007500', '3', '$1.23'], stdout);
  assert.deepEqual(cells('TOTAL'), ['TOTAL', '5', '0', '20', '0', '10', '$12.35', '3', '$1.23'], stdout);
  const hitsAt = lines[0]!.indexOf('CACHE HITS');
  assert.equal(lines.find((l) => l.startsWith('gpt-4o-mini'))?.charAt(hitsAt), '3', `the hit count sits under its header:\n${stdout}`);
  const json = JSON.parse((await run(process.execPath, [CLI, 'usage', '--by', 'model', '--namespace', 'cache-demo', '--json'], { env })).stdout) as {
    total: { cacheHits: number; cacheSavedMicros: number };
    rows: Array<{ key: { model: string }; cacheHits: number; cacheSavedMicros: number }>;
  };
  assert.deepEqual(
    json.rows.map((r) => [r.key.model, r.cacheHits, r.cacheSavedMicros]),
    [
      ['claude-haiku-4-5', 0, 0],
      ['gpt-4o-mini', 3, 1_234_567],
    ],
  );
  assert.deepEqual(json.total, { ...json.total, cacheHits: 3, cacheSavedMicros: 1_234_567 });
});
