import ipaddr from 'ipaddr.js';

/**
 * The match fields Seine writes, as OXM/NXM code points (OVS's meta-flow field table). One registry serves
 * matches, set_field/load, move and output-to-field, under every name a flow may use: the ovs-fields(7)
 * name, its alias (`dl_src`, `nw_dst`...) and the NXM/OXM constant name (`NXM_NX_REG0`).
 */

/** What a field's value looks like when written as text. */
export type FieldFormat = 'uint' | 'mac' | 'ipv4' | 'ipv6';

export interface FieldSpec {
  name: string;
  /** OXM class: 0x0000 NXM0, 0x0001 NXM1, 0x8000 OpenFlow basic, 0x8001 packet registers, 0xffff experimenter. */
  oxmClass: number;
  field: number;
  /** Experimenter id (class 0xffff only). */
  experimenter?: number;
  /** Value length on the wire. */
  bytes: number;
  /** Meaningful bits (low end of the value), for checks; defaults to bytes * 8. */
  bits: number;
  maskable: boolean;
  format: FieldFormat;
}

export const OXM_CLASS = { nxm0: 0x0000, nxm1: 0x0001, basic: 0x8000, packetRegs: 0x8001, experimenter: 0xffff } as const;

const specs = new Map<string, FieldSpec>();

function def(names: string[], oxmClass: number, field: number, bytes: number, opts: { bits?: number; maskable?: boolean; format?: FieldFormat } = {}): void {
  const spec: FieldSpec = {
    name: names[0]!,
    oxmClass,
    field,
    bytes,
    bits: opts.bits ?? bytes * 8,
    maskable: opts.maskable ?? true,
    format: opts.format ?? 'uint',
  };
  for (const n of names) specs.set(n.toLowerCase(), spec);
}

const { nxm0, nxm1, basic, packetRegs } = OXM_CLASS;
// Metadata.
def(['in_port', 'OXM_OF_IN_PORT'], basic, 0, 4, { maskable: false });
def(['NXM_OF_IN_PORT'], nxm0, 0, 2, { maskable: false });
def(['metadata', 'OXM_OF_METADATA'], basic, 2, 8);
def(['conj_id', 'NXM_NX_CONJ_ID'], nxm1, 37, 4, { maskable: false });
def(['pkt_mark', 'NXM_NX_PKT_MARK'], nxm1, 33, 4);
def(['tun_id', 'tunnel_id', 'NXM_NX_TUN_ID'], nxm1, 16, 8);
def(['tun_src', 'NXM_NX_TUN_IPV4_SRC'], nxm1, 31, 4, { format: 'ipv4' });
def(['tun_dst', 'NXM_NX_TUN_IPV4_DST'], nxm1, 32, 4, { format: 'ipv4' });
for (let i = 0; i < 16; i++) def([`reg${i}`, `NXM_NX_REG${i}`], nxm1, i, 4);
for (let i = 0; i < 8; i++) def([`xreg${i}`, `OXM_OF_PKT_REG${i}`], packetRegs, i, 8);
// Connection tracking.
def(['ct_state', 'NXM_NX_CT_STATE'], nxm1, 105, 4);
def(['ct_zone', 'NXM_NX_CT_ZONE'], nxm1, 106, 2, { maskable: false });
def(['ct_mark', 'NXM_NX_CT_MARK'], nxm1, 107, 4);
def(['ct_label', 'NXM_NX_CT_LABEL'], nxm1, 108, 16);
// Ethernet and VLAN.
def(['eth_src', 'dl_src', 'NXM_OF_ETH_SRC', 'OXM_OF_ETH_SRC'], basic, 4, 6, { format: 'mac' });
def(['eth_dst', 'dl_dst', 'NXM_OF_ETH_DST', 'OXM_OF_ETH_DST'], basic, 3, 6, { format: 'mac' });
def(['eth_type', 'dl_type', 'NXM_OF_ETH_TYPE', 'OXM_OF_ETH_TYPE'], basic, 5, 2, { maskable: false });
def(['vlan_tci', 'NXM_OF_VLAN_TCI'], nxm0, 4, 2);
def(['vlan_vid', 'OXM_OF_VLAN_VID'], basic, 6, 2, { bits: 13 });
def(['vlan_pcp', 'OXM_OF_VLAN_PCP'], basic, 7, 1, { bits: 3, maskable: false });
// IP.
def(['ip_src', 'nw_src', 'NXM_OF_IP_SRC', 'OXM_OF_IPV4_SRC'], basic, 11, 4, { format: 'ipv4' });
def(['ip_dst', 'nw_dst', 'NXM_OF_IP_DST', 'OXM_OF_IPV4_DST'], basic, 12, 4, { format: 'ipv4' });
def(['ipv6_src', 'NXM_NX_IPV6_SRC', 'OXM_OF_IPV6_SRC'], basic, 26, 16, { format: 'ipv6' });
def(['ipv6_dst', 'NXM_NX_IPV6_DST', 'OXM_OF_IPV6_DST'], basic, 27, 16, { format: 'ipv6' });
def(['nw_proto', 'ip_proto', 'NXM_OF_IP_PROTO', 'OXM_OF_IP_PROTO'], basic, 10, 1, { maskable: false });
def(['ip_dscp', 'OXM_OF_IP_DSCP'], basic, 8, 1, { bits: 6, maskable: false });
def(['nw_tos', 'NXM_OF_IP_TOS'], nxm0, 5, 1, { maskable: false });
def(['nw_ttl', 'NXM_NX_IP_TTL'], nxm1, 29, 1, { maskable: false });
// ARP.
def(['arp_op', 'NXM_OF_ARP_OP', 'OXM_OF_ARP_OP'], basic, 21, 2, { maskable: false });
def(['arp_spa', 'NXM_OF_ARP_SPA', 'OXM_OF_ARP_SPA'], basic, 22, 4, { format: 'ipv4' });
def(['arp_tpa', 'NXM_OF_ARP_TPA', 'OXM_OF_ARP_TPA'], basic, 23, 4, { format: 'ipv4' });
def(['arp_sha', 'NXM_NX_ARP_SHA', 'OXM_OF_ARP_SHA'], basic, 24, 6, { format: 'mac' });
def(['arp_tha', 'NXM_NX_ARP_THA', 'OXM_OF_ARP_THA'], basic, 25, 6, { format: 'mac' });
// Transport.
def(['tcp_src', 'NXM_OF_TCP_SRC', 'OXM_OF_TCP_SRC'], basic, 13, 2);
def(['tcp_dst', 'NXM_OF_TCP_DST', 'OXM_OF_TCP_DST'], basic, 14, 2);
def(['udp_src', 'NXM_OF_UDP_SRC', 'OXM_OF_UDP_SRC'], basic, 15, 2);
def(['udp_dst', 'NXM_OF_UDP_DST', 'OXM_OF_UDP_DST'], basic, 16, 2);
def(['sctp_src', 'OXM_OF_SCTP_SRC'], basic, 17, 2);
def(['sctp_dst', 'OXM_OF_SCTP_DST'], basic, 18, 2);
def(['tcp_flags', 'NXM_NX_TCP_FLAGS'], nxm1, 34, 2, { bits: 12 });
// The OpenFlow 1.5 code points OVS writes for tun_id and tcp_flags (the entries above are their NXM ones).
def(['OXM_OF_TUNNEL_ID'], basic, 38, 8);
def(['OXM_OF_TCP_FLAGS'], basic, 42, 2, { bits: 12 });
def(['icmp_type', 'NXM_OF_ICMP_TYPE', 'OXM_OF_ICMPV4_TYPE'], basic, 19, 1, { maskable: false });
def(['icmp_code', 'NXM_OF_ICMP_CODE', 'OXM_OF_ICMPV4_CODE'], basic, 20, 1, { maskable: false });
def(['icmpv6_type', 'NXM_NX_ICMPV6_TYPE', 'OXM_OF_ICMPV6_TYPE'], basic, 29, 1, { maskable: false });
def(['icmpv6_code', 'NXM_NX_ICMPV6_CODE', 'OXM_OF_ICMPV6_CODE'], basic, 30, 1, { maskable: false });

/** A flow the wire encoder cannot express: the writer falls back to ovs-ofctl for its bundle. */
export class UnencodableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnencodableError';
  }
}

export function fieldSpec(name: string): FieldSpec {
  const s = specs.get(name.toLowerCase());
  if (!s) throw new UnencodableError(`field ${name} is not in the wire field table`);
  return s;
}

/** The 32-bit OXM header (with the experimenter id after it for class 0xffff). */
export function oxmHeader(spec: FieldSpec, hasMask: boolean): Buffer {
  const exp = spec.oxmClass === OXM_CLASS.experimenter;
  const len = (exp ? 4 : 0) + spec.bytes * (hasMask ? 2 : 1);
  const b = Buffer.alloc(exp ? 8 : 4);
  b.writeUInt32BE(((spec.oxmClass << 16) | (spec.field << 9) | (hasMask ? 0x100 : 0) | len) >>> 0, 0);
  if (exp) b.writeUInt32BE(spec.experimenter!, 4);
  return b;
}

/** A field reference with an optional bit range: `reg0[0..15]`, `reg0[3]`, `NXM_NX_REG1[]`, `eth_dst`. */
export interface Subfield {
  spec: FieldSpec;
  ofs: number;
  nbits: number;
}

const SUBFIELD = /^([A-Za-z_][A-Za-z0-9_]*)(?:\[(?:(\d+)(?:\.\.(\d+))?)?\])?$/;

export function parseSubfield(ref: string): Subfield {
  const m = SUBFIELD.exec(ref);
  if (!m) throw new RangeError(`bad field reference ${ref}`);
  const spec = fieldSpec(m[1]!);
  const width = spec.bytes * 8;
  if (m[2] === undefined) return { spec, ofs: 0, nbits: width };
  const start = Number(m[2]);
  const end = m[3] === undefined ? start : Number(m[3]);
  if (end < start || end >= width) throw new RangeError(`${ref}: bits ${start}..${end} outside the ${width}-bit field`);
  return { spec, ofs: start, nbits: end - start + 1 };
}

/** Big-endian bytes of an unsigned value. */
export function uintBytes(v: bigint, bytes: number): Buffer {
  if (v < 0n || v >= 1n << BigInt(bytes * 8)) throw new RangeError(`value ${v} does not fit in ${bytes} bytes`);
  const b = Buffer.alloc(bytes);
  for (let i = bytes - 1; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return b;
}

function macBytes(text: string): Buffer {
  const parts = text.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-f]{2}$/i.test(p))) throw new RangeError(`bad MAC ${text}`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

/** A value of the field from a number or its text form (MAC, address; `/mask` not allowed here). */
export function valueBytes(spec: FieldSpec, v: number | bigint | string): Buffer {
  if (typeof v !== 'string' || /^(0x[0-9a-f]+|\d+)$/i.test(v)) return uintBytes(BigInt(v), spec.bytes);
  switch (spec.format) {
    case 'mac':
      return macBytes(v);
    case 'ipv4':
      if (!ipaddr.IPv4.isValidFourPartDecimal(v)) throw new RangeError(`${spec.name}: bad IPv4 address ${v}`);
      return Buffer.from(ipaddr.IPv4.parse(v).toByteArray());
    case 'ipv6':
      return Buffer.from(ipaddr.IPv6.parse(v).toByteArray());
    default:
      throw new RangeError(`${spec.name}: bad value ${v}`);
  }
}

/** A value/mask pair from `ADDR`, `ADDR/PREFIX`, `ADDR/MASK` or `MAC/MASK`; mask undefined when exact. */
export function maskedText(spec: FieldSpec, text: string): { value: Buffer; mask?: Buffer } {
  const slash = text.indexOf('/');
  if (slash < 0) return { value: valueBytes(spec, text) };
  const value = valueBytes(spec, text.slice(0, slash));
  const m = text.slice(slash + 1);
  let mask: Buffer;
  if (/^\d+$/.test(m) && (spec.format === 'ipv4' || spec.format === 'ipv6')) {
    const bits = Number(m);
    if (bits > spec.bytes * 8) throw new RangeError(`${spec.name}: prefix /${bits} too long`);
    mask = Buffer.alloc(spec.bytes);
    for (let i = 0; i < bits; i++) mask[i >> 3]! |= 0x80 >> (i & 7);
  } else {
    mask = valueBytes(spec, m);
  }
  return exactOrMasked(value, mask);
}

/** Drops an all-ones mask and clears value bits the mask hides, as OVS stores a match. */
export function exactOrMasked(value: Buffer, mask: Buffer): { value: Buffer; mask?: Buffer } {
  if (mask.every((b) => b === 0xff)) return { value };
  const v = Buffer.from(value);
  for (let i = 0; i < v.length; i++) v[i]! &= mask[i]!;
  return { value: v, mask };
}
