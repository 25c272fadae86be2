export * from './window.js';
export * from './key.js';
