export * from './sse.js';
export * from './usage.js';
export * from './pricing.js';
export * from './catalog.js';
export * from './json-splice.js';
export * from './translate/index.js';
export * from './wire/openai.js';
export * from './wire/anthropic.js';
