import { randomBytes } from 'node:crypto';

const PREFIX_BYTES = 6;
let prefix = randomBytes(PREFIX_BYTES).toString('hex');
let counter = 0;

/**
 * A request id unique across processes without a syscall per request: a random per-process prefix
 * (re-drawn every 2^32 ids) plus a counter, 24 hex characters.
 */
export function newRequestId(): string {
  counter = (counter + 1) >>> 0;
  if (counter === 0) prefix = randomBytes(PREFIX_BYTES).toString('hex');
  return prefix + counter.toString(16).padStart(8, '0') + (Date.now() & 0xffff).toString(16).padStart(4, '0');
}

const SAFE_ID = /^[\w.:@/+=-]{1,128}$/;

/** A client-sent `x-request-id` is kept only if it is short and printable. */
export function acceptRequestId(value: string | undefined): string | undefined {
  return value !== undefined && SAFE_ID.test(value) ? value : undefined;
}
