export * from './dev.js';
export * from './status.js';
export * from './validate.js';
