import { PolicyClient, type PolicyClientOptions } from './control-client.js';
import { QuotaClient, type QuotaClientOptions } from './limits/quota-client.js';
import type { Sidecar } from './server.js';
import { UsageReporter } from './usage/reporter.js';

export interface ControlLinkOptions extends Omit<PolicyClientOptions, 'apply' | 'currentVersion'> {
  /** Quota client tuning (timeouts, lease sizes); the connection and node are the link's. */
  readonly quota?: Omit<QuotaClientOptions, 'client' | 'address' | 'credentials' | 'node' | 'logger'>;
}

/** A sidecar's three streams to its control plane, on one connection. */
export interface ControlLink {
  readonly policy: PolicyClient;
  readonly quota: QuotaClient;
  readonly usage: UsageReporter;
  /** Loads the last good snapshot from disk (if any) and connects. */
  start(): Promise<void>;
  /**
   * Returns unused global-limit credit (waiting at most `flushMs`), waits for the usage
   * acknowledgements (at most `usageMs`), then closes the streams.
   */
  close(o?: { flushMs?: number; usageMs?: number }): Promise<void>;
}

/**
 * Connects a sidecar to its control plane: snapshots over StreamPolicy applied to it, credit for
 * global limits over StreamQuota, usage over StreamUsage — the sidecar binary and `sluice dev` alike.
 */
export function linkSidecar(sidecar: Sidecar, o: ControlLinkOptions): ControlLink {
  const policy = new PolicyClient({ ...o, apply: (s) => sidecar.applySnapshot(s), currentVersion: () => sidecar.snapshotVersion ?? '' });
  const quota = new QuotaClient({ ...o.quota, client: policy.controlClient, node: o.node, logger: o.logger });
  const usage = new UsageReporter({ client: policy.controlClient, node: o.node, logger: o.logger });
  sidecar.setQuota(quota);
  sidecar.setUsage(usage);
  return {
    policy,
    quota,
    usage,
    start: () => policy.start(),
    async close({ flushMs = 2000, usageMs = 5000 } = {}) {
      await Promise.race([quota.flush(), new Promise((r) => setTimeout(r, flushMs).unref())]);
      await usage.close(usageMs);
      quota.close();
      policy.close();
    },
  };
}
