#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { missingSidecarNodeFlags } from '@sluice/core';
import type { FakeMode } from './dev.js';
import { fetchSidecars, formatSidecars } from './status.js';
import { fetchUsage, FILTER_DIMENSIONS, formatUsage } from './usage.js';
import { validatePaths } from './validate.js';

const VERSION = '0.1.0';
const USAGE = `usage: sluice <command>

commands:
  dev [--policy DIR] [--fake auto|always|never]
      the gateway in one process: control plane (policy from DIR, watched; default examples or
      SLUICE_POLICY_DIR) and sidecar, connected over loopback gRPC; provider keys from the
      environment; the built-in fake provider for backends without a key
  validate PATH...
      check policy files or directories offline; exit 1 with one line per problem
  status [--url URL] [--token T] [--json]
      sidecars connected to a control plane (default http://127.0.0.1:4002, or SLUICE_CP_ADMIN_URL)
  usage [--by DIM[,DIM]] [--since 7d] [--until T] [--namespace X] [--team X] [--feature X]
        [--model X] [--user X] [--route X] [--backend X] [--service-account X]
        [--sort costMicros|requests|inputTokens|outputTokens|…] [--limit N] [--url URL] [--token T] [--json]
      spend by team, model, feature, user, … (dimensions: namespace, serviceAccount, team, feature,
      user, route, backend, model); token from SLUICE_CP_ADMIN_TOKEN unless given
  version
      print the version`;

async function dev(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { policy: { type: 'string' }, fake: { type: 'string' } } });
  const fake = values.fake ?? process.env['SLUICE_DEV_FAKE'] ?? 'auto';
  if (fake !== 'auto' && fake !== 'always' && fake !== 'never') throw new Error(`--fake must be auto, always or never (got ${fake})`);
  // Loaded only for `dev`: status and validate stay light.
  const { startDevGateway } = await import('./dev.js');
  const gw = await startDevGateway({ policyDir: values.policy ?? process.env['SLUICE_POLICY_DIR'] ?? 'examples', env: process.env, fake: fake as FakeMode });
  const list = Object.entries(gw.backends)
    .map(([id, where]) => `${id} → ${where === 'fake' ? 'built-in fake provider (no key set)' : where}`)
    .join(', ');
  process.stderr.write(`sluice: gateway listening on ${gw.sidecar.url} (admin ${gw.sidecar.adminUrl}, control plane ${gw.controlPlane.adminUrl}); backends: ${list}\n`);
  const missing = missingSidecarNodeFlags();
  if (missing.length > 0) process.stderr.write(`sluice: started without ${missing.join(' ')}: custom guardrail patterns are not protected against catastrophic backtracking (npm start passes it)\n`);
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

async function validate(args: string[]): Promise<void> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  if (positionals.length === 0) throw new Error('validate needs at least one file or directory');
  const r = await validatePaths(positionals);
  for (const p of r.problems) process.stdout.write(`${p}\n`);
  process.stdout.write(`${r.objects} object${r.objects === 1 ? '' : 's'}, ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}\n`);
  process.exitCode = r.problems.length === 0 ? 0 : 1;
}

async function status(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { url: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' } } });
  const url = values.url ?? process.env['SLUICE_CP_ADMIN_URL'] ?? 'http://127.0.0.1:4002';
  const rows = await fetchSidecars(url, values.token ?? process.env['SLUICE_CP_ADMIN_TOKEN']);
  process.stdout.write(values.json ? `${JSON.stringify(rows, null, 2)}\n` : `${formatSidecars(rows)}\n`);
}

async function usage(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      by: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      sort: { type: 'string' },
      limit: { type: 'string' },
      url: { type: 'string' },
      token: { type: 'string' },
      json: { type: 'boolean' },
      namespace: { type: 'string' },
      'service-account': { type: 'string' },
      team: { type: 'string' },
      feature: { type: 'string' },
      user: { type: 'string' },
      route: { type: 'string' },
      backend: { type: 'string' },
      model: { type: 'string' },
    },
  });
  const filters: Record<string, string> = {};
  for (const d of FILTER_DIMENSIONS) {
    const v = values[d === 'serviceAccount' ? 'service-account' : d];
    if (typeof v === 'string') filters[d] = v;
  }
  const limit = Number(values.limit ?? 50);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) throw new Error('--limit must be an integer from 1 to 1000');
  const answer = await fetchUsage({
    url: values.url ?? process.env['SLUICE_CP_ADMIN_URL'] ?? 'http://127.0.0.1:4002',
    token: values.token ?? process.env['SLUICE_CP_ADMIN_TOKEN'],
    by: values.by ?? 'team',
    since: values.since ?? '7d',
    until: values.until,
    filters,
    limit,
    sort: values.sort ?? 'costMicros',
  });
  process.stdout.write(values.json ? `${JSON.stringify(answer, null, 2)}\n` : `${formatUsage(answer)}\n`);
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'dev':
      return dev(rest);
    case 'validate':
      return validate(rest);
    case 'status':
      return status(rest);
    case 'usage':
      return usage(rest);
    case 'version':
    case '--version':
      process.stdout.write(`sluice ${VERSION}\n`);
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
