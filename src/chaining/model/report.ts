// What each agent reports about the chains on its node, in one annotation on its own Node: the health of the
// replicas it runs and the flow counters (totals since the flows were installed on that node). The controller
// aggregates the reports into chain status. Reports come from other processes and may be garbage: parsing
// never throws, it keeps what is well-formed and says what it dropped.
import type { Counters } from '../api/types.js';

export const NODE_CHAIN_REPORT_ANNOTATION = 'chains.seine.dev/report';
export const NODE_CHAIN_REPORT_VERSION = 1;

export interface ReplicaReport {
  /** The chain's uid. */
  chain: string;
  /** The hop's name. */
  hop: string;
  /** The replica pod's uid. */
  pod: string;
  healthy: boolean;
  reason?: string;
  /** When `healthy` last changed on this node (RFC 3339). */
  since?: string;
  packets: Counters;
  bytes: Counters;
}

export interface ChainCountersReport {
  /** The chain's uid. */
  chain: string;
  /** Traffic classified into the chain on this node. */
  packets: Counters;
  bytes: Counters;
}

export interface NodeChainReport {
  v: 1;
  /** When the agent wrote it (RFC 3339). */
  at: string;
  replicas: ReplicaReport[];
  chains: ChainCountersReport[];
}

export interface ParsedNodeChainReport {
  /** The node's report; undefined when there is none or it is unusable as a whole. */
  report?: NodeChainReport;
  /** What was wrong (entries dropped, or why there is no report). */
  problems: string[];
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isTime = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));

function counters(v: unknown): Counters | undefined {
  if (v === undefined) return { forward: 0, reverse: 0 };
  if (!isObj(v)) return undefined;
  const forward = v.forward ?? 0;
  const reverse = v.reverse ?? 0;
  return isCount(forward) && isCount(reverse) ? { forward, reverse } : undefined;
}

function replica(v: unknown): ReplicaReport | undefined {
  if (!isObj(v) || typeof v.chain !== 'string' || !v.chain || typeof v.hop !== 'string' || !v.hop || typeof v.pod !== 'string' || !v.pod || typeof v.healthy !== 'boolean') return undefined;
  const packets = counters(v.packets);
  const bytes = counters(v.bytes);
  if (!packets || !bytes) return undefined;
  return {
    chain: v.chain,
    hop: v.hop,
    pod: v.pod,
    healthy: v.healthy,
    ...(typeof v.reason === 'string' && v.reason ? { reason: v.reason } : {}),
    ...(isTime(v.since) ? { since: v.since } : {}),
    packets,
    bytes,
  };
}

function chainCounters(v: unknown): ChainCountersReport | undefined {
  if (!isObj(v) || typeof v.chain !== 'string' || !v.chain) return undefined;
  const packets = counters(v.packets);
  const bytes = counters(v.bytes);
  return packets && bytes ? { chain: v.chain, packets, bytes } : undefined;
}

/** Reads a report annotation; never throws. */
export function parseNodeChainReport(value: string | undefined): ParsedNodeChainReport {
  if (value === undefined || value === '') return { problems: [] };
  let raw: unknown;
  try {
    raw = JSON.parse(value);
  } catch (e) {
    return { problems: [`not JSON: ${(e as Error).message}`] };
  }
  if (!isObj(raw)) return { problems: ['not a JSON object'] };
  if (raw.v !== NODE_CHAIN_REPORT_VERSION) return { problems: [`version ${JSON.stringify(raw.v)} is not ${NODE_CHAIN_REPORT_VERSION}`] };
  const problems: string[] = [];
  if (!isTime(raw.at)) problems.push('at: not an RFC 3339 time');
  const pick = <T>(field: string, parse: (v: unknown) => T | undefined): T[] => {
    const list = raw[field as keyof typeof raw];
    if (list === undefined) return [];
    if (!Array.isArray(list)) {
      problems.push(`${field}: not a list`);
      return [];
    }
    const out: T[] = [];
    list.forEach((item, i) => {
      const r = parse(item);
      if (r) out.push(r);
      else problems.push(`${field}[${i}]: malformed, dropped`);
    });
    return out;
  };
  const report: NodeChainReport = { v: 1, at: isTime(raw.at) ? raw.at : new Date(0).toISOString(), replicas: pick('replicas', replica), chains: pick('chains', chainCounters) };
  return { report, problems };
}

/** The annotation's value for a report. */
export function serializeNodeChainReport(report: NodeChainReport): string {
  return JSON.stringify(report);
}

/** The JSON merge patch that sets (or, with undefined, removes) the report on the agent's own Node. */
export function nodeChainReportPatch(report: NodeChainReport | undefined): { metadata: { annotations: Record<string, string | null> } } {
  return { metadata: { annotations: { [NODE_CHAIN_REPORT_ANNOTATION]: report ? serializeNodeChainReport(report) : null } } };
}
