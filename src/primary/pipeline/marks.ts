import type { Action, Match, Regs } from '../../ovs/openflow/index.js';

/**
 * Register fields the pipeline sets and reads. They are the hand-off to the seam tables: a Service or
 * policy table may read any of them, and may set only what its stage documents (docs/design/pipeline.md).
 */
export interface RegField {
  /** Register number (reg0..reg15). */
  reg: number;
  /** First and last bit, inclusive. */
  start: number;
  end: number;
}

export interface RegMark {
  field: RegField;
  value: number;
}

/** reg0[0..3]: where the packet entered the bridge (set by Classifier). */
export const PacketSourceField: RegField = { reg: 0, start: 0, end: 3 };
/** reg0[4..7]: what kind of port the packet leaves by (set by L2ForwardingCalc). */
export const PacketDestinationField: RegField = { reg: 0, start: 4, end: 7 };
/** reg0[8]: TargetOfportField holds the output port (set by L2ForwardingCalc, checked by Output). */
export const OutPortFoundField: RegField = { reg: 0, start: 8, end: 8 };
/**
 * reg0[9]: the packet was routed to this node and needs the local MAC rewrite (gateway MAC as source, the
 * pod's MAC as destination) and a TTL decrement when it goes to a local pod. Classifier sets it for tunnel
 * traffic; a Service table may set it for a connection it DNATs to a local pod.
 */
export const RewriteMacField: RegField = { reg: 0, start: 9, end: 9 };
/**
 * reg0[10]: the packet leaves by the port it came in on (a pod reaching itself through a Service, and the replies).
 * Set by the Service stage; Output sends it back with `in_port`.
 */
export const HairpinField: RegField = { reg: 0, start: 10, end: 10 };
/** reg1: OpenFlow port the packet leaves by (set by L2ForwardingCalc, used by Output). */
export const TargetOfportField: RegField = { reg: 1, start: 0, end: 31 };
/** reg2..reg7 are not used by the pipeline: they are reserved for the Service and policy stages. */
export const RESERVED_REGS: readonly number[] = [2, 3, 4, 5, 6, 7];

export const FromGateway: RegMark = { field: PacketSourceField, value: 1 };
export const FromTunnel: RegMark = { field: PacketSourceField, value: 2 };
export const FromLocalPod: RegMark = { field: PacketSourceField, value: 3 };

export const ToGateway: RegMark = { field: PacketDestinationField, value: 1 };
export const ToTunnel: RegMark = { field: PacketDestinationField, value: 2 };
export const ToLocalPod: RegMark = { field: PacketDestinationField, value: 3 };

export const OutPortFound: RegMark = { field: OutPortFoundField, value: 1 };
export const RewriteMac: RegMark = { field: RewriteMacField, value: 1 };
export const Hairpin: RegMark = { field: HairpinField, value: 1 };

/**
 * ct_mark bit 0: a connection the Service stage translated and committed itself (in both conntrack zones of a
 * hairpin), which ConntrackCommit leaves alone.
 */
export const SERVICE_CT_MARK = { value: 0x1, mask: 0x1 } as const;

function width(f: RegField): number {
  return f.end - f.start + 1;
}

/** `reg0[4..7]`-style subfield reference for load/move/output. */
export function subfieldOf(f: RegField): string {
  return width(f) === 32 ? `reg${f.reg}[]` : f.start === f.end ? `reg${f.reg}[${f.start}]` : `reg${f.reg}[${f.start}..${f.end}]`;
}

function checkFits(f: RegField, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** width(f)) throw new RangeError(`${value} does not fit in ${subfieldOf(f)}`);
}

/** Match fragment for a register field holding `value` (several marks on one register are merged). */
export function matchMarks(...marks: RegMark[]): Match {
  const out: Record<string, { value: number; mask: number }> = {};
  for (const { field, value } of marks) {
    checkFits(field, value);
    const key = `reg${field.reg}`;
    const mask = Number(((1n << BigInt(width(field))) - 1n) << BigInt(field.start));
    const prev = out[key] ?? { value: 0, mask: 0 };
    if ((prev.mask & mask) !== 0) throw new RangeError(`marks overlap in ${key}`);
    out[key] = { value: (prev.value | (value * 2 ** field.start)) >>> 0, mask: (prev.mask | mask) >>> 0 };
  }
  return out as Regs;
}

/** Action writing a mark (other bits of the register are left alone). */
export function loadMark(mark: RegMark): Action {
  checkFits(mark.field, mark.value);
  return { type: 'load', value: mark.value, dst: subfieldOf(mark.field) };
}

/** Action writing a number into a field. */
export function loadField(field: RegField, value: number): Action {
  return loadMark({ field, value });
}
