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
/**
 * An IPv4 address or CIDR in plain dotted decimal (no leading zeros, prefix 0..32): the common case, which
 * ipaddr.js accepts too; anything else is left to ipaddr.js (flows are rendered by the ten thousand).
 */
const CANONICAL_IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\/(?:3[0-2]|[12]?\d))?$/;

/** `v` checked to fit in `bits` unsigned bits, as given: a number is checked without making a bigint of it. */
function fitUint(field: string, v: number | bigint, bits: number): number | bigint {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new RangeError(`${field}: ${v} is not an integer`);
    if (v < 0 || v >= 2 ** bits) throw new RangeError(`${field}: ${v} does not fit in ${bits} bits`);
    return v;
  }
  if (v < 0n || v >= 1n << BigInt(bits)) throw new RangeError(`${field}: ${v} does not fit in ${bits} bits`);
  return v;
}

export function checkUint(field: string, v: number | bigint, bits: number): bigint {
  return BigInt(fitUint(field, v, bits));
}

function hexOf(v: number | bigint): string {
  return `0x${v.toString(16)}`;
}

/** `0xVALUE` or `0xVALUE/0xMASK`, range-checked against the field width. */
export function renderMasked(field: string, v: Masked, bits: number): string {
  if (typeof v === 'object') return `${hexOf(fitUint(field, v.value, bits))}/${hexOf(fitUint(field, v.mask, bits))}`;
  return hexOf(fitUint(field, v, bits));
}

export function renderMac(field: string, v: string): string {
  const [mac, mask, ...rest] = v.split('/');
  if (rest.length || !MAC_RE.test(mac!) || (mask !== undefined && !MAC_RE.test(mask))) throw new RangeError(`${field}: bad MAC ${v}`);
  return mask === undefined ? mac!.toLowerCase() : `${mac!.toLowerCase()}/${mask.toLowerCase()}`;
}

/** An address or CIDR of the given family, as written (OVS accepts both forms). */
export function renderIp(field: string, v: string, family: 4 | 6): string {
  if (family === 4 && CANONICAL_IPV4.test(v)) return v;
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
  return String(fitUint(field, v, WIDTH[field]!));
}

export function checkToken(what: string, v: string): string {
  if (!v || UNSAFE.test(v)) throw new RangeError(`${what}: "${v}" is empty or contains whitespace, commas, '#' or control characters`);
  return v;
}

type FieldOf<T> = { [K in keyof Match]-?: NonNullable<Match[K]> extends T ? K : never }[keyof Match];
/** One field's `name=value` text (only called when the field is present). */
type FieldText = (m: Match) => string;

const numeric = (k: FieldOf<number>): [keyof Match, FieldText] => [k, (m) => `${k}=${num(k, m[k]!)}`];
const masked = (k: FieldOf<Masked>, bits: number): [keyof Match, FieldText] => [k, (m) => `${k}=${renderMasked(k, m[k]!, bits)}`];
const address = (k: FieldOf<string>, family: 4 | 6): [keyof Match, FieldText] => [k, (m) => `${k}=${renderIp(k, m[k]!, family)}`];
const mac = (k: FieldOf<string>): [keyof Match, FieldText] => [k, (m) => `${k}=${renderMac(k, m[k]!)}`];

function renderExtra(extra: NonNullable<Match['extra']>): string {
  const out: string[] = [];
  for (const [k, v] of Object.entries(extra)) {
    if (!FIELD_NAME.test(k)) throw new RangeError(`match: bad field name ${k}`);
    out.push(`${k}=${checkToken(`match field ${k}`, typeof v === 'string' ? v : typeof v === 'bigint' ? hexOf(v) : String(v))}`);
  }
  return out.join(',');
}

/** Every field renderMatch knows, in the order it writes them; `extra` last. */
const FIELDS: ReadonlyArray<[keyof Match, FieldText]> = [
  ['in_port', (m) => `in_port=${m.in_port === 'LOCAL' ? 'LOCAL' : num('in_port', m.in_port!)}`],
  [
    'protocol',
    (m) => {
      if (!PROTOCOLS.has(m.protocol!)) throw new RangeError(`match: unknown protocol ${m.protocol}`);
      return m.protocol!;
    },
  ],
  ['dl_type', (m) => `dl_type=${hexOf(fitUint('dl_type', m.dl_type!, 16))}`],
  mac('dl_src'),
  mac('dl_dst'),
  masked('vlan_tci', 16),
  numeric('dl_vlan'),
  address('nw_src', 4),
  address('nw_dst', 4),
  numeric('nw_proto'),
  numeric('nw_ttl'),
  numeric('ip_dscp'),
  address('ipv6_src', 6),
  address('ipv6_dst', 6),
  numeric('arp_op'),
  address('arp_spa', 4),
  address('arp_tpa', 4),
  mac('arp_sha'),
  mac('arp_tha'),
  masked('tp_src', 16),
  masked('tp_dst', 16),
  numeric('icmp_type'),
  numeric('icmp_code'),
  ['ct_state', (m) => `ct_state=${renderCtState(m.ct_state!)}`],
  numeric('ct_zone'),
  masked('ct_mark', 32),
  masked('ct_label', 128),
  ...Array.from({ length: 16 }, (_, i) => masked(`reg${i as RegIndex}`, 32)),
  ...Array.from({ length: 8 }, (_, i) => masked(`xreg${i as XregIndex}`, 64)),
  masked('tun_id', 64),
  address('tun_src', 4),
  address('tun_dst', 4),
  masked('metadata', 64),
  numeric('conj_id'),
  ['extra', (m) => renderExtra(m.extra!)],
];
const FIELD_POSITION = new Map<string, number>(FIELDS.map(([k], i) => [k, i]));

/** Renders a match as comma-separated ovs-ofctl fields (empty string for match-all). */
export function renderMatch(m: Match = {}): string {
  if (m.protocol !== undefined && m.dl_type !== undefined) throw new RangeError('match: give protocol or dl_type, not both');
  // Only the fields the match has are visited (a few of the ~60), then written in the fixed order.
  const present: number[] = [];
  for (const k in m) {
    const i = FIELD_POSITION.get(k);
    if (i !== undefined && m[k as keyof Match] !== undefined) present.push(i);
  }
  if (present.length > 1) present.sort((a, b) => a - b);
  let out = '';
  for (const i of present) {
    const text = FIELDS[i]![1](m);
    if (text) out = out ? `${out},${text}` : text;
  }
  return out;
}
