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
