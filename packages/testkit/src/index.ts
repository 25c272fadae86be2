export * from './fake-provider.js';
