// JSON Schemas of Seine's own NAD config ({"type": "seine", ...}). Unlike generic CNI configs, unknown
// keys are refused: they are almost always a misspelt option that would otherwise be silently ignored.
import { ajv } from '../annotations/validation.js';
import { BRIDGE_NAME_PATTERN } from './bridges.js';

const VERSION = { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+$' } as const;

/** Every key Seine knows, with its type and range; which keys a network type needs is checked after. */
const base = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'networkType'],
  properties: {
    cniVersion: VERSION,
    cniVersions: { type: 'array', items: VERSION },
    name: { type: 'string', pattern: '^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$' },
    type: { const: 'seine' },
    networkType: { enum: ['vlan', 'overlay', 'function'] },
    // networkType function: the network whose bridge the port goes on, "<namespace>/<name>" of a Seine
    // VLAN or overlay NAD; absent or "": the pod network. Checked further in config.ts.
    network: { type: 'string' },
    // 0 is untagged and 4095 reserved by 802.1Q.
    vlan: { type: 'integer', minimum: 1, maximum: 4094 },
    // 24 bits.
    vni: { type: 'integer', minimum: 1, maximum: 16777215 },
    mtu: { type: 'integer', minimum: 576, maximum: 9216 },
    bridge: { type: 'string', pattern: BRIDGE_NAME_PATTERN },
    uplink: { type: 'string', format: 'ifname' },
    ipam: {
      type: 'object',
      required: ['type'],
      properties: { type: { type: 'string', pattern: '^(?!\\.\\.?$)[^/\\s]+$' } },
    },
    capabilities: { type: 'object', additionalProperties: { type: 'boolean' } },
    dns: { type: 'object' },
    args: { type: 'object' },
    runtimeConfig: { type: 'object' },
  },
} as const;

const vlanRules = { type: 'object', required: ['vlan', 'ipam'], properties: { vlan: true, ipam: true, vni: false, network: false } } as const;
// Overlay traffic leaves through the node's own address: no uplink of its own.
const overlayRules = { type: 'object', required: ['vni', 'ipam'], properties: { vni: true, ipam: true, vlan: false, uplink: false, network: false } } as const;

const seineIpam = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'ippools'],
  properties: {
    type: { const: 'seine' },
    ippools: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', format: 'dns-subdomain' } },
  },
} as const;

const staticIpam = {
  type: 'object',
  additionalProperties: false,
  required: ['type'],
  properties: {
    type: { const: 'static' },
    addresses: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['address'],
        properties: { address: { type: 'string', format: 'cidr' }, gateway: { type: 'string', format: 'ip' } },
      },
    },
    routes: {
      type: 'array',
      items: {
        type: 'object',
        required: ['dst'],
        properties: { dst: { type: 'string', format: 'cidr' }, gw: { type: 'string', format: 'ip' } },
      },
    },
    dns: {
      type: 'object',
      additionalProperties: false,
      properties: {
        nameservers: { type: 'array', items: { type: 'string', format: 'ip' } },
        domain: { type: 'string' },
        search: { type: 'array', items: { type: 'string' } },
        options: { type: 'array', items: { type: 'string' } },
      },
    },
  },
} as const;

export const validateSeineBase = ajv.compile(base);
export const validateVlanRules = ajv.compile(vlanRules);
export const validateOverlayRules = ajv.compile(overlayRules);
export const validateSeineIpam = ajv.compile(seineIpam);
export const validateStaticIpam = ajv.compile(staticIpam);
