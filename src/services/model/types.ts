/** What this node's Service proxy realizes: frontends (address, protocol, port) and the endpoints behind them. */

export type L4Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface ServiceEndpoint {
  ip: string;
  port: number;
  /** A pod of this node's pod CIDR: the bridge delivers to it itself (MAC rewrite, hairpin). */
  local: boolean;
}

/**
 * Where a frontend is reached: a ClusterIP, a node port (on the node port virtual address, after the node's
 * kernel translated nodeIP:nodePort), or an external address (LoadBalancer ingress IP, externalIP).
 */
export type FrontendKind = 'ClusterIP' | 'NodePort' | 'External';

export interface ServiceFrontend {
  /** `namespace/name:port-name`, for logs and counters. */
  service: string;
  kind: FrontendKind;
  ip: string;
  protocol: L4Protocol;
  port: number;
  /** Endpoints for traffic from inside the cluster (pods, the node, masqueraded external traffic). */
  endpoints: ServiceEndpoint[];
  /** The Service has no usable endpoint anywhere: connections are refused (else, with none here, dropped). */
  reject: boolean;
  /**
   * externalTrafficPolicy Local: the endpoints for external traffic that keeps its client address (only this
   * node's). Undefined when external traffic is treated like the rest.
   */
  externalEndpoints?: ServiceEndpoint[];
  /** sessionAffinity ClientIP: seconds a client keeps its endpoint after its last new connection. */
  affinitySeconds?: number;
}

/** The node's whole Service state, as the datapath and the host realize it. */
export interface NodeServices {
  frontends: ServiceFrontend[];
  /**
   * Node ports (externalTrafficPolicy Cluster ones are masqueraded on their way in; a port without any
   * endpoint is rejected by the node's kernel).
   */
  nodePorts: Array<{ protocol: L4Protocol; port: number; masquerade: boolean; reject: boolean }>;
  /** externalTrafficPolicy Local Services whose health check node port this node answers, with their local endpoint count. */
  healthChecks: Array<{ service: string; port: number; localEndpoints: number }>;
}
