export * from './fake-provider.js';
export * from './fake-kube.js';
export * from './wait.js';
export * from './redis.js';
export * from './logs.js';
export * from './fake-batches.js';
export * from './fake-bedrock.js';
