/**
 * Anthropic prompt caching, coordinated by the gateway: `cache_control` breakpoints on the long,
 * stable prefixes of a Messages request — the tool definitions and the system prompt — so the
 * provider bills their repeats at the cache-read price. Pure: it returns the members to replace.
 */
import { heuristicTokens } from './tokens/heuristic.js';

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const EPHEMERAL = Object.freeze({ type: 'ephemeral' });

/** Whether any part of the request already carries a breakpoint (the caller manages caching itself). */
function hasBreakpoint(v: unknown, depth = 0): boolean {
  if (depth > 6) return false;
  if (Array.isArray(v)) return v.some((x) => hasBreakpoint(x, depth + 1));
  if (!isObj(v)) return false;
  if (v['cache_control'] !== undefined) return true;
  return Object.values(v).some((x) => hasBreakpoint(x, depth + 1));
}

const tokensOf = (v: unknown): number => (v === undefined ? 0 : heuristicTokens(typeof v === 'string' ? v : JSON.stringify(v)));

/**
 * The breakpoints for an Anthropic Messages body: one on the last tool when the tools alone reach
 * `minTokens` (their cache survives a changed system prompt), one on the last system block when
 * tools + system reach it. Nothing when the request sets `cache_control` anywhere already, or when
 * no prefix is long enough (the provider would not cache it). Returns the replaced members, or
 * undefined when nothing changes.
 */
export function promptCacheBreakpoints(body: Json, minTokens: number): { tools?: unknown[]; system?: unknown[] } | undefined {
  const tools = Array.isArray(body['tools']) && body['tools'].length > 0 ? (body['tools'] as unknown[]) : undefined;
  const system = body['system'];
  const blocks: unknown[] | undefined = typeof system === 'string' ? (system.length > 0 ? [{ type: 'text', text: system }] : undefined) : Array.isArray(system) && system.length > 0 ? system : undefined;
  if (tools === undefined && blocks === undefined) return undefined;
  if (hasBreakpoint(tools) || hasBreakpoint(blocks) || hasBreakpoint(body['messages'])) return undefined;
  const toolTokens = tokensOf(tools);
  const out: { tools?: unknown[]; system?: unknown[] } = {};
  const mark = (list: unknown[]): unknown[] | undefined => {
    const last = list[list.length - 1];
    return isObj(last) ? [...list.slice(0, -1), { ...last, cache_control: EPHEMERAL }] : undefined;
  };
  if (tools !== undefined && toolTokens >= minTokens) {
    const marked = mark(tools);
    if (marked !== undefined) out.tools = marked;
  }
  if (blocks !== undefined && toolTokens + tokensOf(blocks) >= minTokens) {
    const marked = mark(blocks);
    if (marked !== undefined) out.system = marked;
  }
  return out.tools === undefined && out.system === undefined ? undefined : out;
}
