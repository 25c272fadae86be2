export * from './fake-provider.js';
export * from './fake-kube.js';
export * from './wait.js';
