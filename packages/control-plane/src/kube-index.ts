/**
 * Kubernetes mode (`@sluice/control-plane/kube`): the CRD/Secret source, Lease leader election and the
 * status writer. Kept apart from the package index so that `@kubernetes/client-node` (large) is only
 * loaded when the control plane actually runs against a cluster.
 */
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from './control-plane.js';
import { KubeSource, type BackoffOptions } from './kube-source.js';
import { LeaderElector } from './leader.js';
import { StatusWriter } from './status-writer.js';
import { AckReports } from './ack-reports.js';

export * from './kube-source.js';
export * from './leader.js';
export * from './status-writer.js';
export * from './token-review.js';
export * from './ack-reports.js';

/** KubeConfig from `KUBECONFIG` / `~/.kube/config`, or the in-cluster service account. */
export function kubeConfigFromDefault(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}

export interface KubeControlPlaneOptions extends Omit<ControlPlaneOptions, 'source'> {
  readonly kubeConfig: KubeConfig;
  readonly lease: {
    readonly namespace: string;
    readonly name: string;
    readonly identity: string;
    readonly leaseDurationSeconds?: number;
    readonly renewIntervalMs?: number;
    readonly retryIntervalMs?: number;
    readonly renewDeadlineMs?: number;
  };
  readonly status?: { readonly debounceMs?: number; readonly resyncMs?: number; readonly peerPollMs?: number };
  /** Per-replica ACK reports (tests shorten the intervals). */
  readonly ackReports?: { readonly refreshMs?: number; readonly debounceMs?: number };
  readonly backoff?: BackoffOptions;
  readonly secretSyncTimeoutMs?: number;
}

export interface KubeControlPlane {
  readonly controlPlane: ControlPlane;
  readonly source: KubeSource;
  readonly elector: LeaderElector;
  readonly statusWriter: StatusWriter;
  /** Stops status writing, releases the Lease (when held), then closes the control plane. */
  close(): Promise<void>;
}

/**
 * A control plane replica against a cluster: every replica serves sidecar streams from its own
 * informers; the one holding the Lease also writes the objects' status.
 */
export async function startKubeControlPlane(o: KubeControlPlaneOptions): Promise<KubeControlPlane> {
  const { kubeConfig, lease, status, backoff, secretSyncTimeoutMs, ackReports: _ackReports, ...cpOptions } = o;
  const source = new KubeSource({ kubeConfig, logger: o.logger, backoff, secretSyncTimeoutMs });
  let controlPlane: ControlPlane;
  try {
    controlPlane = await startControlPlane({ ...cpOptions, source });
  } catch (e) {
    await source.close();
    throw e;
  }
  const reports = new AckReports({
    kubeConfig,
    namespace: lease.namespace,
    leaseName: lease.name,
    identity: lease.identity,
    counts: () => controlPlane.streams.programmed(),
    onChange: (listener) => {
      const offAnswers = controlPlane.streams.onAnswer(listener);
      const offCompiles = controlPlane.engine.subscribe(listener);
      return () => {
        offAnswers();
        offCompiles();
      };
    },
    logger: o.logger,
    ...o.ackReports,
  });
  const statusWriter = new StatusWriter({ kubeConfig, controlPlane, observed: (key) => source.observed(key), logger: o.logger, peers: () => reports.peers(), ...status });
  const elector = new LeaderElector({
    kubeConfig,
    ...lease,
    logger: o.logger,
    onStartedLeading: () => statusWriter.setLeading(true),
    onStoppedLeading: () => statusWriter.setLeading(false),
  });
  elector.start();
  return {
    controlPlane,
    source,
    elector,
    statusWriter,
    async close() {
      await statusWriter.close();
      await reports.close();
      await elector.close();
      await controlPlane.close();
    },
  };
}

/**
 * Namespace labels for the injection webhook, read from the API server and cached briefly, so the
 * webhook can honour `sluice.dev/injection` even when its configuration selects broadly.
 */
export function namespaceLabelLookup(kc: KubeConfig, ttlMs = 30_000): (ns: string) => Promise<Record<string, string> | undefined> {
  const api = kc.makeApiClient(CoreV1Api);
  const cache = new Map<string, { at: number; labels: Record<string, string> | undefined }>();
  return async (ns) => {
    const hit = cache.get(ns);
    if (hit !== undefined && Date.now() - hit.at < ttlMs) return hit.labels;
    const n = await api.readNamespace({ name: ns });
    const labels = n.metadata?.labels ?? {};
    if (cache.size > 10_000) cache.clear();
    cache.set(ns, { at: Date.now(), labels });
    return labels;
  };
}
