import ipaddr from 'ipaddr.js';
import type { Action } from '../actions.js';
import { DEFAULT_PRIORITY, type Change, type Flow } from '../flow.js';
import type { Group } from '../group.js';
import type { Match } from '../match.js';
import { checkUint } from '../match.js';
import { encodeActions } from './actions.js';
import { UnencodableError } from './fields.js';
import { ByteWriter, checkFits } from './bytes.js';
import { writeMatch } from './match.js';

export { errorName } from './errors.js';

function fits<T extends number | bigint>(field: string, v: T, bits: number): T {
  checkFits(field, v, bits);
  return v;
}

/** OpenFlow 1.5 (wire version 0x06) message types Seine sends or reads. */
export const OFP_VERSION = 0x06;
export const MsgType = {
  hello: 0,
  error: 1,
  echoRequest: 2,
  echoReply: 3,
  featuresRequest: 5,
  setConfig: 9,
  packetIn: 10,
  packetOut: 13,
  flowMod: 14,
  groupMod: 15,
  multipartRequest: 18,
  multipartReply: 19,
  barrierRequest: 20,
  barrierReply: 21,
  bundleControl: 33,
  bundleAdd: 34,
} as const;

export const HEADER_LEN = 8;
/** An OpenFlow message is at most 64 KiB (its length field is 16 bits). */
export const MAX_MESSAGE = 0xffff;

const NO_BUFFER = 0xffffffff;
const ANY = 0xffffffff;
const FlowCommand = { add: 0, modify: 1, modify_strict: 2, delete: 3, delete_strict: 4 } as const;
const GroupCommand = { add: 0, modify: 1, delete: 2, add_or_mod: 0x8000 } as const;
const GroupType = { all: 0, select: 1, indirect: 2, ff: 3 } as const;
export const BundleCtrl = { openRequest: 0, openReply: 1, closeRequest: 2, closeReply: 3, commitRequest: 4, commitReply: 5, discardRequest: 6, discardReply: 7 } as const;
const BUNDLE_ATOMIC = 1;
const BUNDLE_ORDERED = 2;

export function header(type: number, length: number, xid: number): Buffer {
  if (length > MAX_MESSAGE) throw new RangeError(`OpenFlow message of ${length} bytes exceeds the 64 KiB limit`);
  const b = Buffer.alloc(HEADER_LEN);
  b.writeUInt8(OFP_VERSION, 0);
  b.writeUInt8(type, 1);
  b.writeUInt16BE(length, 2);
  b.writeUInt32BE(xid >>> 0, 4);
  return b;
}

/** A whole message: header + body, with its length filled in. */
export function message(type: number, xid: number, body: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([header(type, HEADER_LEN + body.length, xid), body]);
}

/** Instructions: apply-actions (unless empty), then goto-table when the list ends with one. */
function writeInstructions(w: ByteWriter, actions: readonly Action[]): void {
  const last = actions[actions.length - 1];
  const gotoTable = last?.type === 'goto_table' ? last.table : undefined;
  if (actions.length > 1 && actions.some((a) => a.type === 'drop')) throw new RangeError('drop cannot be combined with other actions');
  const acts = encodeActions(gotoTable === undefined ? actions : actions.slice(0, -1));
  if (acts.length) w.u16(4).u16(8 + acts.length).zeros(4).bytes(acts); // OFPIT_APPLY_ACTIONS
  if (gotoTable !== undefined) w.u16(1).u16(8).u8(Number(checkUint('goto_table', gotoTable, 8))).zeros(3); // OFPIT_GOTO_TABLE
}

interface FlowModFields {
  command: keyof typeof FlowCommand;
  table?: number;
  priority?: number;
  cookie?: bigint;
  cookieMask?: bigint;
  match?: Match;
  actions?: readonly Action[];
  idleTimeout?: number;
  hardTimeout?: number;
}

function tableId(t: number | undefined, allowAll: boolean): number {
  if (t === undefined) return allowAll ? 0xff : 0;
  const n = Number(checkUint('table', t, 8));
  if (n === 255) throw new RangeError('table 255 is not a flow table');
  return n;
}

/** A whole `ofp_flow_mod` message, written in one pass. */
function flowMod(xid: number, f: FlowModFields): Buffer {
  const w = new ByteWriter(256);
  const del = f.command === 'delete' || f.command === 'delete_strict';
  w.u8(OFP_VERSION).u8(MsgType.flowMod).u16(0).u32(xid);
  w.u64(fits('cookie', f.cookie ?? 0n, 64));
  w.u64(fits('cookie mask', f.cookieMask ?? 0n, 64));
  w.u8(tableId(f.table, f.command === 'delete' || f.command === 'modify'));
  w.u8(FlowCommand[f.command]);
  w.u16(fits('idle_timeout', f.idleTimeout ?? 0, 16));
  w.u16(fits('hard_timeout', f.hardTimeout ?? 0, 16));
  w.u16(fits('priority', f.priority ?? DEFAULT_PRIORITY, 16));
  w.u32(NO_BUFFER);
  w.u32(ANY); // out_port: deletes are not restricted by output port
  w.u32(ANY); // out_group
  w.u16(0).u16(0); // flags, importance
  writeMatch(w, f.match);
  if (!del) writeInstructions(w, f.actions ?? []);
  if (w.length > MAX_MESSAGE) throw new RangeError(`OpenFlow message of ${w.length} bytes exceeds the 64 KiB limit`);
  w.setU16(2, w.length);
  return w.finish();
}

function flowFields(command: 'add' | 'modify_strict', flow: Flow): FlowModFields {
  return { command, table: flow.table, priority: flow.priority, cookie: flow.cookie, match: flow.match, actions: flow.actions, idleTimeout: flow.idleTimeout, hardTimeout: flow.hardTimeout };
}

function bucket(b: Group['buckets'][number], position: number): Buffer {
  const acts = encodeActions(b.actions);
  const props: Buffer[] = [];
  const prop = (type: number, value: number, bits: 16 | 32): void => {
    const p = Buffer.alloc(8);
    p.writeUInt16BE(type, 0);
    p.writeUInt16BE(8, 2);
    if (bits === 16) p.writeUInt16BE(value, 4);
    else p.writeUInt32BE(value >>> 0, 4);
    props.push(p);
  };
  if (b.weight !== undefined) prop(0, Number(checkUint('weight', b.weight, 16)), 16); // OFPGBPT15_WEIGHT
  if (b.watchPort !== undefined) prop(1, Number(checkUint('watch_port', b.watchPort, 32)), 32);
  if (b.watchGroup !== undefined) prop(2, Number(checkUint('watch_group', b.watchGroup, 32)), 32);
  const head = Buffer.alloc(8);
  const propLen = props.reduce((n, p) => n + p.length, 0);
  head.writeUInt16BE(8 + acts.length + propLen, 0);
  head.writeUInt16BE(acts.length, 2);
  head.writeUInt32BE(Number(checkUint('bucket_id', b.id ?? position, 32)), 4);
  return Buffer.concat([head, acts, ...props]);
}

/** Room for buckets in one group mod: 64 KiB less its headers and the bundle add that carries it. */
const BUCKET_ROOM = MAX_MESSAGE - HEADER_LEN - 16 - 16;
const BUCKET_LAST = 0xfffffffd; // OFPG15_BUCKET_LAST
const BUCKET_ALL = 0xffffffff; // OFPG15_BUCKET_ALL
const INSERT_BUCKET = 3; // OFPGC15_INSERT_BUCKET

function groupMod(command: number, type: number, id: number, buckets: readonly Buffer[], commandBucket: number, properties: readonly Buffer[] = []): Buffer {
  const body = Buffer.concat(buckets);
  const fixed = Buffer.alloc(16);
  fixed.writeUInt16BE(command, 0);
  fixed.writeUInt8(type, 2);
  fixed.writeUInt32BE(Number(checkUint('group_id', id, 32)), 4);
  fixed.writeUInt16BE(body.length, 8);
  fixed.writeUInt32BE(commandBucket, 12);
  return message(MsgType.groupMod, 0, Buffer.concat([fixed, body, ...properties]));
}

const OFPGPT15_EXPERIMENTER = 0xffff;
const NTR_VENDOR_ID = 0x0000154d;
const NTRT_SELECTION_METHOD = 1;
const SELECTION_METHOD_LEN = 16;

/** The Netronome selection method property OVS reads (without hashed fields: those stay with ovs-ofctl). */
function selectionMethodProperty(g: Group): Buffer[] {
  if (!g.selectionMethod && g.selectionMethodParam === undefined) return [];
  if (g.fields?.length) throw new UnencodableError(`group ${g.id}: hashed fields have no wire encoding here`);
  const p = Buffer.alloc(40);
  p.writeUInt16BE(OFPGPT15_EXPERIMENTER, 0);
  p.writeUInt16BE(40, 2);
  p.writeUInt32BE(NTR_VENDOR_ID, 4);
  p.writeUInt32BE(NTRT_SELECTION_METHOD, 8);
  const name = g.selectionMethod ?? '';
  if (Buffer.byteLength(name) >= SELECTION_METHOD_LEN) throw new RangeError(`group ${g.id}: selection method ${name} too long`);
  p.write(name, 16, 'ascii');
  p.writeBigUInt64BE(BigInt(checkUint('selection_method_param', g.selectionMethodParam ?? 0, 64)), 32);
  return [p];
}

/**
 * A group mod, split when its buckets do not fit in one message (a Service with thousands of endpoints): the
 * first message carries what fits, insert-bucket messages append the rest. Sent in one bundle, they apply at once.
 */
function groupMods(command: keyof typeof GroupCommand, g: Group | { id: number }): Buffer[] {
  const full = 'type' in g ? g : undefined;
  if (!full) return [groupMod(GroupCommand[command], 0, g.id, [], BUCKET_ALL)];
  if (full.fields?.length) throw new UnencodableError(`group ${full.id}: hashed fields have no wire encoding here`);
  if ((full.type === 'indirect' && full.buckets.length !== 1) || (full.type === 'ff' && !full.buckets.length)) {
    throw new RangeError(`group ${full.id}: ${full.type} group with ${full.buckets.length} buckets`);
  }
  // The first message also carries the group's properties (its selection method).
  const props = selectionMethodProperty(full);
  const chunks: Buffer[][] = [[]];
  let room = BUCKET_ROOM - props.reduce((n, p) => n + p.length, 0);
  full.buckets.forEach((b, i) => {
    const enc = bucket(b, i);
    if (enc.length > BUCKET_ROOM - 64) throw new RangeError(`group ${full.id}: bucket ${i} alone exceeds an OpenFlow message`);
    if (enc.length > room) {
      chunks.push([]);
      room = BUCKET_ROOM;
    }
    chunks[chunks.length - 1]!.push(enc);
    room -= enc.length;
  });
  const type = GroupType[full.type];
  return chunks.map((c, i) => (i === 0 ? groupMod(GroupCommand[command], type, full.id, c, BUCKET_ALL, props) : groupMod(INSERT_BUCKET, type, full.id, c, BUCKET_LAST)));
}

/**
 * One Change as OpenFlow 1.5 messages (xid 0, to be set when sent): one, or several for a group too large for
 * one message. Throws UnencodableError for what only the ovs-ofctl text form can express (pre-rendered lines,
 * raw actions, `extra` match fields, group selection methods).
 */
export function encodeChangeMessages(c: Change): Buffer[] {
  if (c.kind === 'group') return c.op === 'delete' ? groupMods('delete', { id: c.id }) : groupMods(c.op, c.group);
  return [encodeChange(c, 0)];
}

/**
 * One Change as an OpenFlow 1.5 message with this xid. Throws UnencodableError for what only the
 * ovs-ofctl text form can express (pre-rendered lines, raw actions, `extra` match fields).
 */
export function encodeChange(c: Change, xid: number): Buffer {
  if (c.kind === 'group') {
    const msgs = encodeChangeMessages(c);
    if (msgs.length > 1) throw new RangeError(`group ${c.op === 'delete' ? c.id : c.group.id} needs ${msgs.length} messages; use encodeChangeMessages`);
    msgs[0]!.writeUInt32BE(xid >>> 0, 4);
    return msgs[0]!;
  }
  if ('line' in c) throw new UnencodableError('a pre-rendered flow line has no wire encoding');
  switch (c.op) {
    case 'add':
    case 'modify_strict':
      return flowMod(xid, flowFields(c.op, c.flow));
    case 'delete_strict': {
      const ck = c.flow.cookie;
      const sel = ck === undefined ? { value: 0n, mask: 0n } : typeof ck === 'bigint' ? { value: ck, mask: (1n << 64n) - 1n } : ck;
      return flowMod(xid, { command: 'delete_strict', table: c.flow.table ?? 0, priority: c.flow.priority, cookie: sel.value, cookieMask: sel.mask, match: c.flow.match });
    }
    case 'modify':
    case 'delete': {
      const f = c.filter;
      if (f.table === undefined && !f.cookie && !(f.match && Object.keys(f.match).length)) {
        throw new RangeError('a flow filter needs a table, a cookie or a match (refusing to select every flow)');
      }
      const actions = c.op === 'modify' ? c.actions : undefined;
      return flowMod(xid, { command: c.op, table: f.table, cookie: f.cookie?.value, cookieMask: f.cookie?.mask, match: f.match, actions });
    }
  }
}

export function bundleControl(xid: number, bundleId: number, type: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(bundleId >>> 0, 0);
  b.writeUInt16BE(type, 4);
  b.writeUInt16BE(BUNDLE_ATOMIC | BUNDLE_ORDERED, 6);
  return message(MsgType.bundleControl, xid, b);
}

/** Wraps a message into a bundle; OVS wants the inner xid equal to the outer one. */
export function bundleAdd(bundleId: number, inner: Buffer): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(bundleId >>> 0, 0);
  b.writeUInt16BE(BUNDLE_ATOMIC | BUNDLE_ORDERED, 6);
  return message(MsgType.bundleAdd, inner.readUInt32BE(4), Buffer.concat([b, inner]));
}

/** HELLO offering OpenFlow 1.5 only (a version bitmap element). */
export function hello(xid: number): Buffer {
  const el = Buffer.alloc(8);
  el.writeUInt16BE(1, 0); // OFPHET_VERSIONBITMAP
  el.writeUInt16BE(8, 2);
  el.writeUInt32BE(1 << OFP_VERSION, 4);
  return message(MsgType.hello, xid, el);
}

export interface OfpError {
  type: number;
  code: number;
  /** The start of the message that failed (its header says which xid). */
  data: Buffer;
}

export function decodeError(body: Buffer): OfpError {
  return { type: body.readUInt16BE(0), code: body.readUInt16BE(2), data: body.subarray(4) };
}

const OFPMP_AGGREGATE = 2;

/** What a multipart flow request selects: a table (all when absent), a cookie selector, a superset match. */
export interface FlowSelection {
  table?: number;
  cookie?: { value: bigint; mask: bigint };
  match?: Match;
}

/** An aggregate flow statistics request (OpenFlow 1.5 multipart). */
export function aggregateRequest(xid: number, sel: FlowSelection): Buffer {
  const w = new ByteWriter(96);
  w.u8(OFP_VERSION).u8(MsgType.multipartRequest).u16(0).u32(xid);
  w.u16(OFPMP_AGGREGATE).u16(0).zeros(4);
  w.u8(tableId(sel.table, true)).zeros(3);
  w.u32(ANY).u32(ANY).zeros(4);
  w.u64(fits('cookie', sel.cookie?.value ?? 0n, 64)).u64(fits('cookie mask', sel.cookie?.mask ?? 0n, 64));
  writeMatch(w, sel.match);
  w.setU16(2, w.length);
  return w.finish();
}

export interface AggregateStats {
  flows: number;
  packets: bigint;
  bytes: bigint;
}

/**
 * The body of an aggregate reply: OpenFlow 1.5 carries the figures as OXS fields (class 0x8002: flow_count 3,
 * packet_count 4, byte_count 5) in an `ofp_stats` after the multipart header.
 */
export function decodeAggregateReply(body: Buffer): AggregateStats {
  if (body.readUInt16BE(0) !== OFPMP_AGGREGATE) throw new Error(`multipart reply of type ${body.readUInt16BE(0)}, not aggregate`);
  const stats = body.subarray(8);
  const out: AggregateStats = { flows: 0, packets: 0n, bytes: 0n };
  for (const f of readTlvFields(stats, 4, stats.readUInt16BE(2))) {
    if (f.class !== 0x8002) continue;
    if (f.field === 3) out.flows = f.value.readUInt32BE(0);
    else if (f.field === 4) out.packets = f.value.readBigUInt64BE(0);
    else if (f.field === 5) out.bytes = f.value.readBigUInt64BE(0);
  }
  return out;
}

/** The OXM (or OXS: same header layout) fields in buf[from, to): class, field, value (experimenter id skipped). */
function readTlvFields(buf: Buffer, from: number, to: number): OxmField[] {
  const fields: OxmField[] = [];
  for (let off = from; off + 4 <= to; ) {
    const h = buf.readUInt32BE(off);
    const cls = h >>> 16;
    const end = off + 4 + (h & 0xff);
    fields.push({ class: cls, field: (h >>> 9) & 0x7f, value: buf.subarray(off + 4 + (cls === 0xffff ? 4 : 0), end) });
    off = end;
  }
  return fields;
}

/** OFPP_CONTROLLER as an OpenFlow 1.5 (32-bit) port number: a packet-out's in_port when it comes from no port. */
export const CONTROLLER_PORT = 0xfffffffd;

/**
 * SET_CONFIG with a miss send length: OVS sends asynchronous messages (packet-ins) to a service connection, such
 * as a bridge's management socket, only once it has set a nonzero one.
 */
export function setConfig(xid: number, missSendLen: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(0, 0); // flags: IP fragments handled normally
  b.writeUInt16BE(fits('miss_send_len', missSendLen, 16), 2);
  return message(MsgType.setConfig, xid, b);
}

export interface PacketOut {
  /** The frame, from its Ethernet header. */
  data: Buffer;
  /** Where the pipeline believes it came from: a port number, or the controller (the default). */
  inPort?: number;
  actions: readonly Action[];
}

/** OFPT_PACKET_OUT (OpenFlow 1.5: the in_port travels in a match). */
export function packetOut(xid: number, p: PacketOut): Buffer {
  const w = new ByteWriter(128 + p.data.length);
  w.u8(OFP_VERSION).u8(MsgType.packetOut).u16(0).u32(xid);
  w.u32(NO_BUFFER);
  const actionsLenAt = w.length;
  w.u16(0).zeros(2);
  writeMatch(w, { in_port: p.inPort ?? CONTROLLER_PORT });
  const acts = encodeActions(p.actions);
  w.setU16(actionsLenAt, acts.length);
  w.bytes(acts).bytes(p.data);
  if (w.length > MAX_MESSAGE) throw new RangeError(`packet-out of ${w.length} bytes exceeds the 64 KiB limit`);
  w.setU16(2, w.length);
  return w.finish();
}

/** One OXM field of a packet-in's metadata. */
export interface OxmField {
  class: number;
  field: number;
  value: Buffer;
}

export interface PacketIn {
  /** OFPR_*: 0 table miss, 1 apply-action, 2 invalid TTL, 3 action set, 4 group, 5 packet-out. */
  reason: number;
  tableId: number;
  /** Cookie of the flow that sent it. */
  cookie: bigint;
  /** The pipeline fields OVS reports (in_port, registers, tunnel metadata...). */
  fields: OxmField[];
  /** The frame, up to the length the flow's controller action asked for. */
  data: Buffer;
  /** The frame's full length. */
  totalLen: number;
}

/** The body (after the header) of an OpenFlow 1.3+ OFPT_PACKET_IN. */
export function decodePacketIn(body: Buffer): PacketIn {
  const totalLen = body.readUInt16BE(4);
  const reason = body.readUInt8(6);
  const tableId = body.readUInt8(7);
  const cookie = body.readBigUInt64BE(8);
  const matchAt = 16;
  const matchLen = body.readUInt16BE(matchAt + 2);
  const fields = readTlvFields(body, matchAt + 4, matchAt + matchLen).map((f) => ({ ...f, value: Buffer.from(f.value) }));
  const dataAt = matchAt + ((matchLen + 7) & ~7) + 2;
  return { reason, tableId, cookie, fields, data: Buffer.from(body.subarray(dataAt)), totalLen };
}

/** The pipeline state a packet-in reports, by field: what a controller reads to know where the packet was. */
export interface PacketInPipeline {
  inPort?: number;
  /** reg0..reg15 (0 where OVS left a register out: it reports only those that are not zero). */
  regs: number[];
  /** The tunnel the packet came in by (its sender's address), or the one an action set for it to leave by. */
  tunSrc?: string;
  tunDst?: string;
}

const ipv4Of = (b: Buffer): string => ipaddr.fromByteArray([...b.subarray(0, 4)]).toString();

/** Reads the fields of a packet-in's match: OVS writes registers as NXM regs or as 64-bit OXM packet registers. */
export function packetInPipeline(p: Pick<PacketIn, 'fields'>): PacketInPipeline {
  const out: PacketInPipeline = { regs: new Array<number>(16).fill(0) };
  for (const f of p.fields) {
    if (f.class === 0x8000 && f.field === 0 && f.value.length >= 4) out.inPort = f.value.readUInt32BE(0);
    else if (f.class === 0x0001 && f.field < 16 && f.value.length >= 4) out.regs[f.field] = f.value.readUInt32BE(0);
    else if (f.class === 0x8001 && f.field < 8 && f.value.length >= 8) {
      out.regs[2 * f.field] = f.value.readUInt32BE(0);
      out.regs[2 * f.field + 1] = f.value.readUInt32BE(4);
    } else if (f.class === 0x0001 && f.field === 31 && f.value.length >= 4) out.tunSrc = ipv4Of(f.value);
    else if (f.class === 0x0001 && f.field === 32 && f.value.length >= 4) out.tunDst = ipv4Of(f.value);
  }
  return out;
}
