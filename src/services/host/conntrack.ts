// UDP has no handshake: a client that sent to nodeIP:port before the node port existed keeps its conntrack
// entry (delivered locally, untranslated) as long as it keeps sending, and the new DNAT never applies to it.
// Such entries are deleted when a UDP node port starts being translated, as kube-proxy does.

export interface UdpFlow {
  /** Original direction destination and port. */
  dst: string;
  dport: number;
  /** Reply direction source: the original destination unless the flow was DNATed. */
  replySrc: string;
}

/** The UDP flows of `conntrack -L -p udp` output (first tuple: original direction, second: reply). */
export function parseUdpFlows(listing: string): UdpFlow[] {
  const flows: UdpFlow[] = [];
  for (const line of listing.split('\n')) {
    if (!line.startsWith('udp')) continue;
    const dsts = [...line.matchAll(/\bdst=(\S+)/g)].map((m) => m[1]!);
    const srcs = [...line.matchAll(/\bsrc=(\S+)/g)].map((m) => m[1]!);
    const dport = /\bdport=(\d+)/.exec(line)?.[1];
    if (dsts.length < 2 || srcs.length < 2 || !dport) continue;
    flows.push({ dst: dsts[0]!, dport: Number(dport), replySrc: srcs[1]! });
  }
  return flows;
}

/**
 * The (address, port) pairs whose untranslated flows must go: flows to one of the node's own addresses on a
 * node port that is newly translated, which were not DNATed (their reply comes from where they were sent).
 */
export function staleNodePortFlows(flows: readonly UdpFlow[], newPorts: ReadonlySet<number>, localAddresses: ReadonlySet<string>): Array<{ dst: string; dport: number }> {
  const stale = new Map<string, { dst: string; dport: number }>();
  for (const f of flows) {
    if (newPorts.has(f.dport) && localAddresses.has(f.dst) && f.replySrc === f.dst) stale.set(`${f.dst}:${f.dport}`, { dst: f.dst, dport: f.dport });
  }
  return [...stale.values()];
}

/** Deletes exactly the untranslated UDP flows to `dst`:`dport` (the reply source pins "not DNATed"). */
export function deleteUntranslatedCommand(flow: { dst: string; dport: number }): string[] {
  return ['-D', '-p', 'udp', '--orig-dst', flow.dst, '--orig-port-dst', String(flow.dport), '--reply-src', flow.dst];
}
