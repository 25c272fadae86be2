/** `sluice usage`: spend by any attribution dimension, from the control plane's spend API. */
import type { GroupDimension, UsageRow as SpendRow, UsageSummary } from '@sluice/control-plane/usage';
import { adminHeaders, table } from './status.js';

export interface UsageArgs {
  readonly url: string;
  readonly token: string | undefined;
  /** Dimensions to group by (comma-separated on the command line). */
  readonly by: string;
  readonly since: string;
  readonly until: string | undefined;
  /** Dimension filters (`--namespace x`, `--team a,b`, …). */
  readonly filters: Readonly<Record<string, string>>;
  readonly limit: number;
  readonly sort: string;
}

/** The spend API's answer (`GET /v1/usage`), as the control plane defines it. */
export type UsageAnswer = UsageSummary;
export type UsageRow = SpendRow;

/** The dimensions a query can filter by (the control plane's, checked at compile time). */
export const FILTER_DIMENSIONS = ['namespace', 'serviceAccount', 'team', 'feature', 'user', 'route', 'backend', 'model'] as const satisfies readonly GroupDimension[];


export async function fetchUsage(a: UsageArgs): Promise<UsageAnswer> {
  const q = new URLSearchParams({ by: a.by, since: a.since, limit: String(a.limit), sort: a.sort });
  if (a.until !== undefined) q.set('until', a.until);
  for (const [k, v] of Object.entries(a.filters)) q.set(k, v);
  const url = `${a.url.replace(/\/+$/, '')}/v1/usage?${q.toString()}`;
  const res = await fetch(url, { headers: adminHeaders(a.token) });
  const body = (await res.json().catch(() => ({}))) as { error?: string };
  if (!res.ok) throw new Error(`${url} answered ${res.status}${body.error === undefined ? '' : `: ${body.error}`}${res.status === 401 ? ' (set SLUICE_CP_ADMIN_TOKEN or --token)' : ''}`);
  return body as unknown as UsageAnswer;
}

/** `12345678` µ$ → `$12.35`; below a cent to the micro-dollar so small spend is visible. Display only. */
export function dollars(micros: number): string {
  const cents = Math.round(micros / 10_000);
  if (micros > 0 && micros < 10_000) return `$0.${String(micros).padStart(6, '0')}`;
  const s = String(cents).padStart(3, '0');
  return `$${Number(s.slice(0, -2)).toLocaleString('en-US')}.${s.slice(-2)}`;
}

const int = (n: number): string => n.toLocaleString('en-US');

export function formatUsage(u: UsageAnswer): string {
  const dims = u.by.length === 0 ? [] : u.by;
  const header = [...dims.map((d) => d.toUpperCase()), 'REQUESTS', 'ERRORS', 'INPUT', 'CACHED', 'OUTPUT', 'COST', 'CACHE HITS', 'SAVED $'];
  const row = (key: Record<string, string>, t: Omit<UsageRow, 'key'>, total = false): string[] => [
    ...dims.map((d) => (total ? (key[d] ?? '') : key[d] === '' || key[d] === undefined ? '(none)' : key[d])),
    int(t.requests),
    int(t.errors),
    int(t.inputTokens),
    int(t.cachedInputTokens),
    int(t.outputTokens),
    dollars(t.costMicros),
    int(t.cacheHits),
    dollars(t.cacheSavedMicros),
  ];
  const rows = u.rows.map((r) => row(r.key, r));
  const totalKey = Object.fromEntries(dims.map((d, i) => [d, i === 0 ? 'TOTAL' : '']));
  const lines = [table(header, [...rows, row(totalKey, u.total, true)])];
  lines.push(`${u.from} → ${u.to} (${u.granularity} buckets)${u.nextOffset !== undefined ? `; ${u.totalRows - u.rows.length} more rows (--limit)` : ''}`);
  return lines.join('\n');
}
