#!/usr/bin/env node
/**
 * The sidecar binary: LLM API on loopback, policy from the control plane over StreamPolicy.
 * Configuration: SLUICE_SIDECAR_* (see config.ts and the README).
 */
import { randomBytes } from 'node:crypto';
import { createLogger } from '@sluice/core';
import { loadSidecarConfig } from './config.js';
import { readLabels } from './labels.js';
import { PolicyClient } from './control-client.js';
import { startSidecar } from './server.js';
import { QuotaClient } from './limits/quota-client.js';
import { UsageReporter } from './usage/reporter.js';
import { createTracing } from './tracing.js';

async function main(): Promise<void> {
  const config = loadSidecarConfig();
  const logger = createLogger({ name: 'sluice-sidecar', level: config.logLevel });
  if (config.controlAddress === '') throw new Error('SLUICE_SIDECAR_CONTROL_ADDRESS is required (host:port of the control plane)');
  const node = {
    pod: config.podName,
    namespace: config.podNamespace,
    serviceAccount: config.serviceAccount,
    labels: readLabels(config.podLabelsFile),
    instanceId: randomBytes(8).toString('hex'),
    sidecarVersion: '0.1.0',
  };
  const tracing = config.otlpEndpoint === '' ? undefined : await createTracing({ endpoint: config.otlpEndpoint, pod: node.pod, namespace: node.namespace, logger });
  const sidecar = await startSidecar({
    config,
    logger,
    identity: { namespace: node.namespace, serviceAccount: node.serviceAccount, labels: node.labels },
    ...(tracing === undefined ? {} : { tracing }),
  });
  const client = new PolicyClient({
    address: config.controlAddress,
    node,
    apply: (s) => sidecar.applySnapshot(s),
    currentVersion: () => sidecar.snapshotVersion ?? '',
    logger,
    stateDir: config.stateDir === '' ? undefined : config.stateDir,
    caFile: config.caFile === '' ? undefined : config.caFile,
    caPem: config.caPem === '' ? undefined : config.caPem,
    tokenFile: config.tokenFile === '' ? undefined : config.tokenFile,
  });
  await client.start();
  // Global limits draw credit over StreamQuota on the same connection.
  const quota = new QuotaClient({ client: client.controlClient, node, logger });
  sidecar.setQuota(quota);
  // Usage is aggregated per minute and sent every second over StreamUsage, exactly once.
  const usage = new UsageReporter({ client: client.controlClient, node, logger });
  sidecar.setUsage(usage);
  logger.info({ url: sidecar.url, admin: sidecar.adminUrl, control: config.controlAddress }, 'sidecar started');
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    // Kubernetes sends SIGTERM: stop accepting, let streams in flight finish, then exit.
    sidecar
      .drain(config.drainTimeoutMs)
      // Unused global-limit credit goes back so other sidecars can use it (bounded wait).
      .then(() => Promise.race([quota.flush(), new Promise((r) => setTimeout(r, 2000).unref())]))
      // Every request's usage reaches the control plane before the process goes (bounded wait).
      .then(() => usage.close(5000))
      .then(() => tracing?.shutdown())
      .then(
        () => {
          quota.close();
          client.close();
          process.exit(0);
        },
        () => process.exit(1),
      );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((e: unknown) => {
  process.stderr.write(`sluice-sidecar: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
