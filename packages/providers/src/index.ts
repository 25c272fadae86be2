export * from './sse.js';
export * from './usage.js';
