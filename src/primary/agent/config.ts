import { Ajv, type JSONSchemaType } from 'ajv';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

/** The node agent's configuration (the `agent.yaml` key of the seine-config ConfigMap). */
export interface AgentConfig {
  /** This node's name; defaults to $NODE_NAME (the downward API sets it in the DaemonSet). */
  nodeName: string;
  /** Kubeconfig path; in-cluster service account when absent. */
  kubeconfig?: string;
  /**
   * Network namespace (path) that is this node's host network. Absent in a real cluster (the agent runs with
   * hostNetwork); the lab sets it because its nodes are namespaces.
   */
  hostNetns?: string;
  ovs: {
    /** OVSDB socket. */
    dbSocket: string;
    /** OVS run directory, where ovs-vswitchd puts each bridge's `BRIDGE.mgmt` OpenFlow socket. */
    rundir: string;
    /** `system` (kernel datapath) or `netdev` (userspace datapath). */
    datapathType: 'system' | 'netdev';
    /** The integration bridge. */
    bridge: string;
  };
  /**
   * `primary`: Seine is the node's pod network (addresses, routes between nodes). `chained`: Seine runs after the
   * cloud's CNI (AWS VPC CNI, Azure CNI), which owns addresses and routing; Seine attaches the pods it made to OVS
   * for policy, Services, secondary networks and service chains. trafficEncapMode and tunnelType then do not apply.
   */
  mode: 'primary' | 'chained';
  /** `encap`: pod traffic between nodes is tunnelled; `noEncap`: routed over the underlay. */
  trafficEncapMode: 'encap' | 'noEncap';
  tunnelType: 'vxlan' | 'geneve';
  /** Pod MTU; default: the uplink MTU minus the encapsulation overhead. */
  mtu?: number;
  /** The uplink interface; default: the interface holding the node's InternalIP. */
  uplink?: string;
  /** The CNI server's unix socket (the conflist tells seine-cni the same path). */
  cniSocket: string;
  /** Persistent state (IPAM). */
  stateDir: string;
  /** Pod traffic to destinations outside this CIDR is SNATed to the node IP. */
  clusterCIDR: string;
  serviceCIDR: string;
  egressSNAT: boolean;
  /** Where `seine install-cni` writes the conflist and the binary (used by the agent's readiness report). */
  cniConfDir: string;
  cniBinDir: string;
  /** The container runtime's CNI cache (libcni's; its `results` hold each attachment's ADD): chained mode takes running pods over from it. */
  cniCacheDir: string;
  /** Port of the /healthz, /readyz and /metrics endpoint (0 disables). */
  metricsPort: number;
  /** Address it listens on. */
  metricsAddress: string;
  /** Also serves the same endpoints on this unix socket (for a scraper or relay on the node; the lab uses it). */
  metricsSocket?: string;
  /** Multus-style secondary networks (NetworkAttachmentDefinitions + the pod networks annotation). */
  secondaryNetworks: {
    enabled: boolean;
    /** Uplink of each VLAN trunk bridge on this node (e.g. {"br-vlan": "eth1"}); a node annotation overrides it. */
    uplinks: Record<string, string>;
  };
  /** Service function chains (ServiceChain objects) steered through CNF function ports; needs secondary networks. */
  serviceChains: {
    enabled: boolean;
  };
  /** NetworkPolicy and ClusterNetworkPolicy, as computed by `seine controller` and streamed to this agent. */
  networkPolicy: {
    enabled: boolean;
    /** Namespace of the controller's endpoint ConfigMap (seine-controller-endpoint). */
    controllerNamespace: string;
  };
  /** The Service proxy in OVS (ClusterIP, NodePort, LoadBalancer, externalIPs): replaces kube-proxy on the node. */
  services: {
    enabled: boolean;
  };
}

export const DEFAULT_AGENT_CONFIG: Omit<AgentConfig, 'nodeName'> = {
  ovs: { dbSocket: '/var/run/openvswitch/db.sock', rundir: '/var/run/openvswitch', datapathType: 'system', bridge: 'br-int' },
  mode: 'primary',
  trafficEncapMode: 'encap',
  tunnelType: 'vxlan',
  cniSocket: '/var/run/seine/cni.sock',
  stateDir: '/var/lib/seine',
  clusterCIDR: '10.244.0.0/16',
  serviceCIDR: '10.96.0.0/12',
  egressSNAT: true,
  cniConfDir: '/etc/cni/net.d',
  cniBinDir: '/opt/cni/bin',
  cniCacheDir: '/var/lib/cni',
  metricsPort: 0,
  metricsAddress: '0.0.0.0',
  secondaryNetworks: { enabled: true, uplinks: {} },
  serviceChains: { enabled: true },
  networkPolicy: { enabled: true, controllerNamespace: 'kube-system' },
  services: { enabled: true },
};

const cidr = { type: 'string', pattern: '^\\d{1,3}(\\.\\d{1,3}){3}/\\d{1,2}$' } as const;

const schema: JSONSchemaType<AgentConfig> = {
  type: 'object',
  additionalProperties: false,
  required: ['nodeName', 'ovs', 'mode', 'trafficEncapMode', 'tunnelType', 'cniSocket', 'stateDir', 'clusterCIDR', 'serviceCIDR', 'egressSNAT', 'cniConfDir', 'cniBinDir', 'cniCacheDir', 'metricsPort', 'metricsAddress', 'secondaryNetworks', 'serviceChains', 'networkPolicy', 'services'],
  properties: {
    nodeName: { type: 'string', minLength: 1 },
    kubeconfig: { type: 'string', nullable: true },
    hostNetns: { type: 'string', nullable: true },
    ovs: {
      type: 'object',
      additionalProperties: false,
      required: ['dbSocket', 'rundir', 'datapathType', 'bridge'],
      properties: {
        dbSocket: { type: 'string' },
        rundir: { type: 'string' },
        datapathType: { type: 'string', enum: ['system', 'netdev'] },
        bridge: { type: 'string', pattern: '^[a-zA-Z0-9_.-]{1,15}$' },
      },
    },
    mode: { type: 'string', enum: ['primary', 'chained'] },
    trafficEncapMode: { type: 'string', enum: ['encap', 'noEncap'] },
    tunnelType: { type: 'string', enum: ['vxlan', 'geneve'] },
    mtu: { type: 'integer', minimum: 576, maximum: 9216, nullable: true },
    uplink: { type: 'string', nullable: true },
    cniSocket: { type: 'string' },
    stateDir: { type: 'string' },
    clusterCIDR: cidr,
    serviceCIDR: cidr,
    egressSNAT: { type: 'boolean' },
    cniConfDir: { type: 'string' },
    cniBinDir: { type: 'string' },
    cniCacheDir: { type: 'string' },
    metricsPort: { type: 'integer', minimum: 0, maximum: 65535 },
    metricsAddress: { type: 'string', minLength: 1 },
    metricsSocket: { type: 'string', minLength: 1, nullable: true },
    secondaryNetworks: {
      type: 'object',
      additionalProperties: false,
      required: ['enabled', 'uplinks'],
      properties: {
        enabled: { type: 'boolean' },
        uplinks: { type: 'object', required: [], additionalProperties: { type: 'string', pattern: '^[^/\\s]{1,15}$' } },
      },
    },
    serviceChains: {
      type: 'object',
      additionalProperties: false,
      required: ['enabled'],
      properties: { enabled: { type: 'boolean' } },
    },
    networkPolicy: {
      type: 'object',
      additionalProperties: false,
      required: ['enabled', 'controllerNamespace'],
      properties: { enabled: { type: 'boolean' }, controllerNamespace: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$' } },
    },
    services: {
      type: 'object',
      additionalProperties: false,
      required: ['enabled'],
      properties: { enabled: { type: 'boolean' } },
    },
  },
};

const validate = new Ajv({ allErrors: true }).compile(schema);

/** Thrown for an unusable configuration, naming every problem. */
export class ConfigError extends Error {}

/** Merges the file's values over the defaults and validates the result. */
export function parseAgentConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  if (raw !== undefined && raw !== null && (typeof raw !== 'object' || Array.isArray(raw))) throw new ConfigError('agent config must be a mapping');
  const given = (raw ?? {}) as Partial<AgentConfig>;
  const merged = {
    ...DEFAULT_AGENT_CONFIG,
    ...given,
    nodeName: given.nodeName ?? env.NODE_NAME ?? '',
    ovs: { ...DEFAULT_AGENT_CONFIG.ovs, ...(given.ovs ?? {}) },
    secondaryNetworks: { ...DEFAULT_AGENT_CONFIG.secondaryNetworks, ...(given.secondaryNetworks ?? {}) },
    serviceChains: { ...DEFAULT_AGENT_CONFIG.serviceChains, ...(given.serviceChains ?? {}) },
    networkPolicy: { ...DEFAULT_AGENT_CONFIG.networkPolicy, ...(given.networkPolicy ?? {}) },
    services: { ...DEFAULT_AGENT_CONFIG.services, ...(given.services ?? {}) },
  };
  if (!validate(merged)) {
    const problems = (validate.errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message}${e.params && 'allowedValues' in e.params ? ` (${(e.params.allowedValues as string[]).join(', ')})` : ''}`);
    throw new ConfigError(`invalid agent config: ${problems.join('; ')}`);
  }
  return merged;
}

export function loadAgentConfig(path: string, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ConfigError(`cannot read agent config ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return parseAgentConfig(raw, env);
}
