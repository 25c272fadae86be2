export * from './types.js';
export * from './schemas.js';
export * from './snapshot.js';
export * from './validate.js';
export * from './compile.js';
export * from './load.js';
export * from './crds.js';
