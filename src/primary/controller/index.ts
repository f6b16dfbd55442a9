// The cluster controller (`seine controller`): leader election, node pod-CIDR allocation, service chains, network policy.
export { Controller, type ControllerOptions } from './controller.js';
export { ControllerConfigError, DEFAULT_CONTROLLER_CONFIG, loadControllerConfig, parseControllerConfig, type ControllerConfig } from './config.js';
export { defaultIdentity, LeaderElector, type LeaderElectionOptions } from './leader.js';
export { NodeIpamController, NodeIpamReason, type NodeIpamOptions } from './nodeipam.js';
export { WorkQueue } from './queue.js';
