import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorBody, SluiceError, type ApiShape } from '@sluice/core';
import type { ResponseSink } from './batch/results.js';

/**
 * Reads a request body up to `maxBytes` within `timeoutMs`. Fails with 413 as soon as the declared or
 * received size passes the limit, 408 when the body is too slow, 499 when the client goes away.
 */
export function readBody(req: IncomingMessage, maxBytes: number, timeoutMs: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) {
    return Promise.reject(new SluiceError('SLUICE_ERR_REQUEST_TOO_LARGE', `Request body of ${declared} bytes exceeds the limit of ${maxBytes} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (err: SluiceError | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (err === undefined) {
        resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
      } else {
        // Drain and discard what is still coming, so the client can read our answer.
        req.resume();
        reject(err);
      }
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) finish(new SluiceError('SLUICE_ERR_REQUEST_TOO_LARGE', `Request body exceeds the limit of ${maxBytes} bytes`));
      else chunks.push(chunk);
    };
    const onEnd = (): void => finish(undefined);
    const onError = (): void => finish(new SluiceError('SLUICE_ERR_REQUEST_ABORTED'));
    const onClose = (): void => {
      if (!req.complete) finish(new SluiceError('SLUICE_ERR_REQUEST_ABORTED'));
    };
    const timer = setTimeout(() => finish(new SluiceError('SLUICE_ERR_REQUEST_BODY_TIMEOUT', `Request body not received within ${timeoutMs} ms`)), timeoutMs);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/** Answers an error in the caller's API shape with `x-sluice-error-code`. */
export function sendError(res: ResponseSink, shape: ApiShape, err: SluiceError, requestId: string, closeConnection = false): void {
  if (res.headersSent || res.destroyed) return;
  const body = errorBody(shape, err, requestId);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-request-id': requestId,
    'x-sluice-error-code': err.code,
    ...err.headers,
  };
  if (closeConnection) headers['connection'] = 'close';
  res.writeHead(err.status, headers);
  res.end(body);
}

/** Resolves when `res` can take more data or is gone. */
export function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * Deepest nesting of objects and arrays a request may have. Real requests stay far below (tool
 * schemas included); deeper ones would overflow the stack of every recursive walk over the body
 * (guardrail scans, cache keys, prompt logging), so they are refused up front.
 */
export const MAX_JSON_DEPTH = 128;

/** Whether `root` nests objects/arrays more than `limit` levels deep (iterative: no recursion). */
export function nestedDeeperThan(root: unknown, limit: number): boolean {
  const values: unknown[] = [root];
  const depths: number[] = [1];
  while (values.length > 0) {
    const v = values.pop();
    const d = depths.pop() as number;
    if (d > limit) return true;
    if (Array.isArray(v)) {
      for (const x of v) {
        if (typeof x !== 'object' || x === null) continue;
        values.push(x);
        depths.push(d + 1);
      }
    } else if (typeof v === 'object' && v !== null) {
      for (const k in v) {
        const x = (v as Record<string, unknown>)[k];
        if (typeof x !== 'object' || x === null) continue;
        values.push(x);
        depths.push(d + 1);
      }
    }
  }
  return false;
}
