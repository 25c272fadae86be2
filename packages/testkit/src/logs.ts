import { Writable } from 'node:stream';
import { createLogger, type Logger } from '@sluice/core';

/** A real pino logger (the same factory as the binaries) whose lines are parsed into `logs`. */
export function captureLogger<T = Record<string, unknown>>(options: { name?: string; level?: string } = {}): { logger: Logger; logs: T[] } {
  const logs: T[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.length > 0) logs.push(JSON.parse(line) as T);
      cb();
    },
  });
  return { logger: createLogger({ name: options.name ?? 'test', level: options.level ?? 'info', destination }), logs };
}

/** A logger that writes nowhere. */
export function quietLogger(): Logger {
  return createLogger({ name: 'test', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
}
