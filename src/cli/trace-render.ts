// What `seine trace` prints of a Traceflow: the packet's path as a text diagram (node after node, each
// observation a step, the verdict last), and the table `seine trace --list` prints. Pure: no I/O, no colours.
import { ageOf } from '../lab/apiserver/meta.js';
import { DEFAULT_TTL, TCP_SYN, type NodeResult, type Observation, type PolicyRef, type TracePacket, type Traceflow } from '../traceflow/api/types.js';
import { renderTable } from './table.js';

/** Width of the component column: the longest component (LoadBalancing, NetworkPolicy) and some room. */
const COMPONENT_WIDTH = 16;

/** The destination as the spec names it: `ns/pod`, `svc ns/name`, or the address. */
export function describeDestination(tf: Traceflow): string {
  const dst = tf.spec.destination;
  const namespace = dst.namespace ?? tf.spec.source.namespace;
  if (dst.pod !== undefined) return `${namespace}/${dst.pod}`;
  if (dst.service !== undefined) return `svc ${namespace}/${dst.service}`;
  return dst.ip ?? '<none>';
}

export function describeSource(tf: Traceflow): string {
  return `${tf.spec.source.namespace}/${tf.spec.source.pod}`;
}

const endpoint = (ip: string, port: number | string | undefined): string => (port === undefined ? ip : `${ip}:${port}`);

/**
 * `TCP 10.10.0.5:40123 -> 10.96.0.10:80`, with the flags and TTL when they are not the defaults. A live trace's
 * match names a port it leaves out as any (`:*`), and has no flags or TTL.
 */
function describePacket(p: TracePacket, match = false): string {
  const ports = p.protocol !== 'ICMP';
  const port = (n: number | undefined): number | string | undefined => (ports ? (n ?? (match ? '*' : undefined)) : undefined);
  let s = `${p.protocol} ${endpoint(p.sourceIP, port(p.sourcePort))} -> ${endpoint(p.destinationIP, port(p.destinationPort))}`;
  if (match) return s;
  if (p.protocol === 'TCP' && p.tcpFlags !== undefined && p.tcpFlags !== TCP_SYN) s += `, TCP flags 0x${p.tcpFlags.toString(16).padStart(2, '0')}`;
  if (p.ttl !== undefined && p.ttl !== DEFAULT_TTL) s += `, TTL ${p.ttl}`;
  return s;
}

/** Before the controller resolved the packet: what the spec asks for. */
function describeRequestedPacket(tf: Traceflow): string {
  const p = tf.spec.packet ?? {};
  const protocol = p.protocol ?? 'TCP';
  const parts: string[] = [protocol];
  if (protocol !== 'ICMP' && p.sourcePort !== undefined) parts.push(`from port ${p.sourcePort}`);
  if (protocol !== 'ICMP' && p.destinationPort !== undefined) parts.push(`to port ${p.destinationPort}`);
  let s = parts.join(' ');
  if (protocol === 'TCP' && p.tcpFlags !== undefined && p.tcpFlags !== TCP_SYN) s += `, TCP flags 0x${p.tcpFlags.toString(16).padStart(2, '0')}`;
  if (p.ttl !== undefined && p.ttl !== DEFAULT_TTL) s += `, TTL ${p.ttl}`;
  return s;
}

/** `NetworkPolicy default/allow-web rule ingress-0`; cluster-scoped policies have no namespace. */
export function describePolicy(p: PolicyRef): string {
  return `${p.kind} ${p.namespace ? `${p.namespace}/` : ''}${p.name} rule ${p.rule}`;
}

/** What one observation says, after its component: the action and what it acted with. */
function describeObservation(o: Observation): string {
  let s: string = o.action;
  switch (o.component) {
    case 'ServiceChain':
      if (o.chain) s += ` ${o.action === 'Received' ? 'from' : 'to'} chain ${o.chain.namespace ? `${o.chain.namespace}/` : ''}${o.chain.name} hop ${o.chain.hop} replica ${o.chain.replica}${o.peerNode ? ` on ${o.peerNode}` : ''}`;
      break;
    case 'LoadBalancing':
      if (o.translatedDestination) s += ` -> ${o.translatedDestination}`;
      break;
    case 'NetworkPolicy':
      if (o.policy) s += ` by ${describePolicy(o.policy)}`;
      if (o.direction) s += ` (${o.direction})`;
      break;
    default:
      s += forwardingDetail(o);
  }
  return s;
}

/** Where Forwarding (or another component naming ports and pods) sent it, or took it from. */
function forwardingDetail(o: Observation): string {
  const port = o.outputPort ? ` (port ${o.outputPort})` : '';
  if (o.action === 'Received') return o.peerNode ? ` from ${o.peerNode}` : o.pod ? ` from pod ${o.pod}` : '';
  if (o.outputPort === 'chain tunnel' && o.action === 'Forwarded') return ` into the chain tunnel to ${o.peerNode ?? 'another node'}`;
  if (o.tunnelDestination || (o.peerNode && o.outputPort === 'tunnel')) {
    const to = o.peerNode && o.tunnelDestination ? `${o.peerNode} (${o.tunnelDestination})` : (o.peerNode ?? o.tunnelDestination);
    return ` into tunnel to ${to}`;
  }
  // A secondary network's uplink: the other nodes are on the same VLAN.
  if (o.peerNode && o.outputPort && o.outputPort !== 'gateway') return ` to port ${o.outputPort}, toward ${o.peerNode}`;
  if (o.peerNode) return ` to the node's routing, toward ${o.peerNode}`;
  if (o.pod) return ` to pod ${o.pod}${port}`;
  if (o.outputPort) return ` to port ${o.outputPort}`;
  return '';
}

function renderNode(r: NodeResult): string[] {
  const lines = [`node ${r.node} (${r.role})`];
  if (r.observations.length === 0) return [...lines, '└─ (no observations)'];
  r.observations.forEach((o, i) => {
    const branch = i === r.observations.length - 1 ? '└─' : '├─';
    let line = `${branch} ${o.component.padEnd(COMPONENT_WIDTH)}${describeObservation(o)}`;
    if (o.table) line += ` [${o.table}]`;
    if (o.message) line += `: ${o.message}`;
    lines.push(line);
  });
  return lines;
}

/** The observation that dropped the packet: the last Dropped one, node after node. */
function droppingObservation(tf: Traceflow): Observation | undefined {
  let found: Observation | undefined;
  for (const r of tf.status?.results ?? []) for (const o of r.observations) if (o.action === 'Dropped') found = o;
  return found;
}

function verdictLine(tf: Traceflow): string {
  const st = tf.status ?? {};
  const phase = st.phase ?? 'Pending';
  if (phase === 'Failed') return `Failed${st.reason ? ` (${st.reason})` : ''}${st.message ? `: ${st.message}` : ''}`;
  if (phase !== 'Succeeded') return `${phase}: ${st.message || 'waiting'}`;
  if (st.verdict !== 'Dropped') return `Verdict: ${st.verdict ?? 'unknown'}`;
  const o = droppingObservation(tf);
  if (!o) return `Verdict: Dropped${st.message ? `: ${st.message}` : ''}`;
  if (o.policy) return `Verdict: Dropped by ${describePolicy(o.policy)}`;
  return `Verdict: Dropped by ${o.component}${o.table ? ` in table ${o.table}` : ''}${o.message ? `: ${o.message}` : ''}`;
}

/**
 * The trace as a diagram: the header (source -> destination: the packet), each node's observations in order,
 * a connector between nodes (the tunnel hop), and the verdict (or why the trace failed, or what it waits for).
 */
export function renderTrace(tf: Traceflow): string {
  const st = tf.status ?? {};
  let packet = st.packet ? describePacket(st.packet, tf.spec.liveTraffic) : describeRequestedPacket(tf);
  if (tf.spec.liveTraffic) packet = `live traffic, ${packet}`;
  if (st.tag !== undefined) packet += `, DSCP tag ${st.tag}`;
  const lines = [`${describeSource(tf)} -> ${describeDestination(tf)}: ${packet}`];
  const net = st.network;
  if (net) lines.push(`Network: ${net.name} (${net.type === 'vlan' ? `VLAN ${net.vlan}` : `overlay VNI ${net.vni}`}, bridge ${net.bridge}), from ${net.interface}${st.packet?.destinationMAC ? ` to ${st.packet.destinationMAC}` : ''}`);
  else if (tf.spec.network) lines.push(`Network: ${tf.spec.network}`);
  if (st.capturedPacket) lines.push(`Captured: ${describePacket(st.capturedPacket)}${st.capturedPacket.protocol === 'TCP' && st.capturedPacket.tcpFlags === TCP_SYN ? ' (SYN)' : ''}`);
  const results = st.results ?? [];
  results.forEach((r, i) => {
    if (i > 0) lines.push('│');
    lines.push(...renderNode(r));
  });
  if (results.length === 0 && st.sourceNode && st.phase !== 'Failed') lines.push(`node ${st.sourceNode} (Sender)`, '└─ (no observations yet)');
  lines.push(verdictLine(tf));
  return lines.join('\n');
}

/** A row of `seine trace --list`: name, source, destination, phase, verdict, age. */
export function traceSummaryRow(tf: Traceflow, now = Date.now()): Array<string | undefined> {
  // Typed as a Date, but a custom object read from the API server carries the RFC 3339 string.
  const ts: unknown = tf.metadata.creationTimestamp;
  const created = ts instanceof Date ? ts.toISOString() : typeof ts === 'string' ? ts : undefined;
  return [tf.metadata.name ?? '', describeSource(tf), describeDestination(tf), tf.status?.phase ?? 'Pending', tf.status?.verdict, ageOf(created, now)];
}

export function renderTraceList(tfs: readonly Traceflow[], now = Date.now()): string {
  const sorted = [...tfs].sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));
  return renderTable(['name', 'source', 'destination', 'phase', 'verdict', 'age'], sorted.map((tf) => traceSummaryRow(tf, now)));
}
