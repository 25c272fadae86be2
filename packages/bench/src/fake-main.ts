/**
 * The fake LLM provider as its own process (so the benchmark can pin it and measure the proxies
 * alone):
 *
 *   node fake-main.js [--port 0] [--host 127.0.0.1] [--script '<FakeScript JSON>']
 *
 * Prints `fake-provider: listening on http://HOST:PORT` on stdout when ready. Exits on SIGTERM /
 * SIGINT or when its stdin closes (the orchestrator went away).
 */
import { parseArgs } from 'node:util';
import { startFakeProvider, type FakeScript } from '@sluice/testkit';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    script: { type: 'string' },
  },
});

const fake = await startFakeProvider({ host: values.host, port: Number(values.port), record: false });
if (values.script !== undefined) fake.setDefault(JSON.parse(values.script) as FakeScript);

let stopping = false;
const stop = (code: number): void => {
  if (stopping) return;
  stopping = true;
  fake.close().then(
    () => process.exit(code),
    () => process.exit(1),
  );
  setTimeout(() => process.exit(code), 2000).unref();
};
process.on('SIGTERM', () => stop(0));
process.on('SIGINT', () => stop(0));
process.stdin.on('end', () => stop(1));
process.stdin.on('error', () => stop(1));
process.stdin.resume();

process.stdout.write(`fake-provider: listening on ${fake.url}\n`);
