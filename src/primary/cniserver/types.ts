import type { CniResult, GcAttachment, NetConf } from '../../cni/types.js';

/** The pod a Kubernetes runtime names in CNI_ARGS. */
export interface PodIdentity {
  namespace: string;
  name: string;
  /** K8S_POD_INFRA_CONTAINER_ID (the sandbox; equal to containerId under containerd and CRI-O). */
  infraContainerId?: string;
  uid?: string;
}

interface RequestBase {
  /** The config's version; the driver's result is converted to it and errors are reported in it. */
  cniVersion: string;
  /** The network configuration from stdin, validated (plugin-specific keys kept). */
  config: NetConf;
  /** CNI_PATH split on ':'. */
  cniPath: string[];
  /** Aborted when the request times out: the runtime has been answered, the work may stop. */
  signal: AbortSignal;
}

/** ADD, DEL or CHECK of one attachment, decoded and validated, independent of the command. */
export interface CniRequest extends RequestBase {
  command: 'ADD' | 'DEL' | 'CHECK';
  containerId: string;
  /** Empty on a DEL whose namespace is already gone. */
  netns: string;
  ifname: string;
  /** Present when CNI_ARGS names the pod (namespace and name). */
  pod?: PodIdentity;
  /** CNI_ARGS as given, and as ordered pairs. */
  args: string;
  argPairs: Array<[string, string]>;
  /** Converted to `cniVersion`: the chained result on ADD, the cached ADD result on CHECK and DEL. */
  prevResult?: CniResult;
  /** The config's `runtimeConfig` (capability arguments: portMappings, ips, mac, bandwidth, ...). */
  capabilityArgs: Record<string, unknown>;
}

export interface GcRequest extends RequestBase {
  command: 'GC';
  /** `cni.dev/valid-attachments`: everything else of this network may be removed. */
  validAttachments: GcAttachment[];
}

export interface StatusRequest extends RequestBase {
  command: 'STATUS';
}

/**
 * What realizes pod networking behind the CNI server. Throw a CniError to report a specific code;
 * anything else becomes code 999 with its message. Calls for one container never overlap, and GC
 * never overlaps an ADD, DEL or CHECK.
 */
export interface CniDriver {
  /** The result may be in any supported version: it is converted to the request's. */
  add(req: CniRequest): Promise<CniResult>;
  /** Must succeed when there is nothing (left) to remove. */
  del(req: CniRequest): Promise<void>;
  check(req: CniRequest): Promise<void>;
  gc(req: GcRequest): Promise<void>;
  /** Throws CniError 50 (or 51) when the node cannot take pods. */
  status(req: StatusRequest): Promise<void>;
}
