/** `sluice status`: the sidecars connected to a control plane, from its admin API. */
export interface SidecarRow {
  pod: string;
  namespace: string;
  versionSent: string;
  versionAcked: string;
  connectedSince: string;
  lastNack: { version: string; message: string; at: string } | null;
}

/** The admin API's bearer token header, when there is a token. */
export function adminHeaders(token: string | undefined): Record<string, string> {
  return token === undefined || token === '' ? {} : { authorization: `Bearer ${token}` };
}

export async function fetchSidecars(adminUrl: string, token?: string): Promise<SidecarRow[]> {
  const res = await fetch(`${adminUrl.replace(/\/+$/, '')}/v1/sidecars`, { headers: adminHeaders(token) });
  if (!res.ok) throw new Error(`${adminUrl}/v1/sidecars answered ${res.status}`);
  return ((await res.json()) as { sidecars: SidecarRow[] }).sidecars;
}

/** An aligned text table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function formatSidecars(rows: readonly SidecarRow[], now = Date.now()): string {
  if (rows.length === 0) return 'no sidecars connected';
  const age = (iso: string): string => {
    const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
    return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
  };
  return table(
    ['NAMESPACE', 'POD', 'SENT', 'ACKED', 'CONNECTED', 'LAST NACK'],
    [...rows]
      .sort((a, b) => (a.namespace + a.pod < b.namespace + b.pod ? -1 : 1))
      .map((r) => [r.namespace, r.pod, r.versionSent || '-', r.versionAcked || '-', age(r.connectedSince), r.lastNack ? `${r.lastNack.version} ${age(r.lastNack.at)} ago: ${r.lastNack.message}` : '-']),
  );
}
