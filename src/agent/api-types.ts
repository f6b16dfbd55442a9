// The node agent's read-only JSON API (src/agent/api.ts), as `seine get pods|services|rules` reads it through the API
// server's node proxy: paths, the port, and the shape of each answer. No runtime dependencies: the CLI imports it.

/**
 * The agent's `metricsPort` in the shipped manifests, where its health endpoint serves the API too: the port
 * `seine get pods|services` asks the API server's node proxy for (`nodes/NODE:PORT/proxy/...`).
 */
export const AGENT_API_PORT = 10361;
export const AGENT_PODS_PATH = '/v1/pods';
export const AGENT_SERVICES_PATH = '/v1/services';
export const AGENT_POLICY_RULES_PATH = '/v1/policy-rules';

/** Every answer: the node that answered and its items, in a stable order. */
export interface AgentList<T> {
  node: string;
  items: T[];
}

/** What made an interface: the pod network (eth0), a Seine secondary network (a port on a Seine bridge), or a delegated CNI plugin. */
export type PodInterfaceKind = 'pod-network' | 'seine' | 'delegated';

/** One interface of a pod. */
export interface PodInterfaceInfo {
  /** The name in the pod: eth0, net1, ... */
  ifname: string;
  kind: PodInterfaceKind;
  /** The pod network: its CNI network name (the conflist's); a secondary network: its NAD, `namespace/name`. */
  network: string;
  /** Addresses without prefix length; none for an L2-only or function port. */
  ips: string[];
  mac?: string;
  /** The OVS bridge of its port (none for a delegated plugin's interface). */
  bridge?: string;
  /** The OVS port, also the host end of its veth. */
  port?: string;
  /** The port's OpenFlow number on its bridge; absent while OVS has not given it one. */
  ofport?: number;
}

/** One pod sandbox on the node with every interface Seine knows of it (the pod network's first). */
export interface PodInfo {
  node: string;
  namespace: string;
  name: string;
  uid: string;
  containerId: string;
  netns: string;
  interfaces: PodInterfaceInfo[];
}

/** Endpoints behind a frontend: pods of this node, and of other nodes. */
export interface EndpointCounts {
  local: number;
  remote: number;
}

/**
 * One Service frontend the node's proxy serves. ClusterIP: a cluster IP; NodePort: the node port on the node's
 * address; External: a LoadBalancer ingress IP or an externalIP.
 */
export interface ServiceFrontendInfo {
  node: string;
  namespace: string;
  name: string;
  /** The Service port's name (empty for an unnamed port). */
  portName: string;
  kind: 'ClusterIP' | 'NodePort' | 'External';
  address: string;
  port: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  /** The endpoints traffic from inside the cluster is balanced over. */
  endpoints: EndpointCounts;
  /** externalTrafficPolicy Local: the endpoints external traffic keeps its client address to (this node's only). */
  externalEndpoints?: EndpointCounts;
  /** No usable endpoint anywhere: connections are refused. */
  reject: boolean;
  /** sessionAffinity ClientIP: seconds a client keeps its endpoint. */
  affinitySeconds?: number;
  /** The endpoints for traffic from inside the cluster, by address. */
  endpointList: Array<{ ip: string; port: number; local: boolean }>;
}

/**
 * One policy rule's counters on a node: the new connections it decided (the first packet of each, and its
 * bytes), since its flows were installed. Isolation drops count under rule `isolation-<direction>`.
 */
export interface PolicyRuleInfo {
  node: string;
  kind: 'NetworkPolicy' | 'ClusterNetworkPolicy' | 'MultiNetworkPolicy';
  /** Empty for a ClusterNetworkPolicy. */
  namespace: string;
  /** The policy's name. */
  name: string;
  /** A MultiNetworkPolicy's secondary network (`namespace/name`); empty for the pod network. */
  network: string;
  rule: string;
  direction: 'Ingress' | 'Egress';
  action: string;
  packets: number;
  bytes: number;
}
