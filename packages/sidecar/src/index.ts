export * from './config.js';
export * from './router.js';
export * from './runtime.js';
export * from './server.js';
export type { RequestRecord, Endpoint, Ingress, UsageSink } from './handler.js';
export * from './control-client.js';
export * from './limits/quota-client.js';
export * from './usage/reporter.js';
export * from './usage/aggregate.js';
