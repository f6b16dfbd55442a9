import type { V1Pod } from '@kubernetes/client-node';
import type { CniResult } from '../cni/types.js';
import type { CniDriver } from '../primary/cniserver/index.js';
import type { PodInterfaceInfo, PolicyRuleInfo, ServiceFrontendInfo } from './api-types.js';
import type { NodeContext } from './context.js';

/**
 * One concern of the node agent (pod network, secondary networks, service chains, ...), started by the agent
 * in order after the node base (informers, OVS, bridge) and stopped in reverse order.
 */
export interface AgentFeature {
  readonly name: string;
  /** Realizes what exists and starts watching; the node takes pods once every feature has started. */
  start(ctx: NodeContext): Promise<void>;
  /** Stops watching and timers. What is realized stays: pods keep forwarding without the agent. */
  stop(): Promise<void>;
  /** After an ovs-vswitchd restart lost the flows: put them back. Runs under the node-wide exclusive lock. */
  restore?(): Promise<void>;
  /** The feature that answers the CNI calls (exactly one: the pod network). Read once every feature has started. */
  readonly podNetwork?: PodNetwork;
  /** Offered by a feature that adds interfaces to, or acts on, the pod network's sandboxes. Read once every feature has started. */
  readonly podAttachments?: PodAttachmentHook;
  /** What the feature shows of the node on the agent's read-only API (src/agent/api.ts). Read once every feature has started. */
  readonly inspection?: FeatureInspection;
}

/** A pod interface a feature made, with its sandbox, as the agent's read-only API shows it. */
export interface InspectedInterface extends PodInterfaceInfo {
  containerId: string;
  netns: string;
  podNamespace: string;
  podName: string;
  podUid: string;
}

/** Read-only views of a feature's state, read on each request; every method is optional. */
export interface FeatureInspection {
  /** The pod interfaces the feature made on this node (`GET /v1/pods`). */
  podInterfaces?(): InspectedInterface[];
  /** The Service frontends the node serves, as last realized (`GET /v1/services`). */
  serviceFrontends?(): Array<Omit<ServiceFrontendInfo, 'node'>>;
  /** The policy rules' counters, read from the switch (`GET /v1/policy-rules`). */
  policyRules?(): Promise<Array<Omit<PolicyRuleInfo, 'node'>>>;
}

/** One attachment of the pod network, as the agent's composition sees it. */
export interface PodAttachment {
  containerId: string;
  ifname: string;
  netns: string;
  /** Identity of the namespace at `netns` when it was attached (src/podif/sandbox.ts). */
  netnsId?: string;
  podNamespace: string;
  podName: string;
  podUid: string;
  /** The CNI network (config name) the attachment belongs to. */
  network: string;
}

/** The pod network: answers the CNI calls and tells what it has attached. */
export interface PodNetwork extends CniDriver {
  attachments(): readonly PodAttachment[];
  /** The network of what was recorded without one, and of a sandbox the pod network has no attachment of. */
  readonly defaultNetwork: string;
  /** The CNI result of an attachment, as its ADD returned it; undefined when there is none. */
  resultOf(containerId: string, ifname: string, cniVersion: string): CniResult | undefined;
  /** Removes every attachment of the sandbox, with its address (its DEL, when the runtime's never came). */
  releaseSandbox(containerId: string): Promise<void>;
  /**
   * Once the node's pods are known: takes over the running pods another CNI attached before this network came
   * (chained mode). Each adoption runs in turn with the sandbox's CNI calls; failures are the network's to report.
   */
  adopt?(pods: readonly V1Pod[], serialize: <T>(containerId: string, fn: () => Promise<T>) => Promise<T>): Promise<void>;
}

/** A running sandbox of the pod network: what its ADD knew. */
/** A pod's sandbox as its ADD starts: before the pod network has made eth0. */
export interface NewSandbox {
  pod: V1Pod;
  containerId: string;
  netns: string;
  netnsId?: string;
  cniPath: string[];
}

export interface PodSandbox extends NewSandbox {
  /** The pod network's result (eth0). */
  primary: CniResult;
}

/** A sandbox a hook holds attachments of, as the reconciliation of vanished sandboxes sees it. */
export interface SandboxRef {
  containerId: string;
  netns: string;
  netnsId?: string;
  podUid: string;
}

/**
 * What a feature does around the pod network's attachments of a pod's eth0. The agent calls the hooks in
 * feature order on ADD and in reverse order on DEL; every method is optional.
 */
export interface PodAttachmentHook {
  /**
   * While the pod network makes eth0: what does not depend on eth0 (interfaces of their own), made side by side
   * with it. A failure fails the ADD: the agent undoes what the hooks and the pod network made.
   */
  alongsideAdd?(sandbox: NewSandbox): Promise<void>;
  /** After the pod network attached eth0. A failure fails the ADD: the agent undoes the earlier hooks and eth0. */
  afterAdd?(sandbox: PodSandbox): Promise<void>;
  /** Before the pod network detaches eth0 (DEL, or a vanished sandbox): remove what the hook made. Succeeds when there is nothing. */
  beforeDel?(containerId: string): Promise<void>;
  /** CNI GC of a network: remove what the hook made for the sandboxes `collect` picks. */
  gc?(collect: (containerId: string) => boolean): Promise<void>;
  /** Sandboxes the hook holds attachments of, also ones the pod network no longer knows. */
  sandboxes?(): SandboxRef[];
  /** A running pod changed (hot-plug); in turn with the sandbox's CNI calls. */
  podUpdated?(sandbox: PodSandbox): Promise<void>;
  /** After an agent restart, once the pods are known: a running sandbox made by an earlier run. podUpdated follows. */
  adopt?(sandbox: PodSandbox): void;
}
