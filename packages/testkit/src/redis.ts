import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { freePorts, waitFor } from './wait.js';

export interface TestRedis {
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** Graceful stop (SHUTDOWN NOSAVE, then SIGTERM, then SIGKILL). Idempotent. */
  stop(): Promise<void>;
  /** Simulates a crash: SIGKILL, synchronously. The port stays reserved for `restart()`. */
  kill(): void;
  /**
   * Starts the server again on the same port (stopping the current one first if it runs): empty,
   * or with what its append-only file kept when started with `{ aof: true }`.
   */
  restart(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Never leave a redis-server behind, even when a test run ends without calling stop().
  process.once('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

/** Sends one inline command over a fresh connection; resolves with the first reply line. */
export function redisCommand(port: number, command: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`redis ${command}: timeout`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${command}\r\n`));
    sock.on('data', (d: string) => {
      buf += d;
      const i = buf.indexOf('\r\n');
      if (i >= 0) {
        clearTimeout(timer);
        sock.destroy();
        resolve(buf.slice(0, i));
      }
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      reject(new Error(`redis ${command}: connection closed`));
    });
  });
}

/**
 * Starts a real `redis-server` (binary from `SLUICE_REDIS_SERVER`, default `redis-server` on PATH) on
 * a free loopback port, and waits until it answers PING. Persistence is off, unless `aof`: then an
 * append-only file fsynced on every write, in a temporary directory that survives `restart()` and
 * `kill()` (removed by `stop()`).
 */
export async function startRedis(options: { aof?: boolean } = {}): Promise<TestRedis> {
  installExitHook();
  const bin = process.env['SLUICE_REDIS_SERVER'] ?? 'redis-server';
  let child: ChildProcess | undefined;
  let log = '';
  const dataDir = options.aof === true ? mkdtempSync(join(tmpdir(), 'sluice-redis-')) : undefined;

  const spawnOn = async (port: number): Promise<void> => {
    log = '';
    const persistence = dataDir === undefined ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dataDir];
    const c = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--daemonize', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(c);
    child = c;
    let exited = false;
    const onOut = (d: Buffer): void => {
      if (log.length < 64 * 1024) log += d.toString('utf8');
    };
    c.stdout?.on('data', onOut);
    c.stderr?.on('data', onOut);
    c.on('error', (e) => {
      log += `\nspawn error: ${e.message}`;
      exited = true;
      live.delete(c);
    });
    c.on('exit', () => {
      exited = true;
      live.delete(c);
    });
    try {
      await waitFor(
        `redis-server on port ${port}`,
        async () => {
          if (exited) throw new Error('exited');
          return (await redisCommand(port, 'PING', 500)) === '+PONG';
        },
        10_000,
        () => log,
      );
      if (exited) throw new Error(`redis-server exited:\n${log}`);
    } catch (e) {
      c.kill('SIGKILL');
      throw e;
    }
  };

  const stopChild = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    const within = (ms: number): Promise<boolean> => Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
    await redisCommand(port, dataDir === undefined ? 'SHUTDOWN NOSAVE' : 'SHUTDOWN', 1000).catch(() => undefined);
    if (await within(2000)) return;
    c.kill('SIGTERM');
    if (await within(2000)) return;
    c.kill('SIGKILL');
    await exited;
  };

  let port = 0;
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    [port = 0] = await freePorts(1);
    try {
      await spawnOn(port);
      lastError = undefined;
      break;
    } catch (e) {
      lastError = e; // most likely the port was taken in between: try another one
    }
  }
  if (lastError !== undefined) throw lastError instanceof Error ? lastError : new Error(String(lastError));

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      await stopChild();
      if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
    },
    kill() {
      const c = child;
      child = undefined;
      c?.kill('SIGKILL');
    },
    async restart() {
      await stopChild();
      // After kill() the old process may still be exiting: wait until nothing answers on the port.
      await waitFor(`port ${port} to be released`, () => redisCommand(port, 'PING', 200).then(() => false, () => true)).catch(() => undefined);
      await spawnOn(port);
    },
  };
}
