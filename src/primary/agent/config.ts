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

export const schema: JSONSchemaType<AgentConfig> = {
  type: 'object',
  description: "The node agent's configuration (the `agent.yaml` key of the seine-config ConfigMap).",
  additionalProperties: false,
  required: ['nodeName', 'ovs', 'mode', 'trafficEncapMode', 'tunnelType', 'cniSocket', 'stateDir', 'clusterCIDR', 'serviceCIDR', 'egressSNAT', 'cniConfDir', 'cniBinDir', 'cniCacheDir', 'metricsPort', 'metricsAddress', 'secondaryNetworks', 'serviceChains', 'networkPolicy', 'services'],
  properties: {
    nodeName: { type: 'string', minLength: 1, description: 'Name of the Node object this agent runs on. Left out: `$NODE_NAME` (the DaemonSet sets it from the downward API).' },
    kubeconfig: { type: 'string', nullable: true, description: 'Path of a kubeconfig file. Left out: `$KUBECONFIG`, else the in-cluster service account, else `~/.kube/config`.' },
    hostNetns: {
      type: 'string',
      nullable: true,
      description:
        "Path of the network namespace that is the node's host network: where the agent sets routes and nftables rules and runs other CNI plugins. Left out: the agent's own namespace (a real cluster's agent runs with hostNetwork); the lab sets it because its nodes are namespaces.",
    },
    ovs: {
      type: 'object',
      description: 'The Open vSwitch the agent uses.',
      additionalProperties: false,
      required: ['dbSocket', 'rundir', 'datapathType', 'bridge'],
      properties: {
        dbSocket: { type: 'string', description: 'Path of the OVSDB unix socket the agent connects to.' },
        rundir: { type: 'string', description: "OVS run directory, where ovs-vswitchd puts each bridge's `BRIDGE.mgmt` OpenFlow socket, through which the agent programs flows." },
        datapathType: { type: 'string', enum: ['system', 'netdev'], description: "Datapath of Seine's OVS bridges: `system` (the kernel's openvswitch module) or `netdev` (the userspace datapath)." },
        bridge: { type: 'string', pattern: '^[a-zA-Z0-9_.-]{1,15}$', description: "The integration bridge: the pod network's ports, gateway and tunnel, with the flows of policy, Services and service chains." },
      },
    },
    mode: {
      type: 'string',
      enum: ['primary', 'chained'],
      description:
        "`primary`: Seine is the node's pod network (addresses, routes between nodes). `chained`: Seine runs after the cloud's CNI (AWS VPC CNI, Azure CNI), which owns addresses and routing, and attaches the pods it made to OVS for policy, Services, secondary networks and service chains; `trafficEncapMode`, `tunnelType`, `clusterCIDR` and `egressSNAT` then do not apply.",
    },
    trafficEncapMode: {
      type: 'string',
      enum: ['encap', 'noEncap'],
      description: "Primary mode: `encap` tunnels pod traffic between nodes (`tunnelType`); `noEncap` routes it over the underlay to the peer node's IP, so the nodes must reach each other directly (one L2 segment).",
    },
    tunnelType: { type: 'string', enum: ['vxlan', 'geneve'], description: 'Tunnel between nodes when `trafficEncapMode` is `encap` (primary mode).' },
    mtu: {
      type: 'integer',
      minimum: 576,
      maximum: 9216,
      nullable: true,
      description: "MTU of the pods' interfaces on the pod network, in bytes. Left out: the MTU of the interface holding the node's IP, less 50 bytes of tunnel overhead in primary mode with `encap`.",
    },
    uplink: {
      type: 'string',
      nullable: true,
      description: "Accepted but not read: the agent always takes the interface that holds the node's InternalIP as the uplink.",
    },
    cniSocket: { type: 'string', description: "Unix socket of the agent's CNI server, which the `seine` plugin calls; `seine install-cni --config` writes the same path into the conflist." },
    stateDir: {
      type: 'string',
      description: "Directory of the agent's persistent state: the pod network's address allocations (primary mode), the node's last policy share (`policy/share.json`) and the CNI result cache of delegated secondary networks (`secondary-cni`).",
    },
    clusterCIDR: {
      ...cidr,
      description:
        "The cluster's pod address block (IPv4), the same as the controller's `clusterCIDR`; it must hold the node's podCIDR. Primary mode: nodes whose podCIDR lies in it are peers (tunnel or route), and with `egressSNAT` pod traffic to addresses outside it is masqueraded.",
    },
    serviceCIDR: {
      ...cidr,
      description: "The cluster's Service address range (IPv4, as the API server's). Primary mode: the node routes it into OVS, so that the node's own connections to ClusterIPs go through Seine's Service proxy.",
    },
    egressSNAT: { type: 'boolean', description: "Primary mode: masquerade pod traffic to addresses outside `clusterCIDR`, leaving by any interface but the gateway, to the node's IP." },
    cniConfDir: {
      type: 'string',
      description:
        "The node's CNI configuration directory: `seine install-cni --config` writes Seine's conflist there, the agent reads the derived conflist from it in chained mode, and a NetworkAttachmentDefinition without `spec.config` takes the node's configuration of its name from it.",
    },
    cniBinDir: {
      type: 'string',
      description: "The node's CNI plugin directory: `seine install-cni --config` installs the `seine` plugin there, and the agent looks for other plugins (delegated secondary networks, IPAM) there when it attaches outside a CNI call (hot-plug).",
    },
    cniCacheDir: {
      type: 'string',
      description: "The container runtime's CNI cache (libcni's; its `results` hold each attachment's ADD). Chained mode: running pods that the primary CNI made before Seine came are taken over from it.",
    },
    metricsPort: { type: 'integer', minimum: 0, maximum: 65535, description: 'TCP port of the `/metrics`, `/healthz`, `/livez` and `/readyz` endpoints; 0 serves them on no port.' },
    metricsAddress: { type: 'string', minLength: 1, description: 'Address `metricsPort` listens on.' },
    metricsSocket: { type: 'string', minLength: 1, nullable: true, description: 'Path of a unix socket that also serves the same endpoints (for a scraper or relay on the node; the lab uses it). Left out: no socket.' },
    secondaryNetworks: {
      type: 'object',
      description: 'Multus-style secondary networks: NetworkAttachmentDefinitions named in the pod annotation `k8s.v1.cni.cncf.io/networks`.',
      additionalProperties: false,
      required: ['enabled', 'uplinks'],
      properties: {
        enabled: { type: 'boolean', description: 'Runs the secondary networks feature; service chains need it.' },
        uplinks: {
          type: 'object',
          required: [],
          additionalProperties: { type: 'string', pattern: '^[^/\\s]{1,15}$' },
          description:
            'Uplink interface of each VLAN trunk bridge on this node, by bridge (e.g. `{"br-vlan": "eth1"}`). The node annotation `seine.dev/secondary-uplinks` and a NAD\'s `uplink` come first; a VLAN bridge without an uplink connects the pods of one node only.',
        },
      },
    },
    serviceChains: {
      type: 'object',
      description: 'Service function chains (ServiceChain objects), steered through CNF function ports.',
      additionalProperties: false,
      required: ['enabled'],
      properties: { enabled: { type: 'boolean', description: 'Runs the service chain feature; it is off, whatever this says, unless `secondaryNetworks.enabled` (which attaches the function ports).' } },
    },
    networkPolicy: {
      type: 'object',
      description: 'NetworkPolicy, ClusterNetworkPolicy and MultiNetworkPolicy, as computed by `seine controller` and streamed to this agent.',
      additionalProperties: false,
      required: ['enabled', 'controllerNamespace'],
      properties: {
        enabled: { type: 'boolean', description: 'Runs the network policy feature; off, the node enforces no policy.' },
        controllerNamespace: {
          type: 'string',
          pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$',
          description: "Namespace of the controller's endpoint ConfigMap (seine-controller-endpoint, in the controller's `leaderElection.namespace`), read before each connection to the policy channel.",
        },
      },
    },
    services: {
      type: 'object',
      description: 'The Service proxy in OVS (ClusterIP, NodePort, LoadBalancer, externalIPs), which replaces kube-proxy on the node.',
      additionalProperties: false,
      required: ['enabled'],
      properties: { enabled: { type: 'boolean', description: 'Runs the Service proxy; turn it off only where another proxy serves the cluster.' } },
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
