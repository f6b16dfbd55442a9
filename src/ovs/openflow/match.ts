import ipaddr from 'ipaddr.js';

/**
 * A flow match as structured data. Keys are the OVS field names of ovs-fields(7) so that a reader who
 * knows OVS recognises them; values are validated and rendered to ovs-ofctl syntax by renderMatch.
 * Ports are OpenFlow port numbers (names are never used: they cannot be compared offline).
 */

/** A number, or a value with a bit mask (`value/mask`). */
export type Masked = number | bigint | { value: number | bigint; mask: number | bigint };

/** Protocol shorthands of ovs-fields(7); each implies dl_type (and nw_proto). */
export type Protocol = 'ip' | 'ipv6' | 'arp' | 'rarp' | 'icmp' | 'icmp6' | 'tcp' | 'tcp6' | 'udp' | 'udp6' | 'sctp' | 'sctp6';

export type CtFlag = 'new' | 'est' | 'rel' | 'rpl' | 'inv' | 'trk' | 'snat' | 'dnat';

type RegIndex = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 12 | 13 | 14 | 15;
type XregIndex = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7;

export type Regs = { [K in `reg${RegIndex}`]?: Masked };
export type Xregs = { [K in `xreg${XregIndex}`]?: Masked };

export interface Match extends Regs, Xregs {
  in_port?: number | 'LOCAL';
  /** Protocol shorthand (`ip`, `tcp`, `arp`...). Use it or dl_type, not both. */
  protocol?: Protocol;
  dl_type?: number;
  /** MAC, optionally `MAC/MASK`. */
  dl_src?: string;
  dl_dst?: string;
  vlan_tci?: Masked;
  dl_vlan?: number;
  /** IPv4 address or CIDR (`10.0.0.0/24`). */
  nw_src?: string;
  nw_dst?: string;
  nw_proto?: number;
  nw_ttl?: number;
  ip_dscp?: number;
  ipv6_src?: string;
  ipv6_dst?: string;
  arp_op?: number;
  arp_spa?: string;
  arp_tpa?: string;
  arp_sha?: string;
  arp_tha?: string;
  tp_src?: Masked;
  tp_dst?: Masked;
  icmp_type?: number;
  icmp_code?: number;
  /** `+trk+est-new` style, or flags mapped to true (set) / false (unset). */
  ct_state?: string | Partial<Record<CtFlag, boolean>>;
  ct_zone?: number;
  ct_mark?: Masked;
  ct_label?: Masked;
  tun_id?: Masked;
  tun_src?: string;
  tun_dst?: string;
  metadata?: Masked;
  conj_id?: number;
  /** Escape hatch for fields not modelled above, rendered as `name=value` after them. */
  extra?: Record<string, string | number | bigint>;
}

/** Field widths in bits for numeric validation. */
const WIDTH: Record<string, number> = {
  in_port: 32,
  dl_type: 16,
  vlan_tci: 16,
  dl_vlan: 12,
  nw_proto: 8,
  nw_ttl: 8,
  ip_dscp: 6,
  arp_op: 16,
  tp_src: 16,
  tp_dst: 16,
  icmp_type: 8,
  icmp_code: 8,
  ct_zone: 16,
  ct_mark: 32,
  ct_label: 128,
  tun_id: 64,
  metadata: 64,
  conj_id: 32,
};
for (let i = 0; i < 16; i++) WIDTH[`reg${i}`] = 32;
for (let i = 0; i < 8; i++) WIDTH[`xreg${i}`] = 64;

const PROTOCOLS: ReadonlySet<string> = new Set<Protocol>(['ip', 'ipv6', 'arp', 'rarp', 'icmp', 'icmp6', 'tcp', 'tcp6', 'udp', 'udp6', 'sctp', 'sctp6']);
const CT_FLAGS: ReadonlySet<string> = new Set<CtFlag>(['new', 'est', 'rel', 'rpl', 'inv', 'trk', 'snat', 'dnat']);
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
/** Characters that would break a comma-separated ovs-ofctl flow line. */
// Whitespace and commas split a field; ovs-ofctl cuts a line at '#' (a comment); control characters end lines.
const UNSAFE = /[\s,#\p{Cc}]/u;
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function checkUint(field: string, v: number | bigint, bits: number): bigint {
  if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new RangeError(`${field}: ${v} is not an integer`);
  const b = BigInt(v);
  if (b < 0n || b >= 1n << BigInt(bits)) throw new RangeError(`${field}: ${v} does not fit in ${bits} bits`);
  return b;
}

function hexOf(v: bigint): string {
  return `0x${v.toString(16)}`;
}

/** `0xVALUE` or `0xVALUE/0xMASK`, range-checked against the field width. */
export function renderMasked(field: string, v: Masked, bits: number): string {
  if (typeof v === 'object') return `${hexOf(checkUint(field, v.value, bits))}/${hexOf(checkUint(field, v.mask, bits))}`;
  return hexOf(checkUint(field, v, bits));
}

export function renderMac(field: string, v: string): string {
  const [mac, mask, ...rest] = v.split('/');
  if (rest.length || !MAC_RE.test(mac!) || (mask !== undefined && !MAC_RE.test(mask))) throw new RangeError(`${field}: bad MAC ${v}`);
  return mask === undefined ? mac!.toLowerCase() : `${mac!.toLowerCase()}/${mask.toLowerCase()}`;
}

/** An address or CIDR of the given family, as written (OVS accepts both forms). */
export function renderIp(field: string, v: string, family: 4 | 6): string {
  const cls = family === 4 ? ipaddr.IPv4 : ipaddr.IPv6;
  const ok = v.includes('/') ? cls.isValidCIDR(v) : family === 4 ? ipaddr.IPv4.isValidFourPartDecimal(v) : cls.isValid(v);
  if (!ok) throw new RangeError(`${field}: bad IPv${family} address ${v}`);
  return v;
}

function renderCtState(v: string | Partial<Record<CtFlag, boolean>>): string {
  if (typeof v === 'string') {
    const flags = v.match(/[+-][a-z]+/g) ?? [];
    if (flags.join('') !== v || flags.some((f) => !CT_FLAGS.has(f.slice(1)))) throw new RangeError(`ct_state: bad flags ${v}`);
    return v;
  }
  const parts = Object.entries(v).map(([flag, on]) => {
    if (!CT_FLAGS.has(flag)) throw new RangeError(`ct_state: unknown flag ${flag}`);
    return `${on ? '+' : '-'}${flag}`;
  });
  if (!parts.length) throw new RangeError('ct_state: no flags');
  return parts.join('');
}

function num(field: string, v: number): string {
  return checkUint(field, v, WIDTH[field]!).toString();
}

export function checkToken(what: string, v: string): string {
  if (!v || UNSAFE.test(v)) throw new RangeError(`${what}: "${v}" is empty or contains whitespace, commas, '#' or control characters`);
  return v;
}

/** Renders a match as comma-separated ovs-ofctl fields (empty string for match-all). */
export function renderMatch(m: Match = {}): string {
  const out: string[] = [];
  const put = (k: string, v: string): void => {
    out.push(`${k}=${v}`);
  };
  if (m.protocol !== undefined && m.dl_type !== undefined) throw new RangeError('match: give protocol or dl_type, not both');

  if (m.in_port !== undefined) put('in_port', m.in_port === 'LOCAL' ? 'LOCAL' : num('in_port', m.in_port));
  if (m.protocol !== undefined) {
    if (!PROTOCOLS.has(m.protocol)) throw new RangeError(`match: unknown protocol ${m.protocol}`);
    out.push(m.protocol);
  }
  if (m.dl_type !== undefined) put('dl_type', hexOf(checkUint('dl_type', m.dl_type, 16)));
  if (m.dl_src !== undefined) put('dl_src', renderMac('dl_src', m.dl_src));
  if (m.dl_dst !== undefined) put('dl_dst', renderMac('dl_dst', m.dl_dst));
  if (m.vlan_tci !== undefined) put('vlan_tci', renderMasked('vlan_tci', m.vlan_tci, 16));
  if (m.dl_vlan !== undefined) put('dl_vlan', num('dl_vlan', m.dl_vlan));
  if (m.nw_src !== undefined) put('nw_src', renderIp('nw_src', m.nw_src, 4));
  if (m.nw_dst !== undefined) put('nw_dst', renderIp('nw_dst', m.nw_dst, 4));
  if (m.nw_proto !== undefined) put('nw_proto', num('nw_proto', m.nw_proto));
  if (m.nw_ttl !== undefined) put('nw_ttl', num('nw_ttl', m.nw_ttl));
  if (m.ip_dscp !== undefined) put('ip_dscp', num('ip_dscp', m.ip_dscp));
  if (m.ipv6_src !== undefined) put('ipv6_src', renderIp('ipv6_src', m.ipv6_src, 6));
  if (m.ipv6_dst !== undefined) put('ipv6_dst', renderIp('ipv6_dst', m.ipv6_dst, 6));
  if (m.arp_op !== undefined) put('arp_op', num('arp_op', m.arp_op));
  if (m.arp_spa !== undefined) put('arp_spa', renderIp('arp_spa', m.arp_spa, 4));
  if (m.arp_tpa !== undefined) put('arp_tpa', renderIp('arp_tpa', m.arp_tpa, 4));
  if (m.arp_sha !== undefined) put('arp_sha', renderMac('arp_sha', m.arp_sha));
  if (m.arp_tha !== undefined) put('arp_tha', renderMac('arp_tha', m.arp_tha));
  if (m.tp_src !== undefined) put('tp_src', renderMasked('tp_src', m.tp_src, 16));
  if (m.tp_dst !== undefined) put('tp_dst', renderMasked('tp_dst', m.tp_dst, 16));
  if (m.icmp_type !== undefined) put('icmp_type', num('icmp_type', m.icmp_type));
  if (m.icmp_code !== undefined) put('icmp_code', num('icmp_code', m.icmp_code));
  if (m.ct_state !== undefined) put('ct_state', renderCtState(m.ct_state));
  if (m.ct_zone !== undefined) put('ct_zone', num('ct_zone', m.ct_zone));
  if (m.ct_mark !== undefined) put('ct_mark', renderMasked('ct_mark', m.ct_mark, 32));
  if (m.ct_label !== undefined) put('ct_label', renderMasked('ct_label', m.ct_label, 128));
  for (let i = 0; i < 16; i++) {
    const k = `reg${i}` as keyof Regs;
    if (m[k] !== undefined) put(k, renderMasked(k, m[k], 32));
  }
  for (let i = 0; i < 8; i++) {
    const k = `xreg${i}` as keyof Xregs;
    if (m[k] !== undefined) put(k, renderMasked(k, m[k], 64));
  }
  if (m.tun_id !== undefined) put('tun_id', renderMasked('tun_id', m.tun_id, 64));
  if (m.tun_src !== undefined) put('tun_src', renderIp('tun_src', m.tun_src, 4));
  if (m.tun_dst !== undefined) put('tun_dst', renderIp('tun_dst', m.tun_dst, 4));
  if (m.metadata !== undefined) put('metadata', renderMasked('metadata', m.metadata, 64));
  if (m.conj_id !== undefined) put('conj_id', num('conj_id', m.conj_id));
  for (const [k, v] of Object.entries(m.extra ?? {})) {
    if (!FIELD_NAME.test(k)) throw new RangeError(`match: bad field name ${k}`);
    put(k, checkToken(`match field ${k}`, typeof v === 'string' ? v : typeof v === 'bigint' ? hexOf(v) : String(v)));
  }
  return out.join(',');
}
