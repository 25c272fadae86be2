#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { startDevGateway } from './dev.js';

const USAGE = `usage: sluice <command>

commands:
  dev [--policy DIR] [--fake auto|always|never]
      run the gateway in one process: policy from DIR (default: examples, or SLUICE_POLICY_DIR),
      provider keys from the environment, the built-in fake provider for backends without a key
  version
      print the version`;

async function dev(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { policy: { type: 'string' }, fake: { type: 'string' } },
  });
  const fake = values.fake ?? process.env['SLUICE_DEV_FAKE'] ?? 'auto';
  if (fake !== 'auto' && fake !== 'always' && fake !== 'never') throw new Error(`--fake must be auto, always or never (got ${fake})`);
  const gw = await startDevGateway({ policyDir: values.policy ?? process.env['SLUICE_POLICY_DIR'] ?? 'examples', env: process.env, fake });
  const list = Object.entries(gw.backends)
    .map(([id, where]) => `${id} → ${where === 'fake' ? 'built-in fake provider (no key set)' : where}`)
    .join(', ');
  process.stderr.write(`sluice: gateway listening on ${gw.sidecar.url} (admin ${gw.sidecar.adminUrl}); backends: ${list}\n`);
  let closing = false;
  const stop = (): void => {
    if (closing) return;
    closing = true;
    gw.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'dev':
      return dev(rest);
    case 'version':
      process.stdout.write('sluice 0.1.0\n');
      return;
    default:
      process.stderr.write(`${USAGE}\n`);
      process.exitCode = cmd === undefined || cmd === 'help' || cmd === '--help' ? 0 : 2;
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`sluice: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
