/**
 * Child processes of the benchmark: spawned (optionally pinned to one CPU with taskset), watched for
 * crashes, and always killed at the end, on failure and on the orchestrator's own signals.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

export interface SpawnOptions {
  /** Pin to this CPU (taskset -c); undefined: not pinned. */
  readonly cpu: number | undefined;
  readonly env?: NodeJS.ProcessEnv;
  /** 'ignore': /dev/null (the sidecar's log lines); 'lines': read and hand each line to onStdoutLine. */
  readonly stdout: 'ignore' | 'lines';
  readonly onStdoutLine?: (line: string) => void;
  readonly onStderrLine?: (line: string) => void;
  /** Keep stdin as a pipe the child can watch (it closes when the orchestrator dies). */
  readonly stdinPipe?: boolean;
  /** Long-lived (a server): exiting before it is asked to stop is a crash. */
  readonly critical?: boolean;
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

const STDERR_TAIL_LINES = 30;

export class Child {
  readonly proc: ChildProcess;
  readonly exited: Promise<Exit>;
  /** Set when we asked it to stop: an exit after that is not a crash. */
  stopping = false;
  exit: Exit | undefined;
  readonly stderrTail: string[] = [];
  readonly critical: boolean;

  constructor(
    readonly name: string,
    command: string,
    args: readonly string[],
    o: SpawnOptions,
  ) {
    this.critical = o.critical === true;
    const [cmd, argv] = o.cpu === undefined ? [command, args] : ['taskset', ['-c', String(o.cpu), command, ...args]];
    this.proc = spawn(cmd, argv, {
      env: o.env ?? process.env,
      stdio: [o.stdinPipe === true ? 'pipe' : 'ignore', o.stdout === 'ignore' ? 'ignore' : 'pipe', 'pipe'],
    });
    // Never let a closed stdin pipe crash the orchestrator.
    this.proc.stdin?.on('error', () => undefined);
    this.exited = new Promise<Exit>((resolve) => {
      this.proc.once('error', (e) => {
        this.stderrTail.push(`spawn failed: ${e.message}`);
        this.exit ??= { code: -1, signal: null };
        resolve(this.exit);
      });
      // 'close': exited and its stdout/stderr are fully read.
      this.proc.once('close', (code, signal) => {
        this.exit ??= { code, signal };
        resolve(this.exit);
      });
    });
    if (this.proc.stdout !== null) {
      const rl = createInterface({ input: this.proc.stdout });
      rl.on('line', (line) => o.onStdoutLine?.(line));
    }
    if (this.proc.stderr !== null) {
      const rl = createInterface({ input: this.proc.stderr });
      rl.on('line', (line) => {
        this.stderrTail.push(line);
        if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
        o.onStderrLine?.(line);
      });
    }
    registry.add(this);
    everyChild.add(this);
    void this.exited.then(() => registry.delete(this));
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get alive(): boolean {
    return this.exit === undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** A readable description of how it ended, with its last stderr lines. */
  describeExit(): string {
    const e = this.exit;
    const how = e === undefined ? 'still running' : e.signal !== null ? `killed by ${e.signal}` : `exited with code ${e.code}`;
    const tail = this.stderrTail.length > 0 ? `\n  stderr:\n    ${this.stderrTail.join('\n    ')}` : '';
    return `${this.name} ${how}${tail}`;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 3000): Promise<Exit> {
    this.stopping = true;
    if (!this.alive) return this.exited;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (this.alive) this.proc.kill('SIGKILL');
    }, graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }
}

/** Children still running. */
const registry = new Set<Child>();
/** Every child ever spawned. */
const everyChild = new Set<Child>();

/** Stops every child still running (SIGTERM, SIGKILL after the grace period). */
export async function stopAll(graceMs = 3000): Promise<void> {
  await Promise.all([...registry].map((c) => c.stop(graceMs)));
}

/** Last resort, synchronous (process 'exit'): SIGKILL whatever is left. */
export function killAllNow(): void {
  for (const c of registry) {
    c.stopping = true;
    if (c.alive) c.proc.kill('SIGKILL');
  }
}

/** Critical children that exited although nobody asked them to. */
export function crashed(): Child[] {
  return [...everyChild].filter((c) => c.critical && !c.stopping && c.exit !== undefined);
}

/** Resolves with the first value `pick` returns for a stdout/stderr line, or rejects on exit / timeout. */
export function waitForLine<T>(child: Child, subscribe: (cb: (line: string) => void) => void, pick: (line: string) => T | undefined, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      reject(new Error(`${child.name} did not become ready within ${timeoutMs} ms\n  ${child.describeExit()}`));
    }, timeoutMs);
    subscribe((line) => {
      if (done) return;
      const v = pick(line);
      if (v === undefined) return;
      done = true;
      clearTimeout(timer);
      resolve(v);
    });
    void child.exited.then(() => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`${child.name} exited before it was ready: ${child.describeExit()}`));
    });
  });
}

/** A tiny fan-out so a line handler can be registered after spawning. */
export class LineHub {
  private readonly subs: Array<(line: string) => void> = [];
  readonly push = (line: string): void => {
    for (const s of this.subs) s(line);
  };
  readonly subscribe = (cb: (line: string) => void): void => {
    this.subs.push(cb);
  };
}

// ---------------------------------------------------------------------------------------------------
// CPUs and memory

/** CPUs this process may run on (Cpus_allowed_list), ascending; falls back to 0..n-1. */
export function allowedCpus(): number[] {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const m = /^Cpus_allowed_list:\s*(.+)$/m.exec(status);
    if (m?.[1] !== undefined) {
      const cpus: number[] = [];
      for (const part of m[1].trim().split(',')) {
        const [a, b] = part.split('-').map(Number);
        if (a === undefined || !Number.isInteger(a)) continue;
        const hi = b !== undefined && Number.isInteger(b) ? b : a;
        for (let c = a; c <= hi; c++) cpus.push(c);
      }
      if (cpus.length > 0) return cpus;
    }
  } catch {
    // not Linux
  }
  return [];
}

/** True when `taskset` exists and may pin to `cpu`. */
export function tasksetWorks(cpu: number): boolean {
  const r = spawnSync('taskset', ['-c', String(cpu), 'true'], { stdio: 'ignore' });
  return r.status === 0;
}

/** Pins every thread of this process to `cpu`; false if that failed. */
export function pinSelf(cpu: number): boolean {
  const r = spawnSync('taskset', ['-a', '-cp', String(cpu), String(process.pid)], { stdio: 'ignore' });
  return r.status === 0;
}

/** Pins every thread of process `pid` to `cpu`; false if that failed. */
export function pinPid(pid: number, cpu: number): boolean {
  const r = spawnSync('taskset', ['-a', '-cp', String(cpu), String(pid)], { stdio: 'ignore' });
  return r.status === 0;
}

/** Pids of the live children of `parent` whose command name (/proc/PID/stat) is `comm`. */
export function childPids(parent: number, comm: string): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out; // not Linux
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split at the last ')'.
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const open = stat.indexOf('(');
      const close = stat.lastIndexOf(')');
      const name = stat.slice(open + 1, close);
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      if (name === comm && ppid === parent) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export function commandExists(cmd: string): boolean {
  const r = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { stdio: 'ignore' });
  return r.status === 0;
}

/** VmRSS and VmHWM (peak) of a process in kB, or undefined when it is gone. */
export function memoryOf(pid: number): { rssKb: number; hwmKb: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s*(\d+)\s*kB/m.exec(s)?.[1];
    const hwm = /^VmHWM:\s*(\d+)\s*kB/m.exec(s)?.[1];
    if (rss === undefined) return undefined;
    return { rssKb: Number(rss), hwmKb: hwm === undefined ? NaN : Number(hwm) };
  } catch {
    return undefined;
  }
}

/** Samples VmRSS every `everyMs` until stopped; returns the largest value seen (kB). */
export function sampleRss(pid: number, everyMs: number): { stop(): number; readonly samples: number } {
  let peak = memoryOf(pid)?.rssKb ?? NaN;
  let samples = 0;
  const timer = setInterval(() => {
    const m = memoryOf(pid);
    if (m === undefined) return;
    samples++;
    if (!(m.rssKb <= peak)) peak = m.rssKb;
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      const m = memoryOf(pid);
      if (m !== undefined && !(m.rssKb <= peak)) peak = m.rssKb;
      return peak;
    },
    get samples() {
      return samples;
    },
  };
}

/** "model name" of the first CPU in /proc/cpuinfo (falls back to os.cpus()). */
export function cpuModel(fallback: string): string {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const m = /^(?:model name|Model|Hardware|cpu model)\s*:\s*(.+)$/m.exec(info);
    if (m?.[1] !== undefined) return m[1].trim();
  } catch {
    // not Linux
  }
  return fallback;
}
