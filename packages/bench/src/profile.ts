/**
 * Reads a V8 .cpuprofile (what `node --cpu-prof` writes) and lists the functions with the most self
 * time, so a low ratio comes with a first idea of where the time goes.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
}

export interface HotFunction {
  readonly name: string;
  readonly where: string;
  /** Self time in ms. */
  readonly selfMs: number;
  /** Share of the busy (non-idle) samples, 0..1. */
  readonly share: number;
}

export interface ProfileSummary {
  readonly file: string;
  readonly totalMs: number;
  readonly idleMs: number;
  readonly top: HotFunction[];
}

function where(url: string, line: number, root: string): string {
  if (url === '') return '';
  let u = url.startsWith('file://') ? url.slice('file://'.length) : url;
  if (u.startsWith('/')) u = relative(root, u);
  return `${u}:${line + 1}`;
}

/** Top `n` functions by self time (aggregated by name and location). */
export function summarizeProfile(file: string, n: number, root: string): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const node of p.nodes) byId.set(node.id, node);
  const selfUs = new Map<number, number>();
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  // Sample i lasted until sample i+1 was taken.
  for (let i = 0; i < samples.length; i++) {
    const id = samples[i];
    if (id === undefined) continue;
    const d = deltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, d));
  }
  const agg = new Map<string, { name: string; where: string; us: number }>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (node === undefined) continue;
    const cf = node.callFrame;
    const name = cf.functionName === '' ? '(anonymous)' : cf.functionName;
    total += us;
    if (name === '(idle)') {
      idle += us;
      continue;
    }
    const w = where(cf.url, cf.lineNumber, root);
    const key = `${name}\u0000${w}`;
    const a = agg.get(key);
    if (a === undefined) agg.set(key, { name, where: w, us });
    else a.us += us;
  }
  const busy = Math.max(1, total - idle);
  const top = [...agg.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, n)
    .map((a) => ({ name: a.name, where: a.where, selfMs: a.us / 1000, share: a.us / busy }));
  return { file, totalMs: total / 1000, idleMs: idle / 1000, top };
}
