// JSON Schemas of Seine's own NAD config ({"type": "seine", ...}). Unlike generic CNI configs, unknown
// keys are refused: they are almost always a misspelt option that would otherwise be silently ignored.
import { ajv } from '../annotations/validation.js';
import { BRIDGE_NAME_PATTERN } from './bridges.js';

const VERSION = { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+$' } as const;

/** Every key Seine knows, with its type and range; which keys a network type needs is checked after. */
export const base = {
  type: 'object',
  description: "Seine's own network config: the `config` of a NetworkAttachmentDefinition whose `type` is `seine`.",
  additionalProperties: false,
  required: ['type', 'networkType'],
  properties: {
    cniVersion: { ...VERSION, description: 'CNI version the config is written in; this or `cniVersions` is required.' },
    cniVersions: { type: 'array', items: VERSION, description: 'Every CNI version the config supports; the highest one Seine supports is used.' },
    name: { type: 'string', pattern: '^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$', description: "The network's name. Left out: the NetworkAttachmentDefinition's name." },
    type: { const: 'seine', description: '`seine`: Seine makes the network itself.' },
    networkType: {
      enum: ['vlan', 'overlay', 'function'],
      description: "`vlan`: 802.1Q on a physical trunk. `overlay`: VXLAN between nodes. `function`: ports of a service chain's CNF, carrying only the traffic a chain steers into them.",
    },
    // networkType function: the network whose bridge the port goes on, "<namespace>/<name>" of a Seine
    // VLAN or overlay NAD; absent or "": the pod network. Checked further in config.ts.
    network: {
      type: 'string',
      description: '`function` only: `namespace/name` of the Seine VLAN or overlay NetworkAttachmentDefinition whose bridge, VLAN or VNI and MTU the ports take. Left out or empty: the pod network.',
    },
    // 0 is untagged and 4095 reserved by 802.1Q.
    vlan: { type: 'integer', minimum: 1, maximum: 4094, description: "`vlan` only: the network's VLAN ID; its pods' ports are access ports of that VLAN on the trunk bridge." },
    // 24 bits.
    vni: { type: 'integer', minimum: 1, maximum: 16777215, description: "`overlay` only: the network's VXLAN network identifier; networks with one VNI share a bridge." },
    mtu: {
      type: 'integer',
      minimum: 576,
      maximum: 9216,
      description: "MTU of the pods' interfaces on the network, in bytes. Left out: the node's underlay MTU for `vlan`, the pod network's MTU for `overlay`. Not for `function`.",
    },
    bridge: {
      type: 'string',
      pattern: BRIDGE_NAME_PATTERN,
      description: "OVS bridge of the network; never the pod network's `br-int` or `br-phy`. Left out: `br-vlan` for VLAN networks (one shared trunk), `br-ovl-VNI` for overlays (`br-ovl-5001`). Not for `function`.",
    },
    uplink: {
      type: 'string',
      format: 'ifname',
      description:
        "`vlan` only: the trunk bridge's physical interface, as a cluster-wide default. The node annotation `seine.dev/secondary-uplinks` comes first, the agent's `secondaryNetworks.uplinks` after; with none, the network connects the pods of one node only.",
    },
    ipam: {
      type: 'object',
      description: "Where the interfaces' addresses come from; required for `vlan` and `overlay`, refused for `function`.",
      required: ['type'],
      properties: { type: { type: 'string', pattern: '^(?!\\.\\.?$)[^/\\s]+$', description: '`seine`, `static`, or the name of an IPAM plugin executable (such as `host-local`), which is run for the interface.' } },
    },
    capabilities: {
      type: 'object',
      additionalProperties: { type: 'boolean' },
      description:
        "CNI capabilities the network declares (`true`): a pod's networks annotation may request only supported ones. Seine's networks support `mac` without it, and `ips` with `seine` or `static` IPAM.",
    },
    dns: { type: 'object', description: "A standard CNI key, accepted; Seine's own networks do not use it." },
    args: { type: 'object', description: "A standard CNI key (arguments a runtime inserts), accepted; Seine's own networks do not use it." },
    runtimeConfig: { type: 'object', description: "A standard CNI key (capability arguments a runtime inserts), accepted; Seine's own networks do not use it." },
  },
} as const;

export const vlanRules = { type: 'object', description: 'What a `vlan` network needs and refuses.', required: ['vlan', 'ipam'], properties: { vlan: true, ipam: true, vni: false, network: false } } as const;
// Overlay traffic leaves through the node's own address: no uplink of its own.
export const overlayRules = { type: 'object', description: 'What an `overlay` network needs and refuses.', required: ['vni', 'ipam'], properties: { vni: true, ipam: true, vlan: false, uplink: false, network: false } } as const;

export const seineIpam = {
  type: 'object',
  description: 'IPAM from IPPools.',
  additionalProperties: false,
  required: ['type', 'ippools'],
  properties: {
    type: { const: 'seine', description: 'Addresses from IPPools.' },
    ippools: {
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: { type: 'string', format: 'dns-subdomain' },
      description: "Names of the IPPools an interface's address comes from, tried in order: the next one when a pool is full. An address the pod's annotation asks for (`ips`) is reserved in the pool that holds it.",
    },
  },
} as const;

export const staticIpam = {
  type: 'object',
  description: 'IPAM with the addresses given.',
  additionalProperties: false,
  required: ['type'],
  properties: {
    type: { const: 'static', description: "The addresses of the pod's networks annotation (`ips`), else those listed in `addresses`." },
    addresses: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['address'],
        properties: {
          address: { type: 'string', format: 'cidr', description: 'An address of the interface, with its prefix length.' },
          gateway: { type: 'string', format: 'ip', description: "Gateway put in the CNI result with the interface's addresses (the first one given serves for all); it makes no route." },
        },
      },
      description: "The interface's addresses, used when the pod's networks annotation asks for none (`ips`). Left out: none.",
    },
    routes: {
      type: 'array',
      items: {
        type: 'object',
        required: ['dst'],
        properties: {
          dst: { type: 'string', format: 'cidr', description: "Destination; a default route (`0.0.0.0/0`) replaces the pod's default route of that family." },
          gw: { type: 'string', format: 'ip', description: 'Next hop. Left out: the destination is reached on the interface directly.' },
        },
      },
      description: 'Routes added in the pod through the interface.',
    },
    dns: {
      type: 'object',
      additionalProperties: false,
      properties: {
        nameservers: { type: 'array', items: { type: 'string', format: 'ip' }, description: 'DNS server addresses (not used).' },
        domain: { type: 'string', description: 'Local domain for short host names (not used).' },
        search: { type: 'array', items: { type: 'string' }, description: 'Search domains for short host names (not used).' },
        options: { type: 'array', items: { type: 'string' }, description: 'Resolver options (not used).' },
      },
      description: "DNS settings in the static IPAM plugin's format: accepted, but not used (the interface's CNI result carries no DNS).",
    },
  },
} as const;

export const validateSeineBase = ajv.compile(base);
export const validateVlanRules = ajv.compile(vlanRules);
export const validateOverlayRules = ajv.compile(overlayRules);
export const validateSeineIpam = ajv.compile(seineIpam);
export const validateStaticIpam = ajv.compile(staticIpam);
