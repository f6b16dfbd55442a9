// What a Routed CNF needs from Seine: whatever comes in on one function interface is routed out of the other
// (or back out of the same one, one-armed) via a next hop that OVS answers for. The CNF itself forwards
// (net.ipv4.ip_forward=1 is its own setting).
import { createHash } from 'node:crypto';
import { run } from '../../host/exec.js';
import { IpBatch, IpRoute } from '../../host/ip.js';
import { NEXT_HOP_IP, NEXT_HOP_MAC } from '../datapath/flows.js';

/** Policy-routing tables Seine uses inside CNF pods: 0x5e000 + a hash of the interface pair (no clash with main/local). */
const TABLE_BASE = 0x5e000;
const RULE_PRIORITY = 1000;

export function routingTable(inIf: string, outIf: string): number {
  return TABLE_BASE + (createHash('sha1').update(`${inIf}>${outIf}`).digest().readUInt16BE(0) & 0xfff);
}

interface Rule {
  iif?: string;
  table?: string | number;
  priority?: number;
}

/**
 * Makes the CNF's namespace route what enters `ingress` out of `egress` and the reverse, via the next hop, and
 * keeps the kernel from refusing chained packets (reverse-path filter: their sources are not behind these
 * interfaces) or redirecting them (one-armed). Idempotent.
 */
export async function ensureRoutedCnf(netns: string, ingress: string, egress: string): Promise<void> {
  const ip = new IpRoute(netns);
  const pairs: Array<[string, string]> = ingress === egress ? [[ingress, ingress]] : [[ingress, egress], [egress, ingress]];
  const ifaces = [...new Set([ingress, egress])];
  const sysctls: Record<string, number> = { 'net.ipv4.conf.all.rp_filter': 0, 'net.ipv4.conf.all.send_redirects': 0 };
  for (const i of ifaces) {
    sysctls[`net.ipv4.conf.${i}.rp_filter`] = 0;
    sysctls[`net.ipv4.conf.${i}.send_redirects`] = 0;
  }
  const { stdout } = await run('ip', ['-j', 'rule', 'show'], { netns });
  const rules = JSON.parse(stdout || '[]') as Rule[];
  const batch = new IpBatch();
  for (const [from, to] of pairs) {
    const table = routingTable(from, to);
    if (!rules.some((r) => r.iif === from && String(r.table) === String(table))) batch.command('rule', 'add', 'iif', from, 'lookup', String(table), 'priority', String(RULE_PRIORITY));
    batch.replaceRoute('default', { via: NEXT_HOP_IP, dev: to, onlink: true, table });
  }
  for (const i of ifaces) batch.replaceNeigh(NEXT_HOP_IP, NEXT_HOP_MAC, i);
  await ip.apply(batch);
  await ip.sysctl(sysctls);
}

/**
 * Undoes ensureRoutedCnf when the CNF no longer serves a Routed hop through these interfaces (its chain was
 * deleted or changed, or the pod was deselected): rules, routes and the neighbour entry go; sysctls stay (they
 * are the namespace's, possibly the CNF's own choice). A namespace or interface already gone is fine.
 */
export async function removeRoutedCnf(netns: string, ingress: string, egress: string): Promise<void> {
  const pairs: Array<[string, string]> = ingress === egress ? [[ingress, ingress]] : [[ingress, egress], [egress, ingress]];
  let rules: Rule[];
  try {
    rules = JSON.parse((await run('ip', ['-j', 'rule', 'show'], { netns })).stdout || '[]') as Rule[];
  } catch {
    return; // the pod's namespace is gone
  }
  const script: string[][] = [];
  for (const [from, to] of pairs) {
    const table = routingTable(from, to);
    if (rules.some((r) => r.iif === from && String(r.table) === String(table))) script.push(['rule', 'del', 'iif', from, 'lookup', String(table), 'priority', String(RULE_PRIORITY)]);
    script.push(['route', 'flush', 'table', String(table)]);
  }
  for (const i of new Set([ingress, egress])) script.push(['neigh', 'del', NEXT_HOP_IP, 'dev', i]);
  // Each step on its own: one already undone must not stop the others.
  for (const args of script) await run('ip', args, { netns }).catch(() => undefined);
}

/**
 * The interface pairs Seine's routing serves in a CNF's namespace, found from its rules (for an agent that
 * restarted and no longer knows what it set up): `[a, b]` for each rule routing what enters `a` out of `b`.
 */
export async function installedRoutedPairs(netns: string, ifnames: readonly string[]): Promise<Array<[string, string]>> {
  let rules: Rule[];
  try {
    rules = JSON.parse((await run('ip', ['-j', 'rule', 'show'], { netns })).stdout || '[]') as Rule[];
  } catch {
    return [];
  }
  const pairs: Array<[string, string]> = [];
  for (const a of ifnames) {
    for (const b of ifnames) {
      if (rules.some((r) => r.iif === a && r.priority === RULE_PRIORITY && String(r.table) === String(routingTable(a, b)))) pairs.push([a, b]);
    }
  }
  return pairs;
}
