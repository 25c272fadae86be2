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
  children?: number[];
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

export interface PackageShare {
  /** npm package or workspace package; "node core / runtime" when no package is on the stack. */
  readonly name: string;
  readonly selfMs: number;
  readonly share: number;
}

export interface ProfileSummary {
  readonly file: string;
  readonly totalMs: number;
  readonly idleMs: number;
  readonly top: HotFunction[];
  /**
   * Busy time by the package that caused it: each sample goes to the innermost frame on its stack
   * that belongs to a package (node_modules/X or packages/X), so native and node-core work (socket
   * writes, fs.write) is charged to the package that called it.
   */
  readonly byPackage: PackageShare[];
}

const SPECIAL = new Set(['(garbage collector)', '(program)', '(idle)', '(root)']);

/** Package of a script URL, or undefined for node core, natives and anything else. */
function packageOf(url: string, workspace: ReadonlyMap<string, string>): string | undefined {
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    const [a, b] = rest;
    if (a === undefined) return undefined;
    return a.startsWith('@') && b !== undefined ? `${a}/${b}` : a;
  }
  const m = /\/packages\/([^/]+)\//.exec(url);
  if (m?.[1] !== undefined) return workspace.get(m[1]) ?? `packages/${m[1]}`;
  return undefined;
}

function where(url: string, line: number, root: string): string {
  if (url === '') return '';
  let u = url.startsWith('file://') ? url.slice('file://'.length) : url;
  if (u.startsWith('/')) u = relative(root, u);
  return `${u}:${line + 1}`;
}

/** Top `n` functions by self time (aggregated by name and location), and time by package. */
export function summarizeProfile(file: string, n: number, root: string, workspace: ReadonlyMap<string, string> = new Map()): ProfileSummary {
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

  const parent = new Map<number, number>();
  for (const node of p.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
  const pkgOfNode = new Map<number, string>();
  const resolvePkg = (id: number): string => {
    const known = pkgOfNode.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id);
    let pkg: string;
    if (node === undefined) pkg = 'node core / runtime';
    else if (SPECIAL.has(node.callFrame.functionName)) pkg = node.callFrame.functionName;
    else {
      const own = packageOf(node.callFrame.url, workspace);
      const up = parent.get(id);
      pkg = own ?? (up === undefined ? 'node core / runtime' : resolvePkg(up));
      if (pkg === '(root)') pkg = 'node core / runtime';
    }
    pkgOfNode.set(id, pkg);
    return pkg;
  };
  const pkgUs = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const pkg = resolvePkg(id);
    if (pkg === '(idle)') continue;
    pkgUs.set(pkg, (pkgUs.get(pkg) ?? 0) + us);
  }
  const byPackage = [...pkgUs]
    .sort((a, b) => b[1] - a[1])
    .map(([name, us]) => ({ name, selfMs: us / 1000, share: us / busy }));

  const top = [...agg.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, n)
    .map((a) => ({ name: a.name, where: a.where, selfMs: a.us / 1000, share: a.us / busy }));
  return { file, totalMs: total / 1000, idleMs: idle / 1000, top, byPackage };
}
