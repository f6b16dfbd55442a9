// Whether two chains' classifiers can select the same packet: their source sets share an address, their
// destination sets share an address, and their protocols and ports do not exclude each other.
import { cidrsIntersect } from '../../ipam/ipv4-set.js';
import type { ChainClassifier } from './desired.js';

type Ports = ChainClassifier['ports'];

function portsIntersect(a: Ports, b: Ports): boolean {
  // No ports = any port.
  if (a.length === 0 || b.length === 0) return true;
  return a.some((x) => b.some((y) => x.port <= (y.endPort ?? y.port) && y.port <= (x.endPort ?? x.port)));
}

export function classifiersOverlap(a: ChainClassifier, b: ChainClassifier): boolean {
  if (a.protocol && b.protocol && a.protocol !== b.protocol) return false;
  if (!portsIntersect(a.ports, b.ports)) return false;
  return cidrsIntersect(a.source.cidrs, b.source.cidrs) && cidrsIntersect(a.destination.cidrs, b.destination.cidrs);
}
