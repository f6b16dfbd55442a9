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
        nameservers: { type: 'array', items: { type: 'string' } },
        domain: { type: 'string' },
        search: { type: 'array', items: { type: 'string' } },
        options: { type: 'array', items: { type: 'string' } },
      },
    },
    attachments: {
      type: 'array',
      items: {
        type: 'object',
        required: ['containerID', 'ifname'],
        properties: { containerID: { type: 'string', minLength: 1 }, ifname: { type: 'string', minLength: 1 } },
      },
    },
  },
} as const;

/** An ADD result, 0.3.0 … 1.1.0 (a union: `ips[].version` is only meaningful before 1.0.0). */
const result = {
  $id: 'result',
  type: 'object',
  required: ['cniVersion'],
  properties: {
    cniVersion: { $ref: 'defs#/definitions/version' },
    interfaces: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name'],
        properties: {
          name: { type: 'string', minLength: 1 },
          mac: { type: 'string' },
          mtu: { type: 'integer', minimum: 0 },
          sandbox: { type: 'string' },
          socketPath: { type: 'string' },
          pciID: { type: 'string' },
        },
      },
    },
    ips: {
      type: 'array',
      items: {
        type: 'object',
        required: ['address'],
        properties: {
          address: { type: 'string' },
          gateway: { type: 'string' },
          interface: { type: 'integer', minimum: 0 },
          version: { enum: ['4', '6'] },
        },
      },
    },
    routes: {
      type: 'array',
      items: {
        type: 'object',
        required: ['dst'],
        properties: {
          dst: { type: 'string' },
          gw: { type: 'string' },
          mtu: { type: 'integer', minimum: 0 },
          advmss: { type: 'integer', minimum: 0 },
          priority: { type: 'integer', minimum: 0 },
          table: { type: 'integer', minimum: 0 },
          scope: { type: 'integer', minimum: 0 },
        },
      },
    },
    dns: { $ref: 'defs#/definitions/dns' },
  },
} as const;

/** One entry of a conflist's `plugins` (name/cniVersion are injected by the runtime). */
const pluginconf = {
  $id: 'pluginconf',
  type: 'object',
  required: ['type'],
  properties: {
    type: { $ref: 'defs#/definitions/pluginType' },
    name: { $ref: 'defs#/definitions/networkName' },
    cniVersion: { $ref: 'defs#/definitions/version' },
    capabilities: { type: 'object', additionalProperties: { type: 'boolean' } },
    ipam: { type: 'object', required: ['type'], properties: { type: { $ref: 'defs#/definitions/pluginType' } } },
    dns: { $ref: 'defs#/definitions/dns' },
    args: { type: 'object' },
    runtimeConfig: { type: 'object' },
    prevResult: { $ref: 'result' },
  },
} as const;

/** The network configuration a plugin receives on stdin (also a standalone `.conf` file). */
const netconf = {
  $id: 'netconf',
  type: 'object',
  allOf: [{ $ref: 'pluginconf' }],
  required: ['cniVersion', 'name', 'type'],
  properties: {
    cniVersions: { type: 'array', items: { $ref: 'defs#/definitions/version' } },
    'cni.dev/valid-attachments': { $ref: 'defs#/definitions/attachments' },
    'cni.dev/attachments': { $ref: 'defs#/definitions/attachments' },
  },
} as const;

/** A network configuration list. "cniVersion or cniVersions" is checked in code (clearer message). */
const conflist = {
  $id: 'conflist',
  type: 'object',
  required: ['name', 'plugins'],
  properties: {
    cniVersion: { $ref: 'defs#/definitions/version' },
    cniVersions: { type: 'array', items: { $ref: 'defs#/definitions/version' } },
    name: { $ref: 'defs#/definitions/networkName' },
    disableCheck: { $ref: 'defs#/definitions/boolish' },
    disableGC: { $ref: 'defs#/definitions/boolish' },
    plugins: { type: 'array', minItems: 1, items: { $ref: 'pluginconf' } },
  },
} as const;

/** A plugin's answer to VERSION. */
const versionResult = {
  $id: 'version-result',
  type: 'object',
  required: ['cniVersion'],
  properties: {
    cniVersion: { type: 'string' },
    supportedVersions: { type: 'array', items: { type: 'string' } },
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
