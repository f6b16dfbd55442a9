import ipaddr from 'ipaddr.js';
import { subfield, type Action, type Learn, type LearnValue, type Nat } from '../actions.js';
import { checkToken, renderIp, renderMac } from '../match.js';
import { ByteWriter, checkFits } from './bytes.js';
import { fieldSpec, oxmHeader, OXM_CLASS, UnencodableError, valueBytes, type FieldSpec } from './fields.js';

/**
 * Seine's Action lists as OpenFlow 1.5 action bytes, laid out as OVS encodes the same actions for
 * OpenFlow 1.5 (lib/ofp-actions.c): standard actions where OpenFlow 1.5 has one (output, group,
 * set_field, copy_field, dec_nw_ttl, push/pop_vlan), Nicira extensions for the rest.
 */

const OFPAT = { output: 0, pushVlan: 17, popVlan: 18, group: 22, decNwTtl: 24, setField: 25, copyField: 28 } as const;
const OFPAT_EXPERIMENTER = 0xffff;
const NX_VENDOR_ID = 0x00002320;
const NXAST = { note: 8, resubmitTable: 14, outputReg: 15, learn: 16, outputReg2: 32, conjunction: 34, ct: 35, nat: 36, ctClear: 43 } as const;

// Reserved ports in OpenFlow 1.0 numbering; OpenFlow 1.1+ writes them plus 0xffff0000.
const OFPP = { max: 0xff00, inPort: 0xfff8, table: 0xfff9, normal: 0xfffa, flood: 0xfffb, all: 0xfffc, controller: 0xfffd, local: 0xfffe } as const;
const OFPP11_OFFSET = 0xffff0000;
const RESERVED_PORTS: Readonly<Record<string, number>> = { IN_PORT: OFPP.inPort, LOCAL: OFPP.local, NORMAL: OFPP.normal, FLOOD: OFPP.flood, ALL: OFPP.all, CONTROLLER: OFPP.controller, TABLE: OFPP.table };
/** Reserved ports OVS outputs to (NONE and ANY it refuses). */
const OUTPUT_RESERVED: ReadonlySet<number> = new Set([OFPP.inPort, OFPP.table, OFPP.normal, OFPP.flood, OFPP.all, OFPP.controller, OFPP.local]);
/** "No recirculation" in NXAST_CT, and "no table" in NXAST_RESUBMIT_TABLE. */
const NO_TABLE = 0xff;

const NX_CT_F = { commit: 1, force: 2 } as const;
const NX_NAT_F = { src: 1, dst: 2, persistent: 4, hash: 8, random: 16 } as const;
const NAT_FLAGS: Readonly<Record<string, number>> = { persistent: NX_NAT_F.persistent, hash: NX_NAT_F.hash, random: NX_NAT_F.random };
const NX_NAT_RANGE = { ipv4Min: 1, ipv4Max: 2, ipv6Min: 4, ipv6Max: 8, protoMin: 16, protoMax: 32 } as const;
/** Well-known ports naming the connection helper (ALG). */
const CT_ALG: Readonly<Record<string, number>> = { ftp: 21, tftp: 69 };

/**
 * Code points of NXM headers, for fields whose table entry is their OXM one. OVS names a field by its
 * oldest (NXM) code point where the action predates OXM: output_reg's source and ct's zone source.
 */
const NXM_CODE: Readonly<Record<string, readonly [oxmClass: number, field: number]>> = {
  eth_dst: [0, 1], eth_src: [0, 2], eth_type: [0, 3], ip_src: [0, 7], ip_dst: [0, 8], nw_proto: [0, 6],
  arp_op: [0, 15], arp_spa: [0, 16], arp_tpa: [0, 17], arp_sha: [1, 17], arp_tha: [1, 18],
  ipv6_src: [1, 19], ipv6_dst: [1, 20], tcp_src: [0, 9], tcp_dst: [0, 10], udp_src: [0, 11], udp_dst: [0, 12],
  icmp_type: [0, 13], icmp_code: [0, 14], icmpv6_type: [1, 21], icmpv6_code: [1, 22],
  OXM_OF_TUNNEL_ID: [1, 16], OXM_OF_TCP_FLAGS: [1, 34],
};
/** Fields whose OpenFlow 1.5 code point differs from their table entry's (OVS writes the newest one). */
const OF15_NAME: Readonly<Record<string, string>> = { tun_id: 'OXM_OF_TUNNEL_ID', tcp_flags: 'OXM_OF_TCP_FLAGS' };
/** Fields only a ct action's exec may write. */
const CT_FIELDS: ReadonlySet<string> = new Set(['ct_mark', 'ct_label']);

/** A field as actions write it, with its headers prebuilt. */
interface WireField {
  /** Value layout and code point of set_field and copy_field. */
  spec: FieldSpec;
  header: Buffer;
  maskedHeader: Buffer;
  /** The header naming it in output_reg and ct: its NXM one (its OXM one where it has none). */
  nxm: FieldSpec;
  nxmHeader: Buffer;
  /** Bits a subfield may address. */
  width: number;
  /** Values of up to 32 bits are numbers (fields of up to 4 bytes), wider ones bigints. */
  small: boolean;
  allOnes: number | bigint;
  /** set_field values written as text, parsed. */
  texts: Map<string, TextValue>;
}

/** A value or mask: a number or bigint (as the field's `small` says), or bytes parsed from text. */
type Value = number | bigint | Buffer;

interface TextValue {
  value: Value;
  mask?: Value;
}

interface FieldBits {
  field: WireField;
  ofs: number;
  nbits: number;
}

// Caches bounded by a size at which they are simply emptied: features name a few dozen fields and values.
const CACHE_LIMIT = 4096;
const fields = new Map<string, WireField>();
const refs = new Map<string, FieldBits>();
/** mod_dl_src/dst and set_tunnel_dst arguments, validated as renderActions does, as bytes. */
const macs = new Map<string, Buffer>();
const tunnelDsts = new Map<string, TextValue>();

function remember<V>(cache: Map<string, V>, key: string, v: V): V {
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(key, v);
  return v;
}

const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function wireField(what: string, name: string): WireField {
  const known = fields.get(name);
  if (known) return known;
  if (!FIELD_NAME.test(name)) throw new RangeError(`${what}: bad field name ${name}`);
  // OVS's in_port is the 16-bit NXM field; OXM_OF_IN_PORT (32 bits) is another field to it.
  const named = fieldSpec(name.toLowerCase() === 'in_port' ? 'NXM_OF_IN_PORT' : name);
  const of15 = OF15_NAME[named.name];
  const spec = of15 ? fieldSpec(of15) : named;
  const code = NXM_CODE[spec.name];
  const nxm = code ? { ...spec, oxmClass: code[0], field: code[1] } : spec;
  // vlan_vid's 13th bit is OpenFlow's "VID present" flag, which a subfield does not reach.
  const width = spec.name === 'vlan_vid' ? 12 : spec.bits;
  const small = spec.bytes <= 4;
  const allOnes = small ? 2 ** (spec.bytes * 8) - 1 : (1n << BigInt(spec.bytes * 8)) - 1n;
  const f: WireField = { spec, header: oxmHeader(spec, false), maskedHeader: oxmHeader(spec, true), nxm, nxmHeader: oxmHeader(nxm, false), width, small, allOnes, texts: new Map() };
  return remember(fields, name, f);
}

/** A field or subfield reference (`reg0[0..15]`, `reg1[3]`, `NXM_NX_REG1[]`, `eth_dst`). */
function fieldBits(what: string, ref: string): FieldBits {
  const known = refs.get(ref);
  if (known) return known;
  subfield(what, ref);
  const open = ref.indexOf('[');
  const field = wireField(what, open < 0 ? ref : ref.slice(0, open));
  const range = open < 0 ? '' : ref.slice(open + 1, -1);
  if (!range) return remember(refs, ref, { field, ofs: 0, nbits: field.width });
  const [first, last = first] = range.split('..').map(Number) as [number, number?];
  if (last < first || last >= field.width) throw new RangeError(`${what}: ${ref} is not within the ${field.width}-bit field`);
  return remember(refs, ref, { field, ofs: first, nbits: last - first + 1 });
}

/** Starts a standard action; end() writes its length. */
function start(w: ByteWriter, type: number): number {
  const at = w.length;
  w.u16(type).u16(0);
  return at;
}

/** Starts a Nicira extension action. */
function startNx(w: ByteWriter, subtype: number): number {
  const at = start(w, OFPAT_EXPERIMENTER);
  w.u32(NX_VENDOR_ID).u16(subtype);
  return at;
}

/** Pads the action begun at `at` to a multiple of 8 bytes and writes its length. */
function end(w: ByteWriter, at: number): void {
  w.zeros((8 - ((w.length - at) % 8)) % 8);
  w.setU16(at + 2, w.length - at);
}

/** An unsigned value, big-endian in `bytes` bytes (the caller checked that it fits). */
function uint(w: ByteWriter, v: number | bigint, bytes: number): void {
  if (bytes === 4 && typeof v === 'number') w.u32(v);
  else if (bytes === 2 && typeof v === 'number') w.u16(v);
  else if (bytes === 1 && typeof v === 'number') w.u8(v);
  else if (bytes === 8) w.u64(BigInt(v));
  else {
    const b = BigInt(v);
    for (let i = bytes - 1; i >= 0; i--) w.u8(Number((b >> BigInt(8 * i)) & 0xffn));
  }
}

/** OpenFlow 1.5 action list for an apply-actions instruction or a group bucket; `drop` and [] encode to nothing. */
export function encodeActions(actions: readonly Action[]): Buffer {
  const w = new ByteWriter(64);
  writeActions(w, actions);
  return w.finish();
}

/**
 * Appends the action list to a message being written (the bytes encodeActions returns, without a copy). When it
 * throws, part of the list may have been appended: the caller drops the message.
 */
export function writeActions(w: ByteWriter, actions: readonly Action[]): void {
  for (const a of actions) {
    if (a.type === 'drop') {
      if (actions.length > 1) throw new RangeError('drop cannot be combined with other actions');
      continue;
    }
    encodeOne(w, a, false);
  }
}

function encodeOne(w: ByteWriter, a: Action, inCt: boolean): void {
  if (inCt && a.type !== 'set_field' && a.type !== 'load' && a.type !== 'move') {
    throw new RangeError(`ct exec holds only set_field, load or move of ct_mark and ct_label, not ${a.type}`);
  }
  switch (a.type) {
    case 'output':
      if (typeof a.port === 'object') return outputToField(w, a.port.field);
      if (typeof a.port === 'string') {
        const port = RESERVED_PORTS[a.port];
        if (port === undefined) throw new RangeError(`output: unknown reserved port ${a.port}`);
        return output(w, port);
      }
      return output(w, outputPort(a.port));
    case 'drop':
      throw new RangeError('drop cannot be combined with other actions');
    case 'goto_table':
      throw new RangeError('goto_table is an instruction in OpenFlow 1.5, not an action: the flow encoder writes it');
    case 'resubmit':
      return resubmit(w, a.port, a.table);
    case 'load':
      return load(w, a.value, a.dst, inCt);
    case 'set_field':
      return setField(w, a.field, a.value, a.mask, inCt);
    case 'move':
      return move(w, a.src, a.dst, inCt);
    case 'mod_dl_src':
    case 'mod_dl_dst':
      return setMac(w, a.type, a.mac);
    case 'dec_ttl':
      end(w, start(w, OFPAT.decNwTtl));
      return;
    case 'ct':
      return ct(w, a);
    case 'ct_clear':
      end(w, startNx(w, NXAST.ctClear));
      return;
    case 'conjunction': {
      if (a.clauses < 2 || a.clauses > 64 || a.clause < 1 || a.clause > a.clauses) {
        throw new RangeError(`conjunction: clause ${a.clause}/${a.clauses} invalid (need 1 <= k <= n, 2 <= n <= 64)`);
      }
      const at = startNx(w, NXAST.conjunction);
      w.u8(a.clause - 1);
      w.u8(a.clauses);
      w.u32(smallUint('conjunction id', a.id, 32));
      return end(w, at);
    }
    case 'group': {
      const at = start(w, OFPAT.group);
      w.u32(smallUint('group', a.id, 32));
      return end(w, at);
    }
    case 'set_tunnel_dst':
      return setTunnelDst(w, a.ip);
    case 'set_tunnel_id':
      return putSetField(w, wireField('set_tunnel_id', 'tun_id'), uintArg('tun_id', a.id, 64));
    case 'push_vlan':
      return pushVlan(w, a.ethertype ?? 0x8100, a.vid, a.pcp);
    case 'pop_vlan':
      end(w, start(w, OFPAT.popVlan));
      return;
    case 'note': {
      if (!a.text) throw new RangeError('note: empty');
      const at = startNx(w, NXAST.note);
      w.bytes(Buffer.from(a.text, 'utf8'));
      return end(w, at);
    }
    case 'learn':
      return learn(w, a);
    case 'raw':
      throw new UnencodableError(`raw action ${a.text} has no wire encoding here`);
  }
}

const NX_LEARN_F_DELETE_LEARNED = 2;
const NX_LEARN_SRC_IMMEDIATE = 1 << 13;
const NX_LEARN_DST_LOAD = 1 << 11;
/** OpenFlow's default flow priority, which a learn action without one gives. */
const OFP_DEFAULT_PRIORITY = 0x8000;

/** NXAST_LEARN: the fixed part, then each flow_mod_spec (header, source, destination). */
function learn(w: ByteWriter, a: Learn): void {
  if (!a.specs.length) throw new RangeError('learn: no specs');
  const at = startNx(w, NXAST.learn);
  w.u16(smallUint('learn idle_timeout', a.idleTimeout ?? 0, 16));
  w.u16(smallUint('learn hard_timeout', a.hardTimeout ?? 0, 16));
  w.u16(smallUint('learn priority', a.priority ?? OFP_DEFAULT_PRIORITY, 16));
  w.u64(BigInt(uintArg('learn cookie', a.cookie ?? 0n, 64)));
  w.u16(a.deleteLearned ? NX_LEARN_F_DELETE_LEARNED : 0);
  w.u8(smallUint('learn table', a.table, 8));
  w.zeros(5); // pad, fin_idle_timeout, fin_hard_timeout
  for (const spec of a.specs) {
    const load = 'load' in spec;
    const dst = fieldBits('learn', load ? spec.load : spec.match);
    const from: string | LearnValue = spec.from ?? (load ? spec.load : spec.match);
    const src = typeof from === 'string' ? fieldBits('learn', from) : undefined;
    if (src && src.nbits !== dst.nbits) throw new RangeError(`learn: ${String(from)} and ${load ? spec.load : spec.match} differ in width`);
    w.u16((src ? 0 : NX_LEARN_SRC_IMMEDIATE) | (load ? NX_LEARN_DST_LOAD : 0) | dst.nbits);
    if (src) {
      w.bytes(src.field.nxmHeader);
      w.u16(src.ofs);
    } else {
      // A constant takes whole 16-bit units, right-aligned.
      const value = (from as LearnValue).value;
      checkFits('learn value', value, dst.nbits);
      uint(w, value, 2 * Math.ceil(dst.nbits / 16));
    }
    w.bytes(dst.field.nxmHeader);
    w.u16(dst.ofs);
  }
  end(w, at);
}

function output(w: ByteWriter, port: number): void {
  const at = start(w, OFPAT.output);
  w.u32(port < OFPP.max ? port : port + OFPP11_OFFSET);
  // OVS sends the whole packet to the controller, and asks no length limit of other ports.
  w.u16(port === OFPP.controller ? 0xffff : 0);
  w.zeros(6);
  end(w, at);
}

/** An OpenFlow port number in OpenFlow 1.0 numbering: 0..0xfeff, or a reserved port in either numbering. */
function portNumber(what: string, p: number): number {
  const n = smallUint(what, p, 32);
  if (n <= 0xffff) return n;
  if (n >= OFPP11_OFFSET + OFPP.max) return n - OFPP11_OFFSET;
  throw new RangeError(`${what}: port ${p} is outside 0..0xffff and 0xffffff00..0xffffffff`);
}

function outputPort(p: number): number {
  const n = portNumber('output', p);
  if (n >= OFPP.max && !OUTPUT_RESERVED.has(n)) throw new RangeError(`output: port ${p} is not a port OVS outputs to`);
  return n;
}

function outputToField(w: ByteWriter, ref: string): void {
  const { field, ofs, nbits } = fieldBits('output', ref);
  const ofsNbits = (ofs << 6) | (nbits - 1);
  if (field.nxm.oxmClass === OXM_CLASS.experimenter) {
    const at = startNx(w, NXAST.outputReg2);
    w.u16(ofsNbits);
    w.u16(0xffff);
    w.bytes(field.nxmHeader);
    return end(w, at);
  }
  const at = startNx(w, NXAST.outputReg);
  w.u16(ofsNbits);
  w.bytes(field.nxmHeader);
  w.u16(0xffff);
  end(w, at);
}

function resubmit(w: ByteWriter, port: number | 'IN_PORT' | undefined, table: number | undefined): void {
  const inPort = port === undefined || port === 'IN_PORT' ? OFPP.inPort : portNumber('resubmit port', port);
  const t = table === undefined ? NO_TABLE : smallUint('resubmit table', table, 8);
  if (inPort === OFPP.inPort && t === NO_TABLE) throw new RangeError('resubmit: needs a port or a table');
  const at = startNx(w, NXAST.resubmitTable);
  w.u16(inPort);
  w.u8(t);
  end(w, at);
}

function checkCtField(what: string, f: WireField, inCt: boolean): void {
  if (CT_FIELDS.has(f.spec.name) !== inCt) {
    throw new RangeError(inCt ? `${what}: ct exec may only write ct_mark and ct_label, not ${f.spec.name}` : `${what}: ${f.spec.name} is written only inside ct(commit,exec(...))`);
  }
}

/** `v` checked to be a `bits`-bit unsigned integer: a number when it fits 32 bits (most do), else a bigint. */
function uintArg(what: string, v: number | bigint, bits: number): number | bigint {
  checkFits(what, v, bits);
  return typeof v === 'bigint' && v <= 0xffffffffn ? Number(v) : v;
}

function smallUint(what: string, v: number | bigint, bits: number): number {
  return Number(uintArg(what, v, bits));
}

/** A numeric value in the field's representation; one too wide for a small field stays a bigint (and fails fits()). */
function asField(f: WireField, v: Value): Value {
  if (typeof v === 'number') return f.small ? v : BigInt(v);
  if (typeof v === 'bigint' && f.small && v <= 0xffffffffn) return Number(v);
  return v;
}

function fits(f: WireField, v: Value): boolean {
  if (typeof v === 'number') return v < 2 ** f.spec.bits;
  if (typeof v === 'bigint') return v >> BigInt(f.spec.bits) === 0n;
  return true;
}

function isAllOnes(f: WireField, m: Value): boolean {
  return typeof m === 'object' ? m.every((b) => b === 0xff) : m === f.allOnes;
}

function toBigint(v: Value): bigint {
  return typeof v === 'object' ? BigInt(`0x${v.toString('hex') || '0'}`) : BigInt(v);
}

function hasBitsOutside(v: Value, m: Value): boolean {
  if (typeof v === 'number' && typeof m === 'number') return (v & ~m) >>> 0 !== 0;
  if (typeof v === 'object' && typeof m === 'object') return v.some((b, i) => (b & ~m[i]!) !== 0);
  return (toBigint(v) & ~toBigint(m)) !== 0n;
}

/** set_field of a whole field, or of the bits `mask` selects. */
function putSetField(w: ByteWriter, f: WireField, value: Value, mask?: Value): void {
  const name = f.spec.name;
  const v = asField(f, value);
  if (!fits(f, v)) throw new RangeError(`set_field ${name}: ${value} does not fit in ${f.spec.bits} bits`);
  const m = mask === undefined ? undefined : asField(f, mask);
  if (m !== undefined && typeof m !== 'object' && m > f.allOnes) throw new RangeError(`set_field ${name}: mask ${mask} is too large for the field`);
  const masked = m !== undefined && !isAllOnes(f, m);
  if (masked) {
    if (!f.spec.maskable) throw new RangeError(`set_field ${name}: the field cannot be written in part`);
    if (hasBitsOutside(v, m)) throw new RangeError(`set_field ${name}: the value has bits outside the mask`);
  }
  const at = start(w, OFPAT.setField);
  w.bytes(masked ? f.maskedHeader : f.header);
  writeValue(w, f, v);
  if (masked) writeValue(w, f, m);
  end(w, at);
}

function writeValue(w: ByteWriter, f: WireField, v: Value): void {
  if (typeof v === 'object') w.bytes(v);
  else uint(w, v, f.spec.bytes);
}

const NUMBER_TEXT = /^(0x[0-9a-f]+|\d+)$/i;

/** A value written as text: a number, MAC or address. */
function parseText(what: string, f: WireField, text: string): Value {
  if (NUMBER_TEXT.test(text)) return asField(f, BigInt(text));
  try {
    return valueBytes(f.spec, text);
  } catch (e) {
    throw e instanceof RangeError ? e : new RangeError(`${what}: bad value ${text}`);
  }
}

/** A mask written as text; an address field's may be a prefix length. */
function parseMask(what: string, f: WireField, text: string): Value {
  const isAddress = f.spec.format === 'ipv4' || f.spec.format === 'ipv6';
  if (!isAddress || !/^\d+$/.test(text)) return parseText(what, f, text);
  const bits = Number(text);
  const width = f.spec.bytes * 8;
  if (bits > width) throw new RangeError(`${what}: prefix /${bits} too long`);
  return asField(f, bits ? ((1n << BigInt(bits)) - 1n) << BigInt(width - bits) : 0n);
}

/** `VALUE` or `VALUE/MASK` (`/PREFIX` for addresses), parsed once per field and text. */
function textValue(what: string, f: WireField, text: string): TextValue {
  const known = f.texts.get(text);
  if (known) return known;
  checkToken(what, text);
  const slash = text.indexOf('/');
  const parsed = slash < 0 ? { value: parseText(what, f, text) } : { value: parseText(what, f, text.slice(0, slash)), mask: parseMask(what, f, text.slice(slash + 1)) };
  return remember(f.texts, text, parsed);
}

function setField(w: ByteWriter, name: string, value: string | number | bigint, mask: number | bigint | undefined, inCt: boolean): void {
  const what = `set_field ${name}`;
  const f = wireField(what, name);
  checkCtField(what, f, inCt);
  if (typeof value === 'string') {
    if (mask !== undefined) throw new RangeError(`${what}: a text value cannot take a separate mask`);
    const t = textValue(what, f, value);
    return putSetField(w, f, t.value, t.mask);
  }
  putSetField(w, f, uintArg(what, value, 128), mask === undefined ? undefined : uintArg(`${what} mask`, mask, 128));
}

/** `load:V->field[a..b]` is set_field of V shifted to bit a, masked to those bits. */
function load(w: ByteWriter, value: number | bigint, dst: string, inCt: boolean): void {
  const { field, ofs, nbits } = fieldBits('load', dst);
  checkCtField('load', field, inCt);
  const v = uintArg('load', value, 128);
  if (typeof v === 'number' && ofs + nbits <= 32) {
    if (nbits < 32 && v >= 2 ** nbits) throw new RangeError(`load: ${value} does not fit in ${dst} (${nbits} bits)`);
    return putSetField(w, field, v * 2 ** ofs, (2 ** nbits - 1) * 2 ** ofs);
  }
  const big = BigInt(v);
  if (big >> BigInt(nbits) !== 0n) throw new RangeError(`load: ${value} does not fit in ${dst} (${nbits} bits)`);
  const shift = BigInt(ofs);
  putSetField(w, field, big << shift, ((1n << BigInt(nbits)) - 1n) << shift);
}

function move(w: ByteWriter, srcRef: string, dstRef: string, inCt: boolean): void {
  const src = fieldBits('move', srcRef);
  const dst = fieldBits('move', dstRef);
  checkCtField('move', dst.field, inCt);
  if (src.nbits !== dst.nbits) throw new RangeError(`move: ${srcRef} (${src.nbits} bits) and ${dstRef} (${dst.nbits} bits) differ in width`);
  const at = start(w, OFPAT.copyField);
  w.u16(dst.nbits);
  w.u16(src.ofs);
  w.u16(dst.ofs);
  w.zeros(2);
  w.bytes(src.field.header);
  w.bytes(dst.field.header);
  end(w, at);
}

function setMac(w: ByteWriter, what: 'mod_dl_src' | 'mod_dl_dst', mac: string): void {
  const f = wireField(what, what === 'mod_dl_src' ? 'eth_src' : 'eth_dst');
  let bytes = macs.get(mac);
  if (!bytes) {
    const text = renderMac(what, mac);
    if (text.includes('/')) throw new RangeError(`${what}: takes a MAC, not a MAC/mask`);
    bytes = remember(macs, mac, valueBytes(f.spec, text));
  }
  putSetField(w, f, bytes);
}

function setTunnelDst(w: ByteWriter, ip: string): void {
  const f = wireField('set_tunnel_dst', 'tun_dst');
  const t = tunnelDsts.get(ip) ?? remember(tunnelDsts, ip, textValue('set_tunnel_dst', f, renderIp('tun_dst', ip, 4)));
  putSetField(w, f, t.value, t.mask);
}

function pushVlan(w: ByteWriter, ethertype: number, vid: number | undefined, pcp: number | undefined): void {
  const type = smallUint('push_vlan', ethertype, 16);
  if (type !== 0x8100 && type !== 0x88a8) throw new RangeError(`push_vlan: ethertype 0x${type.toString(16)} is neither 0x8100 nor 0x88a8`);
  const at = start(w, OFPAT.pushVlan);
  w.u16(type);
  end(w, at);
  // vlan_vid in OpenFlow carries the "VID present" bit 0x1000.
  if (vid !== undefined) putSetField(w, wireField('push_vlan', 'vlan_vid'), smallUint('vlan vid', vid, 12) | 0x1000);
  if (pcp !== undefined) putSetField(w, wireField('push_vlan', 'vlan_pcp'), smallUint('vlan pcp', pcp, 3));
}

type CtAction = Extract<Action, { type: 'ct' }>;

function ct(w: ByteWriter, a: CtAction): void {
  if (a.force && !a.commit) throw new RangeError('ct: force needs commit');
  const natArgs = a.nat !== undefined && a.nat !== true && a.nat.type !== undefined;
  if (!a.commit && (natArgs || a.exec?.length)) throw new RangeError('ct: nat with arguments, and exec, need commit');
  const table = a.table === undefined ? NO_TABLE : smallUint('ct table', a.table, 8);
  if (table === NO_TABLE && a.table !== undefined) throw new RangeError('ct: table 255 means no table');
  const alg = a.alg === undefined ? 0 : CT_ALG[a.alg];
  if (alg === undefined) throw new RangeError(`ct: unknown alg ${a.alg}`);

  const at = startNx(w, NXAST.ct);
  w.u16((a.commit ? NX_CT_F.commit : 0) | (a.force ? NX_CT_F.force : 0));
  if (typeof a.zone === 'string') {
    const { field, ofs, nbits } = fieldBits('ct zone', a.zone);
    if (nbits !== 16) throw new RangeError(`ct zone: ${a.zone} is ${nbits} bits, a zone is 16`);
    if (field.nxm.oxmClass === OXM_CLASS.experimenter) throw new UnencodableError(`ct zone: ${a.zone} has no 32-bit NXM header`);
    w.bytes(field.nxmHeader);
    w.u16((ofs << 6) | (nbits - 1));
  } else {
    w.u32(0);
    w.u16(a.zone === undefined ? 0 : smallUint('ct zone', a.zone, 16));
  }
  w.u8(table);
  w.zeros(3);
  w.u16(alg);
  // Nested in the order renderActions writes them: nat, then exec.
  if (a.nat !== undefined) nat(w, a.nat);
  for (const x of a.exec ?? []) encodeOne(w, x, true);
  end(w, at);
}

function natAddress(a: string): Buffer {
  if (ipaddr.IPv4.isValidFourPartDecimal(a)) return Buffer.from(ipaddr.IPv4.parse(a).toByteArray());
  if (ipaddr.IPv6.isValid(a)) return Buffer.from(ipaddr.IPv6.parse(a).toByteArray());
  throw new RangeError(`nat: bad address ${a}`);
}

function nat(w: ByteWriter, n: Nat | true): void {
  const at = startNx(w, NXAST.nat);
  w.zeros(2);
  if (n === true || n.type === undefined) {
    // As renderActions: plain `nat` (flags without src or dst are not rendered either).
    if (n !== true && (n.addr !== undefined || n.port !== undefined)) throw new RangeError('nat: addresses or ports need type src or dst');
    w.u16(0);
    w.u16(0);
    return end(w, at);
  }
  let flags: number = NX_NAT_F[n.type];
  for (const flag of n.flags ?? []) {
    const bit = NAT_FLAGS[flag];
    if (bit === undefined) throw new RangeError(`nat: unknown flag ${flag}`);
    flags |= bit;
  }
  if (flags & NX_NAT_F.hash && flags & NX_NAT_F.random) throw new RangeError('nat: hash and random exclude each other');
  w.u16(flags);
  const presentAt = w.length;
  w.u16(0);
  let present = 0;
  if (n.addr !== undefined) {
    const [first, last] = typeof n.addr === 'string' ? [n.addr] : n.addr;
    const min = natAddress(first!);
    const max = last === undefined ? undefined : natAddress(last);
    // OVS leaves an all-zero address out of the action, which would change its meaning.
    if (min.every((b) => b === 0)) throw new RangeError(`nat: ${first} is not an address to translate to`);
    if (max && (max.length !== min.length || Buffer.compare(max, min) < 0)) throw new RangeError(`nat: ${first}-${last} is not an address range`);
    const v6 = min.length === 16;
    w.bytes(min);
    present |= v6 ? NX_NAT_RANGE.ipv6Min : NX_NAT_RANGE.ipv4Min;
    if (max) {
      w.bytes(max);
      present |= v6 ? NX_NAT_RANGE.ipv6Max : NX_NAT_RANGE.ipv4Max;
    }
  }
  if (n.port !== undefined) {
    if (n.addr === undefined) throw new RangeError('nat: a port range needs an address');
    const [first, last] = typeof n.port === 'number' ? [n.port] : n.port;
    const min = smallUint('nat port', first!, 16);
    const max = last === undefined ? undefined : smallUint('nat port', last, 16);
    // Port 0 is "no port" on the wire.
    if (min === 0 || (max !== undefined && max < min)) throw new RangeError(`nat: ${first}${last === undefined ? '' : `-${last}`} is not a port range`);
    w.u16(min);
    present |= NX_NAT_RANGE.protoMin;
    if (max !== undefined) {
      w.u16(max);
      present |= NX_NAT_RANGE.protoMax;
    }
  }
  w.setU16(presentAt, present);
  end(w, at);
}
