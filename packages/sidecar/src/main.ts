#!/usr/bin/env node
/**
 * The sidecar binary: LLM API on loopback, policy from the control plane over StreamPolicy.
 * Configuration: SLUICE_SIDECAR_* (see config.ts and the README).
 */
import { randomBytes } from 'node:crypto';
import { createLogger, missingSidecarNodeFlags } from '@sluice/core';
import { loadSidecarConfig } from './config.js';
import { readLabels } from './labels.js';
import { startSidecar } from './server.js';
import { linkSidecar } from './control-link.js';
import { createTracing } from './tracing.js';

async function main(): Promise<void> {
  const config = loadSidecarConfig();
  const logger = createLogger({ name: 'sluice-sidecar', level: config.logLevel });
  const missing = missingSidecarNodeFlags();
  if (missing.length > 0) logger.warn({ missing }, 'started without the node flags the sidecar expects: custom guardrail patterns are not protected against catastrophic backtracking');
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
  // Policy, global-limit credit and usage, over one connection to the control plane.
  const link = linkSidecar(sidecar, {
    address: config.controlAddress,
    node,
    logger,
    stateDir: config.stateDir === '' ? undefined : config.stateDir,
    caFile: config.caFile === '' ? undefined : config.caFile,
    caPem: config.caPem === '' ? undefined : config.caPem,
    tokenFile: config.tokenFile === '' ? undefined : config.tokenFile,
  });
  await link.start();
  logger.info({ url: sidecar.url, admin: sidecar.adminUrl, control: config.controlAddress }, 'sidecar started');
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    // Kubernetes sends SIGTERM: stop accepting, let streams in flight finish, then exit.
    sidecar
      .drain(config.drainTimeoutMs)
      // Unused global-limit credit goes back to other sidecars, and every request's usage reaches
      // the control plane, before the process goes (bounded waits).
      .then(() => link.close())
      .then(() => tracing?.shutdown())
      .then(
        () => process.exit(0),
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
