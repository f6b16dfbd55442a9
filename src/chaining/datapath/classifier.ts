import { portMasks, type Match, type Protocol } from '../../ovs/openflow/index.js';
import type { ClassifierSpec } from './state.js';

const ANY = '0.0.0.0/0';

export function ovsProtocol(p: ClassifierSpec['protocol']): Protocol {
  switch (p) {
    case 'TCP':
      return 'tcp';
    case 'UDP':
      return 'udp';
    case 'SCTP':
      return 'sctp';
    case 'ICMP':
      return 'icmp';
    default:
      return 'ip';
  }
}

const isAny = (cidrs: readonly string[]): boolean => cidrs.includes(ANY);

/**
 * The classifier as conjunction clauses: each clause is a list of alternative match fragments (source
 * addresses, destination addresses, destination ports); a packet is classified when it matches one fragment
 * of every clause. Clauses that would match anything are left out. `empty` is true when a clause has no
 * alternative at all (e.g. a pod selector that selects no pod): then nothing is classified.
 */
export function classifierClauses(c: ClassifierSpec): { protocol: Protocol; clauses: Match[][]; empty: boolean } {
  const protocol = ovsProtocol(c.protocol);
  const clauses: Match[][] = [];
  if (!isAny(c.source)) clauses.push(c.source.map((cidr) => ({ nw_src: cidr })));
  if (!isAny(c.destination)) clauses.push(c.destination.map((cidr) => ({ nw_dst: cidr })));
  if (c.ports.length) {
    if (protocol === 'ip' || protocol === 'icmp') throw new RangeError('ports need protocol TCP, UDP or SCTP');
    clauses.push(c.ports.flatMap((r) => portMasks(r).map((m) => ({ tp_dst: m }))));
  }
  return { protocol, clauses, empty: clauses.some((cl) => cl.length === 0) };
}
