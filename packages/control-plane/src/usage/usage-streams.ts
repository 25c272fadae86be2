import type * as grpc from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { Logger } from '@sluice/core';
import { sluice } from '@sluice/protocol';
import type { Authenticator } from '../auth.js';
import { authenticateNode, serveInOrder } from '../stream-serve.js';
import type { UsageRecordIn } from './model.js';
import type { UsageStore } from './store.js';

import v1 = sluice.v1;

export interface UsageStreamsOptions {
  readonly store: UsageStore;
  readonly logger: Logger;
  readonly authenticator?: Authenticator;
}

/**
 * StreamUsage: a sidecar sends usage batches `(epoch, seq)`; the control plane applies each one to
 * the store (at most once per `(namespace, epoch, seq)`), then acknowledges it. A batch the store
 * cannot take (Redis down) closes the stream (UNAVAILABLE) without an acknowledgement, so nothing
 * later on it is applied out of order: the sidecar reopens and resends every unacknowledged batch. The first message of a
 * stream carries the node, authenticated like StreamPolicy; every record is charged to that node's
 * namespace and service account, whatever the record says.
 */
export class UsageStreams {
  readonly #o: UsageStreamsOptions;
  readonly counters = { applied: 0, duplicates: 0, failed: 0, records: 0 };

  constructor(o: UsageStreamsOptions) {
    this.#o = o;
  }

  readonly handle = (call: grpc.ServerDuplexStream<v1.UsageBatch, v1.UsageAck.$Properties>): void => {
    let node: { namespace: string; serviceAccount: string } | undefined;
    serveInOrder(call, this.#o.logger, 'usage', async (b, fail) => {
      if (node === undefined) {
        const n = b.node;
        if (!n?.namespace) return fail(GrpcStatus.FAILED_PRECONDITION, 'the first UsageBatch of a stream must carry the node');
        const serviceAccount = n.serviceAccount || 'default';
        if (!(await authenticateNode(call, this.#o.authenticator, { namespace: n.namespace, serviceAccount, pod: n.pod ?? '' }, fail))) return;
        node = { namespace: n.namespace, serviceAccount };
      }
      const seq = Number(b.seq);
      if (seq === 0) return; // the node-only opening message
      const epoch = b.reporterEpoch;
      const records: UsageRecordIn[] = b.records.map((r) => ({
        minuteUnix: Number(r.minuteUnix),
        serviceAccount: (node as { serviceAccount: string }).serviceAccount,
        team: r.team ?? '',
        feature: r.feature ?? '',
        user: r.user ?? '',
        route: r.route ?? '',
        backend: r.backend ?? '',
        model: r.model ?? '',
        requests: Number(r.requests),
        errors: Number(r.errors),
        inputTokens: Number(r.inputTokens),
        cachedInputTokens: Number(r.cachedInputTokens),
        cacheWriteTokens: Number(r.cacheWriteTokens),
        outputTokens: Number(r.outputTokens),
        reasoningTokens: Number(r.reasoningTokens),
        costMicros: Number(r.costMicros),
        feedback: Number(r.feedback),
        feedbackScoreMilli: Number(r.feedbackScoreMilli),
        cacheHits: Number(r.cacheHits),
        cacheSavedMicros: Number(r.cacheSavedMicros),
      }));
      let result: 'applied' | 'duplicate';
      try {
        result = await this.#o.store.apply(node.namespace, epoch, seq, records);
      } catch (e) {
        if (e instanceof RangeError) return fail(GrpcStatus.INVALID_ARGUMENT, e.message);
        this.counters.failed++;
        // Close the stream: nothing after this batch may be applied before it (the high-water
        // mark needs order). The sidecar reopens and resends every unacknowledged batch in order.
        return fail(GrpcStatus.UNAVAILABLE, `usage batch ${epoch}/${seq} not applied: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (result === 'applied') {
        this.counters.applied++;
        this.counters.records += records.length;
      } else this.counters.duplicates++;
      call.write({ reporterEpoch: epoch, seq, duplicate: result === 'duplicate' });
    });
  };
}
