export * from './control-plane.js';
export * from './engine.js';
export * from './file-source.js';
export * from './policy-streams.js';
export * from './source.js';
export * from './stream-state.js';
export * from './debounce.js';
export * from './config.js';
