import type { CoreV1Api, KubeConfig, V1Node, V1Pod } from '@kubernetes/client-node';
import type { IpRoute } from '../host/ip.js';
import type { ResilientInformer } from '../k8s/informer.js';
import type { FlowWriter } from '../ovs/openflow/index.js';
import type { Vswitch } from '../ovs/ovsdb/index.js';
import type { discoverUplink, IntegrationBridge } from '../primary/bridge/bridge.js';
import type { AgentConfig } from '../primary/agent/config.js';
import type { AgentMetrics } from './metrics.js';
import type { PortAdmission } from './port-admission.js';

/** The interface that holds the node IP, as found at start. */
export type Uplink = Awaited<ReturnType<typeof discoverUplink>>;

/** What the agent hands every feature: the node base it has set up, and the node-wide locks. */
export interface NodeContext {
  readonly config: AgentConfig;
  /**
   * This node; the agent waits until its Node object has an InternalIP and, unless chained (the primary CNI owns
   * addresses), a podCIDR. `gatewayIp` is the address of the gateway interface: the pod CIDR's first, or chained,
   * the node IP.
   */
  readonly node: { readonly name: string; readonly ip: string; readonly podCidr?: string; readonly gatewayIp: string };
  readonly kubeConfig: KubeConfig;
  readonly core: CoreV1Api;
  /** The OVSDB connection (every bridge of the node's Open vSwitch). */
  readonly vswitch: Vswitch;
  /** The integration bridge (config.ovs.bridge): this run's flow round and its gateway and tunnel ports. */
  readonly bridge: IntegrationBridge;
  /** OpenFlow writer of the integration bridge. */
  readonly flows: FlowWriter;
  readonly uplink: Uplink;
  /** Pod MTU, and the underlay's (the pod MTU plus the tunnel overhead in encap mode). */
  readonly mtu: { readonly pod: number; readonly underlay: number };
  /** The node's host network namespace. */
  readonly host: IpRoute;
  /** All Nodes, started and listed. */
  readonly nodes: ResilientInformer<V1Node>;
  /** This node's pods; started once every feature has started. */
  readonly pods: ResilientInformer<V1Pod>;
  /** Settles once the pods informer has delivered its first list (never, if it cannot start). */
  readonly podsSynced: Promise<void>;
  readonly metrics: AgentMetrics;
  /** Gates a secondary network's new pod port passes before it carries traffic (policy registers one). */
  readonly portAdmission: PortAdmission;
  /** True while the node takes pods: every feature has started and the agent is not stopping. */
  ready(): boolean;
  /** Runs `fn` as a pod operation in turn with the CNI calls of `containerId`. */
  serialize<T>(containerId: string, fn: () => Promise<T>): Promise<T>;
  /** Runs `fn` as one pod operation: many at once, never during an exclusive one. */
  shared<T>(fn: () => Promise<T>): Promise<T>;
  /** Runs `fn` alone: no pod operation runs meanwhile (re-realizing the whole node). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
}
