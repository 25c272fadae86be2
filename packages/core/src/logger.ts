import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  readonly name: string;
  readonly level?: string;
  /** Defaults to stdout through pino's async-safe destination. */
  readonly destination?: DestinationStream;
}

/**
 * The pino logger factory of every Sluice binary. Keys that can carry credentials are redacted by
 * path, as a second line of defence: request handlers never put secrets or prompt text in a log.
 */
export function createLogger(options: LoggerOptions): Logger {
  const opts = {
    level: options.level ?? 'info',
    base: { name: options.name },
    redact: {
      paths: ['authorization', 'apiKey', 'api_key', 'headers.authorization', 'headers["x-api-key"]'],
      censor: '[redacted]',
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return options.destination ? pino(opts, options.destination) : pino(opts, pino.destination({ sync: false }));
}
