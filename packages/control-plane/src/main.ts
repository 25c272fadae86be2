#!/usr/bin/env node
/** The control plane binary. Configuration: SLUICE_CP_* (see config.ts and the README). */
import { createLogger } from '@sluice/core';
import { loadControlPlaneConfig } from './config.js';
import { startControlPlane } from './control-plane.js';
import { FileSource } from './file-source.js';

async function main(): Promise<void> {
  const config = loadControlPlaneConfig();
  const logger = createLogger({ name: 'sluice-control-plane', level: config.logLevel });
  if (config.source !== 'files') throw new Error('SLUICE_CP_SOURCE=kubernetes is not available in this build yet; use files');
  const source = new FileSource(config.policyDir);
  const cp = await startControlPlane({ source, logger, grpcAddress: config.grpcAddress, adminHost: config.adminHost, adminPort: config.adminPort, rootNamespace: config.rootNamespace });
  const stop = (): void => {
    cp.close().then(
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
