export * from './cookies.js';
export * from './flows.js';
export * from './marks.js';
export * from './state.js';
export * from './tables.js';
