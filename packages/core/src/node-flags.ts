/**
 * Node/V8 flags the sidecar process is started with (the injected container's command, `npm start`,
 * the benchmark, the end-to-end tests):
 *
 * - `--enable-experimental-regexp-engine-on-excessive-backtracks`: a regular expression that
 *   backtracks too much (V8's default threshold, 50,000 backtracks) is re-run on V8's linear-time
 *   engine. Custom guardrail patterns come from policy and run over prompt text from anywhere; a
 *   pattern such as `(a+)+$` would otherwise let one crafted prompt stall the sidecar for minutes.
 *   (The linear engine takes patterns without the `u` flag, lookarounds or backreferences; the
 *   guardrail scanner compiles custom patterns without `u` when they do not need it.)
 */
export const SIDECAR_NODE_FLAGS: readonly string[] = Object.freeze(['--enable-experimental-regexp-engine-on-excessive-backtracks']);

/** The flags of {@link SIDECAR_NODE_FLAGS} this process was not started with. */
export function missingSidecarNodeFlags(execArgv: readonly string[] = process.execArgv): string[] {
  return SIDECAR_NODE_FLAGS.filter((f) => !execArgv.includes(f));
}
