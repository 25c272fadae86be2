import { createServer } from 'node:net';

/**
 * Polls `cond` until it holds; resolves with the milliseconds it took, rejects after `timeoutMs`
 * with `what` in the message. A rejected or throwing `cond` counts as "not yet" (a server still
 * starting refuses connections). `describe` adds context to the timeout message (e.g. logs).
 */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5000, describe?: () => string): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const ok = await Promise.resolve()
      .then(cond)
      .catch(() => false);
    if (ok) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}${describe ? `\n${describe()}` : ''}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** `n` ports free right now on 127.0.0.1 (bound, read, released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => createServer());
  const ports = await Promise.all(servers.map((s) => new Promise<number>((r) => s.listen(0, '127.0.0.1', () => r((s.address() as { port: number }).port)))));
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}
