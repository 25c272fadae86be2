#!/usr/bin/env node
/** The control plane binary. Configuration: SLUICE_CP_* (see config.ts and the README). */
import { createLogger } from '@sluice/core';
import { TokenAuthenticator } from './auth.js';
import { anyAuth, staticTokenAuth, tokenReviewAuth, type AdminAuth } from './admin-auth.js';
import { loadWebhookOptions, startWebhookServer, type WebhookServer } from './webhook-server.js';
import { loadControlPlaneConfig } from './config.js';
import { startControlPlane } from './control-plane.js';
import { FileSource } from './file-source.js';

async function main(): Promise<void> {
  const config = loadControlPlaneConfig();
  const logger = createLogger({ name: 'sluice-control-plane', level: config.logLevel });
  // Global limit counters: Redis shared by every replica, or memory for a single process.
  const quotaStore = config.redisUrl === '' ? undefined : (await import('./quota/redis-store.js')).RedisQuotaStore.open(config.redisUrl);
  // Usage batches: the same Redis (one Lua script per batch), or memory.
  const usageStore = config.redisUrl === '' ? undefined : (await import('./usage/redis-store.js')).RedisUsageStore.open(config.redisUrl);
  const auths: AdminAuth[] = config.adminToken === '' ? [] : [staticTokenAuth(config.adminToken)];
  const common = {
    logger,
    grpcAddress: config.grpcAddress,
    adminHost: config.adminHost,
    adminPort: config.adminPort,
    rootNamespace: config.rootNamespace,
    ...(quotaStore === undefined ? {} : { quotaStore }),
    ...(usageStore === undefined ? {} : { usageStore }),
    ...(auths.length === 0 ? {} : { adminAuth: anyAuth(auths) }),
  };
  let close: () => Promise<void>;
  let webhook: WebhookServer | undefined;
  const webhookOptions = loadWebhookOptions(logger);
  if (config.source === 'kubernetes') {
    if (quotaStore === undefined) {
      logger.warn('SLUICE_CP_REDIS_URL is not set: global limits are counted by each control plane replica on its own (a limit admits up to replicas × max); set it when more than one replica runs');
    }
    // Loaded only in this mode: @kubernetes/client-node is large.
    const kube = await import('./kube-index.js');
    // In a cluster the gRPC port is TLS and every stream is authenticated (TokenReview, bound to
    // the pod); plaintext is left to the one-process mode on loopback.
    if (config.grpcTlsCertFile === '' || config.grpcTlsKeyFile === '') throw new Error('SLUICE_CP_GRPC_TLS_CERT_FILE and SLUICE_CP_GRPC_TLS_KEY_FILE are required with SLUICE_CP_SOURCE=kubernetes');
    const kubeConfig = kube.kubeConfigFromDefault();
    const allow = config.adminAllow.split(',').map((a) => a.trim()).filter((a) => a !== '');
    if (allow.length > 0) auths.push(tokenReviewAuth(kube.userTokenReview(kubeConfig), allow));
    const replica = await kube.startKubeControlPlane({
      ...common,
      ...(auths.length === 0 ? {} : { adminAuth: anyAuth(auths) }),
      tls: { certFile: config.grpcTlsCertFile, keyFile: config.grpcTlsKeyFile },
      authenticator: new TokenAuthenticator(kube.tokenReviewVerifier(kubeConfig)),
      kubeConfig,
      lease: { namespace: config.leaseNamespace, name: config.leaseName, identity: kube.leaderIdentity(config.podName) },
    });
    close = () => replica.close();
    if (webhookOptions) webhook = await startWebhookServer({ ...webhookOptions, namespaceLabels: kube.namespaceLabelLookup(kubeConfig) });
  } else {
    const cp = await startControlPlane({ ...common, source: new FileSource(config.policyDir) });
    close = () => cp.close();
    if (webhookOptions) webhook = await startWebhookServer(webhookOptions);
  }
  if (webhook) logger.info({ url: webhook.url }, 'injection webhook listening');
  const stop = (): void => {
    Promise.all([close(), webhook?.close()]).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((e: unknown) => {
  process.stderr.write(`sluice-control-plane: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
