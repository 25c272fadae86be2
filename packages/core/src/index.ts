export * from './errors.js';
export * from './ids.js';
export * from './logger.js';
export * from './money.js';
export * from './metrics.js';
export * from './random.js';
export * from './node-flags.js';
