import type * as grpc from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { Logger } from '@sluice/core';
import type { Authenticator } from './auth.js';

/** Ends a stream with a gRPC status; nothing after it is handled. */
export type StreamFail = (code: GrpcStatus, message: string) => void;

/**
 * Handles a bidirectional stream's messages one at a time, in order (each may await the store), and
 * closes it with a status on `fail` (later messages are ignored). The stream ends when the client
 * ends it. Handler errors are logged, not thrown.
 */
export function serveInOrder<Req>(call: grpc.ServerDuplexStream<Req, unknown>, logger: Logger, what: string, onMessage: (m: Req, fail: StreamFail) => Promise<void>): void {
  let chain: Promise<void> = Promise.resolve();
  let closed = false;
  const fail: StreamFail = (code, message) => {
    closed = true;
    logger.warn({ code: GrpcStatus[code] }, `${what} stream rejected: ${message}`);
    call.emit('error', Object.assign(new Error(message), { code, details: message }));
  };
  call.on('data', (m: Req) => {
    chain = chain
      .then(async () => {
        if (!closed) await onMessage(m, fail);
      })
      .catch((e: unknown) => logger.error({ err: e }, `${what} stream failure`));
  });
  call.on('end', () => call.end());
}

/**
 * Checks the call's bearer token against the node it claims (when an authenticator is set, i.e. in a
 * cluster). On failure the stream is failed and false returned.
 */
export async function authenticateNode(call: grpc.ServerDuplexStream<unknown, unknown>, auth: Authenticator | undefined, node: { namespace: string; serviceAccount: string; pod: string }, fail: StreamFail): Promise<boolean> {
  if (auth === undefined) return true;
  const header = call.metadata.get('authorization')[0];
  const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : undefined;
  const r = await auth.authenticate(token, node);
  if (r.ok) return true;
  fail(r.reason === 'denied' ? GrpcStatus.PERMISSION_DENIED : GrpcStatus.UNAUTHENTICATED, r.message);
  return false;
}
