import type { Masked, Match, Protocol, Regs, Xregs } from '../match.js';
import { checkUint } from '../match.js';
import { ByteWriter, checkFits } from './bytes.js';
import { fieldSpec, maskedText, oxmHeader, uintBytes, UnencodableError, type FieldSpec } from './fields.js';

/** ethertype and IP protocol of each shorthand of ovs-fields(7). */
const PROTOCOL: Record<Protocol, [number, number?]> = {
  ip: [0x0800],
  ipv6: [0x86dd],
  arp: [0x0806],
  rarp: [0x8035],
  icmp: [0x0800, 1],
  icmp6: [0x86dd, 58],
  tcp: [0x0800, 6],
  tcp6: [0x86dd, 6],
  udp: [0x0800, 17],
  udp6: [0x86dd, 17],
  sctp: [0x0800, 132],
  sctp6: [0x86dd, 132],
};

const REGS = Array.from({ length: 16 }, (_, i) => `reg${i}` as keyof Regs);
const XREGS = Array.from({ length: 8 }, (_, i) => `xreg${i}` as keyof Xregs);

const CT_BITS: Record<string, number> = { new: 0x01, est: 0x02, rel: 0x04, rpl: 0x08, inv: 0x10, trk: 0x20, snat: 0x40, dnat: 0x80 };

/** Transport port fields by IP protocol: tp_src/tp_dst mean the protocol's own field. */
const TP: Record<number, [string, string]> = { 6: ['tcp_src', 'tcp_dst'], 17: ['udp_src', 'udp_dst'], 132: ['sctp_src', 'sctp_dst'] };

/** Writes one value of `bytes` bytes (1, 2, 4, 6, 8 or 16) from a checked number or bigint. */
function writeUint(w: ByteWriter, v: number | bigint, bytes: number): void {
  if (bytes === 1) w.u8(Number(v));
  else if (bytes === 2) w.u16(Number(v));
  else if (bytes === 4) w.u32(Number(v));
  else if (bytes === 8) w.u64(BigInt(v));
  else w.bytes(uintBytes(BigInt(v), bytes));
}

function header(w: ByteWriter, spec: FieldSpec, hasMask: boolean): void {
  w.bytes(hasMask ? headers(spec).masked : headers(spec).exact);
}

const headerCache = new WeakMap<FieldSpec, { exact: Buffer; masked: Buffer }>();
function headers(spec: FieldSpec): { exact: Buffer; masked: Buffer } {
  let h = headerCache.get(spec);
  if (!h) headerCache.set(spec, (h = { exact: oxmHeader(spec, false), masked: oxmHeader(spec, true) }));
  return h;
}

const ALL_ONES: Record<number, bigint> = {};
function allOnes(bytes: number): bigint {
  return (ALL_ONES[bytes] ??= (1n << BigInt(bytes * 8)) - 1n);
}

function numeric(w: ByteWriter, name: string, v: Masked): void {
  const spec = fieldSpec(name);
  const bits = spec.bytes * 8;
  if (typeof v !== 'object') {
    checkFits(name, v, bits);
    header(w, spec, false);
    writeUint(w, v, spec.bytes);
    return;
  }
  const mask = checkUint(name, v.mask, bits);
  if (mask === 0n) return; // a zero mask matches everything: no field at all
  const value = checkUint(name, v.value, bits) & mask;
  if (mask === allOnes(spec.bytes)) {
    header(w, spec, false);
    writeUint(w, value, spec.bytes);
    return;
  }
  if (!spec.maskable) throw new UnencodableError(`${name} cannot be matched with a mask`);
  header(w, spec, true);
  writeUint(w, value, spec.bytes);
  writeUint(w, mask, spec.bytes);
}

// Address texts repeat across syncs (the same peers, the same pods): parse each once.
const textCache = new Map<string, { value: Buffer; mask?: Buffer }>();
const TEXT_CACHE_LIMIT = 200_000;

function textual(w: ByteWriter, name: string, text: string): void {
  const spec = fieldSpec(name);
  const key = `${spec.name}=${text}`;
  let m = textCache.get(key);
  if (!m) {
    m = maskedText(spec, text);
    if (textCache.size >= TEXT_CACHE_LIMIT) textCache.clear();
    textCache.set(key, m);
  }
  header(w, spec, !!m.mask);
  w.bytes(m.value);
  if (m.mask) w.bytes(m.mask);
}

function ctState(w: ByteWriter, v: NonNullable<Match['ct_state']>): void {
  const flags: [string, boolean][] =
    typeof v === 'string' ? (v.match(/[+-][a-z]+/g) ?? []).map((f) => [f.slice(1), f[0] === '+']) : Object.entries(v).map(([k, on]) => [k, !!on]);
  let value = 0;
  let mask = 0;
  for (const [flag, on] of flags) {
    const bit = CT_BITS[flag];
    if (bit === undefined) throw new RangeError(`ct_state: unknown flag ${flag}`);
    mask |= bit;
    if (on) value |= bit;
  }
  if (!mask) throw new RangeError('ct_state: no flags');
  header(w, fieldSpec('ct_state'), true);
  w.u32(value).u32(mask);
}

/**
 * The OXM fields of a match, prerequisites first (in_port, eth_type, ip_proto), as OVS expects them.
 * Throws UnencodableError for what only ovs-ofctl's text form can say (`extra` fields).
 */
export function writeOxmFields(w: ByteWriter, m: Match = {}): void {
  if (m.extra && Object.keys(m.extra).length) throw new UnencodableError(`match fields ${Object.keys(m.extra).join(', ')} have no wire encoding here`);
  if (m.protocol !== undefined && m.dl_type !== undefined) throw new RangeError('match: give protocol or dl_type, not both');
  if (m.in_port !== undefined) numeric(w, 'in_port', m.in_port === 'LOCAL' ? 0xfffffffe : m.in_port);
  let ethType = m.dl_type;
  let ipProto = m.nw_proto;
  if (m.protocol !== undefined) {
    const p = PROTOCOL[m.protocol];
    if (!p) throw new RangeError(`match: unknown protocol ${m.protocol}`);
    ethType = p[0];
    if (p[1] !== undefined) {
      if (ipProto !== undefined && ipProto !== p[1]) throw new RangeError(`match: ${m.protocol} with nw_proto ${ipProto}`);
      ipProto = p[1];
    }
  }
  if (ethType !== undefined) numeric(w, 'eth_type', ethType);
  if (ipProto !== undefined) numeric(w, 'nw_proto', ipProto);
  if (m.dl_src !== undefined) textual(w, 'eth_src', m.dl_src);
  if (m.dl_dst !== undefined) textual(w, 'eth_dst', m.dl_dst);
  if (m.vlan_tci !== undefined) numeric(w, 'vlan_tci', m.vlan_tci);
  // dl_vlan=N is ovs-ofctl's vlan_tci=0x1000|N/0x1fff (a tag present, with this VID).
  if (m.dl_vlan !== undefined) numeric(w, 'vlan_tci', { value: 0x1000 | Number(checkUint('dl_vlan', m.dl_vlan, 12)), mask: 0x1fff });
  if (m.nw_src !== undefined) textual(w, 'ip_src', m.nw_src);
  if (m.nw_dst !== undefined) textual(w, 'ip_dst', m.nw_dst);
  if (m.nw_ttl !== undefined) numeric(w, 'nw_ttl', m.nw_ttl);
  if (m.ip_dscp !== undefined) numeric(w, 'ip_dscp', m.ip_dscp);
  if (m.ipv6_src !== undefined) textual(w, 'ipv6_src', m.ipv6_src);
  if (m.ipv6_dst !== undefined) textual(w, 'ipv6_dst', m.ipv6_dst);
  if (m.arp_op !== undefined) numeric(w, 'arp_op', m.arp_op);
  if (m.arp_spa !== undefined) textual(w, 'arp_spa', m.arp_spa);
  if (m.arp_tpa !== undefined) textual(w, 'arp_tpa', m.arp_tpa);
  if (m.arp_sha !== undefined) textual(w, 'arp_sha', m.arp_sha);
  if (m.arp_tha !== undefined) textual(w, 'arp_tha', m.arp_tha);
  if (m.tp_src !== undefined || m.tp_dst !== undefined) {
    const names = ipProto === undefined ? undefined : TP[ipProto];
    if (!names) throw new UnencodableError(`tp_src/tp_dst need TCP, UDP or SCTP (nw_proto ${ipProto ?? 'unset'})`);
    if (m.tp_src !== undefined) numeric(w, names[0], m.tp_src);
    if (m.tp_dst !== undefined) numeric(w, names[1], m.tp_dst);
  }
  if (m.icmp_type !== undefined || m.icmp_code !== undefined) {
    const v6 = ethType === 0x86dd;
    if (m.icmp_type !== undefined) numeric(w, v6 ? 'icmpv6_type' : 'icmp_type', m.icmp_type);
    if (m.icmp_code !== undefined) numeric(w, v6 ? 'icmpv6_code' : 'icmp_code', m.icmp_code);
  }
  if (m.ct_state !== undefined) ctState(w, m.ct_state);
  if (m.ct_zone !== undefined) numeric(w, 'ct_zone', m.ct_zone);
  if (m.ct_mark !== undefined) numeric(w, 'ct_mark', m.ct_mark);
  if (m.ct_label !== undefined) numeric(w, 'ct_label', m.ct_label);
  for (const k of REGS) {
    const v = m[k];
    if (v !== undefined) numeric(w, k, v);
  }
  for (const k of XREGS) {
    const v = m[k];
    if (v !== undefined) numeric(w, k, v);
  }
  // OpenFlow 1.5 has a code point of its own for the tunnel id; OVS writes that one.
  if (m.tun_id !== undefined) numeric(w, 'OXM_OF_TUNNEL_ID', m.tun_id);
  if (m.tun_src !== undefined) textual(w, 'tun_src', m.tun_src);
  if (m.tun_dst !== undefined) textual(w, 'tun_dst', m.tun_dst);
  if (m.metadata !== undefined) numeric(w, 'metadata', m.metadata);
  if (m.conj_id !== undefined) numeric(w, 'conj_id', m.conj_id);
}

/** Writes an OpenFlow 1.5 `ofp_match` (type OXM), padded to 8 bytes. */
export function writeMatch(w: ByteWriter, m: Match = {}): void {
  const start = w.length;
  w.u16(1).u16(0); // OFPMT_OXM, length filled in below
  writeOxmFields(w, m);
  w.setU16(start + 2, w.length - start);
  w.pad8();
}

export function encodeMatch(m: Match = {}): Buffer {
  const w = new ByteWriter(64);
  writeMatch(w, m);
  return w.finish();
}
