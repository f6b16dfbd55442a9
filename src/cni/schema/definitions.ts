// JSON Schemas for the generic parts of CNI documents. Plugin-specific keys are allowed everywhere
// (no additionalProperties: false): a runtime must pass them through untouched.
// Compiled ahead of time into compiled.ts by generate.ts; edit here, then regenerate.

const defs = {
  $id: 'defs',
  definitions: {
    version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+$' },
    // Network names key on-disk state (cache files, IPAM dirs): same rule as libcni.
    networkName: { type: 'string', pattern: '^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$' },
    // Executable name looked up in CNI_PATH: no path separators, never "." or "..".
    pluginType: { type: 'string', pattern: '^(?!\\.\\.?$)[^/\\s]+$' },
    boolish: {
      anyOf: [{ type: 'boolean' }, { type: 'string', pattern: '^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$' }],
    },
    dns: {
      type: 'object',
      properties: {
        nameservers: { type: 'array', items: { type: 'string' }, description: 'DNS server addresses (IPv4 or IPv6), in order of priority.' },
        domain: { type: 'string', description: 'Local domain for short host-name lookups.' },
        search: { type: 'array', items: { type: 'string' }, description: 'Search domains for short host-name lookups, in order of priority.' },
        options: { type: 'array', items: { type: 'string' }, description: 'Options passed to the resolver.' },
      },
    },
    attachments: {
      type: 'array',
      items: {
        type: 'object',
        required: ['containerID', 'ifname'],
        properties: {
          containerID: { type: 'string', minLength: 1, description: '`CNI_CONTAINERID` of the attachment, as its ADD had it.' },
          ifname: { type: 'string', minLength: 1, description: '`CNI_IFNAME` of the attachment, as its ADD had it.' },
        },
      },
    },
  },
} as const;

/** An ADD result, 0.3.0 … 1.1.0 (a union: `ips[].version` is only meaningful before 1.0.0). */
const result = {
  $id: 'result',
  type: 'object',
  description: "A plugin's answer to ADD.",
  required: ['cniVersion'],
  properties: {
    cniVersion: { $ref: 'defs#/definitions/version', description: "CNI version of the result: the version of the call's configuration." },
    interfaces: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name'],
        properties: {
          name: { type: 'string', minLength: 1, description: 'Name of the interface.' },
          mac: { type: 'string', description: 'Hardware address of the interface, where it has one.' },
          mtu: { type: 'integer', minimum: 0, description: 'MTU of the interface, in bytes (CNI 1.1.0; dropped from older results).' },
          sandbox: { type: 'string', description: "The container's network namespace (`CNI_NETNS`) for an interface inside it; empty or left out for an interface on the host." },
          socketPath: { type: 'string', description: 'Absolute path of a socket file of the interface, where it has one (CNI 1.1.0; dropped from older results).' },
          pciID: { type: 'string', description: "Platform identifier of the interface's PCI device, where it has one (CNI 1.1.0; dropped from older results)." },
        },
      },
      description: 'Every interface the attachment made, in the container and on the host.',
    },
    ips: {
      type: 'array',
      items: {
        type: 'object',
        required: ['address'],
        properties: {
          address: { type: 'string', description: 'The address with its prefix length (`10.1.0.2/24`).' },
          gateway: { type: 'string', description: "Default gateway of the address's subnet, where there is one." },
          interface: { type: 'integer', minimum: 0, description: 'Index in `interfaces` of the interface the address is on.' },
          version: { enum: ['4', '6'], description: 'IP version of the address: in results older than CNI 1.0.0 only.' },
        },
      },
      description: 'Addresses the attachment assigned.',
    },
    routes: {
      type: 'array',
      items: {
        type: 'object',
        required: ['dst'],
        properties: {
          dst: { type: 'string', description: 'Destination, in CIDR notation.' },
          gw: { type: 'string', description: 'Next hop. Left out: a `gateway` of `ips` may serve.' },
          mtu: { type: 'integer', minimum: 0, description: 'MTU along the path to the destination, in bytes (CNI 1.1.0; dropped from older results).' },
          advmss: { type: 'integer', minimum: 0, description: 'TCP maximum segment size to advertise to the destination, in bytes (CNI 1.1.0; dropped from older results).' },
          priority: { type: 'integer', minimum: 0, description: 'Priority of the route, lower first (CNI 1.1.0; dropped from older results).' },
          table: { type: 'integer', minimum: 0, description: 'Routing table the route goes in (CNI 1.1.0; dropped from older results).' },
          scope: { type: 'integer', minimum: 0, description: 'Scope of the destination: 0 global, 253 link, 254 host (CNI 1.1.0; dropped from older results).' },
        },
      },
      description: 'Routes the attachment made.',
    },
    dns: { $ref: 'defs#/definitions/dns', description: 'DNS settings the network knows of.' },
  },
} as const;

/** One entry of a conflist's `plugins` (name/cniVersion are injected by the runtime). */
const pluginconf = {
  $id: 'pluginconf',
  type: 'object',
  description: 'One plugin of a network configuration list.',
  required: ['type'],
  properties: {
    type: { $ref: 'defs#/definitions/pluginType', description: 'Name of the plugin executable, looked up in the CNI plugin directories (`CNI_PATH`).' },
    name: { $ref: 'defs#/definitions/networkName', description: "Network name; the runtime puts the list's `name` here when it runs the plugin." },
    cniVersion: { $ref: 'defs#/definitions/version', description: 'CNI version of the call; the runtime puts the version it chose for the list here when it runs the plugin.' },
    capabilities: {
      type: 'object',
      additionalProperties: { type: 'boolean' },
      description: 'Capabilities the plugin supports (such as `portMappings`, `ips`, `mac`): the runtime passes the arguments of those requested in `runtimeConfig`.',
    },
    ipam: {
      type: 'object',
      required: ['type'],
      properties: { type: { $ref: 'defs#/definitions/pluginType', description: 'Name of the IPAM plugin executable.' } },
      description: "IP address management: the other keys are the IPAM plugin's own.",
    },
    dns: { $ref: 'defs#/definitions/dns', description: 'DNS settings for plugins that use them.' },
    args: { type: 'object', description: "Reserved: extra arguments the runtime inserts (Seine's secondary networks put the networks annotation's `cni-args` under `args.cni`)." },
    runtimeConfig: { type: 'object', description: "Reserved: inserted by the runtime, the arguments of the capabilities requested for the call that `capabilities` declares." },
    prevResult: { $ref: 'result', description: 'Inserted by the runtime: the result of the previous plugin of the list (ADD), or the cached result of the ADD (CHECK, DEL).' },
  },
} as const;

/** The network configuration a plugin receives on stdin (also a standalone `.conf` file). */
const netconf = {
  $id: 'netconf',
  type: 'object',
  description: 'The network configuration a plugin receives on stdin (also a standalone `.conf` file).',
  allOf: [{ $ref: 'pluginconf' }],
  required: ['cniVersion', 'name', 'type'],
  properties: {
    cniVersions: { type: 'array', items: { $ref: 'defs#/definitions/version' }, description: 'Every CNI version a `.conf` file supports; the highest one supported, of these and `cniVersion`, is used.' },
    'cni.dev/valid-attachments': { $ref: 'defs#/definitions/attachments', description: "GC only: the network's attachments still in use; the plugin may remove what it keeps for any other." },
    'cni.dev/attachments': { $ref: 'defs#/definitions/attachments', description: 'GC only: the earlier spelling of `cni.dev/valid-attachments`, which libcni sends too; read when that one is absent.' },
  },
} as const;

/** A network configuration list. "cniVersion or cniVersions" is checked in code (clearer message). */
const conflist = {
  $id: 'conflist',
  type: 'object',
  description: 'A network configuration list.',
  required: ['name', 'plugins'],
  properties: {
    cniVersion: { $ref: 'defs#/definitions/version', description: 'CNI version the list and its plugins are written in; this or `cniVersions` is required.' },
    cniVersions: {
      type: 'array',
      items: { $ref: 'defs#/definitions/version' },
      description: 'Every CNI version the list supports (CNI 1.1.0); the highest one supported, of these and `cniVersion`, is used.',
    },
    name: { $ref: 'defs#/definitions/networkName', description: "Network name, unique on the node; it keys the network's cached results and plugin state." },
    disableCheck: { $ref: 'defs#/definitions/boolish', description: '`true` (or `"true"` in any case): CHECK is never run for this list. Left out: `false`.' },
    disableGC: { $ref: 'defs#/definitions/boolish', description: '`true` (or `"true"` in any case): GC is never run for this list. Left out: `false`.' },
    plugins: { type: 'array', minItems: 1, items: { $ref: 'pluginconf' }, description: 'The plugins, run in this order for ADD and in reverse order for DEL.' },
  },
} as const;

/** A plugin's answer to VERSION. */
const versionResult = {
  $id: 'version-result',
  type: 'object',
  description: "A plugin's answer to VERSION.",
  required: ['cniVersion'],
  properties: {
    cniVersion: { type: 'string', description: 'CNI version of the answer: the one of the call.' },
    supportedVersions: { type: 'array', items: { type: 'string' }, description: "Every CNI version the plugin supports. Left out: only `cniVersion` (a plugin older than CNI 0.2.0)." },
  },
} as const;

export const SCHEMAS = [defs, result, pluginconf, netconf, conflist, versionResult] as const;

/** Exported validator name → schema id, as emitted into compiled.ts. */
export const VALIDATORS = {
  validateResult: 'result',
  validatePluginConf: 'pluginconf',
  validateNetConf: 'netconf',
  validateConfList: 'conflist',
  validateVersionResult: 'version-result',
} as const;
