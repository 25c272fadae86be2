import { createHash } from 'node:crypto';
import type { SluiceError } from '@sluice/core';

/** What a leader's request came to, for the requests that waited on it. */
export type CoalescedResult = { readonly out: string | Buffer; readonly backend: string; readonly upstreamModel: string; readonly leaderId: string } | { readonly error: SluiceError };

export interface Leader {
  resolve(r: CoalescedResult): void;
  /** Ends the leadership (the key is free again); resolves waiters with an error if not resolved. */
  done(): void;
}

/**
 * Identical non-streamed requests in flight at the same time share one upstream call: the first
 * leads, the others wait for its answer and replay it. Keys: route, API, tenant (the caller's user
 * header) and the request body in canonical JSON, hashed.
 */
/** JSON with object keys sorted: equal requests give equal text whatever their key order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

export class Coalescer {
  readonly #inflight = new Map<string, Promise<CoalescedResult>>();

  static key(route: string, api: string, tenant: string, canonicalBody: string): string {
    return createHash('sha256').update(`${route}\u0000${api}\u0000${tenant}\u0000${canonicalBody}`).digest('base64url');
  }

  /** The answer of an identical request in flight, if there is one. */
  waitFor(key: string): Promise<CoalescedResult> | undefined {
    return this.#inflight.get(key);
  }

  lead(key: string, fallbackError: () => SluiceError): Leader {
    let settle!: (r: CoalescedResult) => void;
    const p = new Promise<CoalescedResult>((resolve) => (settle = resolve));
    this.#inflight.set(key, p);
    let resolved = false;
    return {
      resolve: (r) => {
        if (resolved) return;
        resolved = true;
        settle(r);
      },
      done: () => {
        if (this.#inflight.get(key) === p) this.#inflight.delete(key);
        if (!resolved) {
          resolved = true;
          settle({ error: fallbackError() });
        }
      },
    };
  }

  get size(): number {
    return this.#inflight.size;
  }
}
