export * from './types.js';
export * from './names.js';
export * from './overlay-flows.js';
export * from './trunk-flows.js';
export * from './pod-interface.js';
export * from './ovs-datapath.js';
export * from './function-ports.js';
