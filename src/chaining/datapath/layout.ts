// Where chained packets keep their state: the chain tag (a register, and the tunnel key between nodes),
// conntrack zones and labels, the chain stage's tables and the cookies of its flows.
import { CookieOwner, CookieScheme, type CookieSelector } from '../../ovs/openflow/index.js';
import { CT_ZONE, SEAMS } from '../../primary/pipeline/tables.js';

/**
 * The chain tag, 24 bits so that it fits a VXLAN or Geneve VNI and crosses nodes in the tunnel key as it is:
 *
 *   bit  23      chained (the tunnel key of every other packet is 0)
 *   bits 15..22  chain index (1..255, cluster-wide, from the chain's status)
 *   bits 11..14  hop (0-based)
 *   bit  10      direction: 0 forward (client -> server), 1 reverse
 *   bits  5..9   target replica id (1..31); 0 in a tunnel key = the packet has left the chain
 *   bits  0..4   the replica the packet came from (0 = the classifier side)
 *
 * It lives in reg8[0..23]; reg8[24] is the node-local "leave the chain here" flag.
 */
export interface TagField {
  start: number;
  end: number;
}

export const TAG_REG = 8;
export const Tag = {
  from: { start: 0, end: 4 },
  target: { start: 5, end: 9 },
  direction: { start: 10, end: 10 },
  hop: { start: 11, end: 14 },
  chain: { start: 15, end: 22 },
  chained: { start: 23, end: 23 },
  /** reg8 only, never in a tunnel key. */
  exit: { start: 24, end: 24 },
  /** reg8 only, secondary bridges: a pod's packet the chain stage already looked at (not classified, passed on). */
  passed: { start: 25, end: 25 },
} as const satisfies Record<string, TagField>;

export const TAG_BITS = 24;
export const MAX_CHAIN_INDEX = 255;
export const MAX_HOPS = 16;
export const MAX_REPLICA_ID = 31;

/**
 * reg9: selection scratch.
 *   bits 0..4   multipath result (the index into a hop's replica list)
 *   bit  5      multipath done
 *   bit  7      the choice about to be made may be recorded (forward, not a skipped hop)
 *   bit  8      a choice was made and must be recorded in conntrack (zone in bits 16..31)
 *   bit  9      the packet arrived from a tunnel for a local replica (never sent on again)
 *   bits 16..31 the conntrack zone that records this hop's choice
 */
export const SCRATCH_REG = 9;
export const Scratch = {
  index: { start: 0, end: 4 },
  selected: { start: 5, end: 5 },
  mayRecord: { start: 7, end: 7 },
  record: { start: 8, end: 8 },
  arrived: { start: 9, end: 9 },
  recordZone: { start: 16, end: 31 },
} as const satisfies Record<string, TagField>;

/**
 * reg11, secondary bridges only: the conntrack zone of the network a pod's packet was taken in for (several VLAN
 * networks share one trunk bridge; a chain classifies only its own network's packets).
 */
export const NETWORK_REG = 11;

/** reg10: scratch for the ARP responder of function ports. */
export const ARP_SCRATCH = 'reg10';

export function fieldMask(f: TagField): number {
  return (2 ** (f.end - f.start + 1) - 1) * 2 ** f.start;
}

export function fieldValue(f: TagField, v: number): number {
  const width = f.end - f.start + 1;
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** width) throw new RangeError(`${v} does not fit in bits ${f.start}..${f.end}`);
  return v * 2 ** f.start;
}

export function regRef(reg: number, f: TagField): string {
  return f.start === f.end ? `reg${reg}[${f.start}]` : `reg${reg}[${f.start}..${f.end}]`;
}

export interface TagValues {
  chain?: number;
  hop?: number;
  direction?: 0 | 1;
  target?: number;
  from?: number;
  exit?: boolean;
}

/** The tag as value and mask over the given fields (chained is always set). */
export function tag(v: TagValues): { value: number; mask: number } {
  let value = fieldValue(Tag.chained, 1);
  let mask = fieldMask(Tag.chained);
  const put = (f: TagField, x: number | undefined): void => {
    if (x === undefined) return;
    value += fieldValue(f, x);
    mask += fieldMask(f);
  };
  put(Tag.chain, v.chain);
  put(Tag.hop, v.hop);
  put(Tag.direction, v.direction);
  put(Tag.target, v.target);
  put(Tag.from, v.from);
  if (v.exit !== undefined) put(Tag.exit, v.exit ? 1 : 0);
  return { value: value >>> 0, mask: mask >>> 0 };
}

/** Decodes a 24-bit tag (e.g. a tunnel key seen in a capture). */
export function decodeTag(t: number): Required<Omit<TagValues, 'exit'>> & { chained: boolean } {
  const get = (f: TagField): number => Math.floor(t / 2 ** f.start) % 2 ** (f.end - f.start + 1);
  return { chained: get(Tag.chained) === 1, chain: get(Tag.chain), hop: get(Tag.hop), direction: get(Tag.direction) as 0 | 1, target: get(Tag.target), from: get(Tag.from) };
}

/**
 * Conntrack. In the primary zone the chain keeps two records in ct_label of a chained connection:
 *   bits  0..23  entry record, on the node that classified it: the tag with the hop-0 replica chosen
 *   bits 32..55  exit record, where it left the chain (and on the destination's node): the tag with the
 *                last replica in `from`; replies from the destination are steered back by it
 * Each hop has a zone of its own on the nodes of its replicas; the connection's entry there records, in
 * ct_label, the replica it came from (bits 0..4, for replies), the replica chosen for the next hop
 * (bits 5..9, so later packets take the same one) and that an entry exists (bit 24).
 */
export const PRIMARY_ZONE = CT_ZONE;
export const EXIT_LABEL_SHIFT = 32;
export const LABEL_VALID_BIT = 23;
export const HOP_ENTRY_BIT = 24;

const HOP_ZONE_BASE = 0x1000;

/** The conntrack zone of one hop of one chain: 0x1000 + chain * 16 + hop (4096..8191). */
export function hopZone(chain: number, hop: number): number {
  if (chain < 1 || chain > MAX_CHAIN_INDEX || hop < 0 || hop >= MAX_HOPS) throw new RangeError(`no zone for chain ${chain} hop ${hop}`);
  return HOP_ZONE_BASE + chain * MAX_HOPS + hop;
}

/**
 * The conntrack zone of a chain's secondary network on a node: 0x2000 + VLAN for VLAN networks (8193..12286),
 * 0x3000 + the VNI's low 12 bits for overlay networks (12288..16383). Two overlay networks with chains on one node
 * whose VNIs share those bits would meet in one zone: the agent refuses the second (a collision, not a guess).
 */
export function segmentZone(segment: { networkType: 'vlan'; vlan: number } | { networkType: 'overlay'; vni: number }): number {
  if (segment.networkType === 'vlan') {
    if (!Number.isInteger(segment.vlan) || segment.vlan < 1 || segment.vlan > 4094) throw new RangeError(`VLAN ${segment.vlan} outside 1..4094`);
    return 0x2000 + segment.vlan;
  }
  if (!Number.isInteger(segment.vni) || segment.vni < 1 || segment.vni > 0xffffff) throw new RangeError(`VNI ${segment.vni} outside 1..16777215`);
  return 0x3000 + (segment.vni & 0xfff);
}

export function labelRef(start: number, end: number): string {
  return `NXM_NX_CT_LABEL[${start}..${end}]`;
}

/** The chain stage's tables (inside the primary pipeline's service-chain seam, 65..69). */
export const ChainTable = {
  /** Entered from egress policy: classification of new connections, entry/exit records of chained ones. */
  Classify: SEAMS.serviceChain.first,
  /** Picks a replica of the hop in reg8 (multipath over the usable replicas), or applies the failure policy. */
  Select: SEAMS.serviceChain.first + 1,
  /** Sends the packet to its target replica: into a local port, or through the tunnel to the replica's node. */
  Target: SEAMS.serviceChain.first + 2,
  /** Into a local replica's port (forward: ingress, reverse: egress), recording the hop in its zone. */
  Deliver: SEAMS.serviceChain.first + 3,
  /** Out of a local replica's port, after conntrack in the hop's zone: on to the next hop, or out of the chain. */
  Return: SEAMS.serviceChain.first + 4,
} as const;

export const EXIT_TABLE = SEAMS.serviceChain.exit;

/**
 * Secondary bridges have no routing pipeline after the chain stage: chained packets that leave the chain go to
 * this table, which knows where each pod address of the network is (a local port, or another node's tunnel).
 */
export const SEGMENT_EXIT_TABLE = 70;

/**
 * Flow cookies (owner `chaining`): object = chain index << 16 | kind << 12 | hop << 6 | direction << 5 |
 * replica. Chain 0 holds the node-wide flows. Kinds: structure, entry counter, deliver counter. A chain's
 * flows are synced as one scope; counters are read back by cookie.
 */
export const CookieKind = {
  structure: 0,
  entry: 1,
  deliver: 2,
  /** A forwarding probe's return flow (packet-in to the agent). */
  probe: 3,
} as const;

export function chainObject(chain: number, kind = 0, hop = 0, direction = 0, replica = 0): bigint {
  return (BigInt(chain) << 16n) | (BigInt(kind) << 12n) | (BigInt(hop) << 6n) | (BigInt(direction) << 5n) | BigInt(replica);
}

export function decodeChainObject(object: bigint): { chain: number; kind: number; hop: number; direction: 0 | 1; replica: number } {
  const n = Number(object);
  return { chain: (n >>> 16) & 0xff, kind: (n >>> 12) & 0xf, hop: (n >>> 6) & 0x3f, direction: ((n >>> 5) & 1) as 0 | 1, replica: n & 0x1f };
}

export class ChainCookies {
  readonly scheme: CookieScheme;
  constructor(readonly round: number) {
    this.scheme = new CookieScheme(CookieOwner.chaining, round);
  }
  cookie(chain: number, kind = 0, hop = 0, direction = 0, replica = 0): bigint {
    return this.scheme.cookie(chainObject(chain, kind, hop, direction, replica));
  }
}

/** Every flow of one chain (any round, any kind). */
export function chainScope(chain: number): CookieSelector {
  const owner = new CookieScheme(CookieOwner.chaining, 0).all;
  return { value: owner.value | (BigInt(chain) << 16n), mask: owner.mask | (0xffn << 16n) | (0xffffn << 24n) };
}

/** Every flow of the chain stage. */
export function chainingScope(): CookieSelector {
  return new CookieScheme(CookieOwner.chaining, 0).all;
}
