export * from './config.js';
export * from './router.js';
export * from './runtime.js';
export * from './server.js';
export type { RequestRecord, Endpoint, Ingress } from './handler.js';
export * from './control-client.js';
export * from './limits/quota-client.js';
