import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SnapshotLimit } from '../snapshot.js';
import { compileLimits, limitKey, limitMatches, type LimitKeyContext } from './key.js';

const limit = (over: Partial<SnapshotLimit> = {}): SnapshotLimit => ({
  id: 'shop/budget',
  unit: 'requests',
  window: 'minute',
  calendarAligned: false,
  timeZone: 'UTC',
  max: 10,
  key: [],
  scope: 'local',
  failureMode: 'FailClosed',
  mode: 'enforce',
  routes: [],
  models: [],
  ...over,
});

const headers: Record<string, string> = { 'x-user': 'alice', 'x-empty': '', 'x-odd': 'a|b=c%{d}' };
const ctx: LimitKeyContext = { namespace: 'shop', serviceAccount: 'web', labels: { team: 'search', app: 'ui' }, headers: (n) => headers[n] };

const keyTable: Array<{ name: string; key: SnapshotLimit['key']; want: string | undefined }> = [
  { name: 'empty key: one counter', key: [], want: '' },
  { name: 'label + header', key: [{ source: 'label', name: 'team' }, { source: 'header', name: 'X-User' }], want: 'team=search|x-user=alice' },
  { name: 'namespace and service account', key: [{ source: 'namespace', name: '' }, { source: 'serviceAccount', name: '' }], want: 'namespace=shop|serviceAccount=web' },
  { name: 'missing label: limit does not apply', key: [{ source: 'label', name: 'tier' }], want: undefined },
  { name: 'inherited property is not a label', key: [{ source: 'label', name: 'constructor' }], want: undefined },
  { name: 'missing header', key: [{ source: 'label', name: 'team' }, { source: 'header', name: 'x-tenant' }], want: undefined },
  { name: 'empty header counts as missing', key: [{ source: 'header', name: 'x-empty' }], want: undefined },
  { name: 'unknown source', key: [{ source: 'cookie', name: 'sid' }], want: undefined },
  { name: 'separators are escaped', key: [{ source: 'header', name: 'x-odd' }], want: 'x-odd=a%7Cb%3Dc%25%7Bd%7D' },
];
for (const row of keyTable) {
  test(`limitKey: ${row.name}`, () => assert.equal(limitKey(limit({ key: row.key }), ctx), row.want));
}

const matchTable: Array<{ name: string; routes: string[]; models: string[]; routeId: string; model: string; want: boolean }> = [
  { name: 'no match = everything', routes: [], models: [], routeId: 'shop/chat', model: 'gpt-4o', want: true },
  { name: 'route listed', routes: ['shop/chat', 'shop/embed'], models: [], routeId: 'shop/embed', model: 'x', want: true },
  { name: 'route not listed', routes: ['shop/chat'], models: [], routeId: 'other/chat', model: 'x', want: false },
  { name: 'exact model', routes: [], models: ['gpt-4o'], routeId: 'r/r', model: 'gpt-4o', want: true },
  { name: 'exact model is not a prefix', routes: [], models: ['gpt-4o'], routeId: 'r/r', model: 'gpt-4o-mini', want: false },
  { name: 'glob', routes: [], models: ['claude-*'], routeId: 'r/r', model: 'claude-haiku-4-5', want: true },
  { name: 'glob in the middle', routes: [], models: ['gpt-*-mini'], routeId: 'r/r', model: 'gpt-4o-mini', want: true },
  { name: 'glob anchored', routes: [], models: ['gpt-*'], routeId: 'r/r', model: 'my-gpt-4', want: false },
  { name: 'dots are literal', routes: [], models: ['gpt-4.1*'], routeId: 'r/r', model: 'gpt-441', want: false },
  { name: 'route and model both required', routes: ['shop/chat'], models: ['gpt-*'], routeId: 'shop/chat', model: 'claude', want: false },
];
for (const row of matchTable) {
  test(`limitMatches: ${row.name}`, () => {
    const l = limit({ routes: row.routes, models: row.models });
    assert.equal(limitMatches(l, { routeId: row.routeId, model: row.model }), row.want);
    assert.equal(compileLimits([l]).limits[0]?.matches({ routeId: row.routeId, model: row.model }), row.want);
  });
}

test('compileLimits: matching returns every applicable limit with its key', () => {
  const a = limit({ id: 'a', key: [{ source: 'label', name: 'team' }] });
  const b = limit({ id: 'b', key: [{ source: 'header', name: 'x-user' }], models: ['gpt-*'] });
  const c = limit({ id: 'c', key: [{ source: 'header', name: 'x-missing' }] });
  const d = limit({ id: 'd', routes: ['other/route'] });
  const got = compileLimits([a, b, c, d]).matching({ routeId: 'shop/chat', model: 'gpt-4o' }, ctx);
  assert.deepEqual(got.map((m) => [m.limit.id, m.key]), [['a', 'team=search'], ['b', 'x-user=alice']]);
});
