// What a lab node holds for its pod attachments, read from the node itself (iproute2, OVS, the agent's
// IPAM file): for tests that check an operation left exactly what it should.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/host/exec.js';
import type { LabNode } from '../../src/lab/node.js';

/** Links inside a network namespace, through iproute2 (sysfs under nsenter is the root namespace's). */
export async function netnsLinks(netns: string, type?: string): Promise<Array<{ ifname: string; address?: string }>> {
  const { stdout } = await run('ip', ['-json', 'link', 'show', ...(type ? ['type', type] : [])], { netns });
  return JSON.parse(stdout || '[]') as Array<{ ifname: string; address?: string }>;
}

export interface NodeAttachments {
  /** Ports on br-int, sorted. */
  ports: string[];
  /** veths in the node's namespace, sorted. */
  veths: string[];
  /** The agent's IPAM allocations as "ip containerId/ifname", sorted. */
  ips: string[];
}

export async function nodeAttachments(node: LabNode): Promise<NodeAttachments> {
  const ports = (await node.ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter(Boolean).sort();
  const veths = (await netnsLinks(node.netns, 'veth')).map((l) => l.ifname).sort();
  const ipamFile = join(node.dirs.stateDir, 'ipam-ipv4.json');
  const allocations = existsSync(ipamFile) ? (JSON.parse(readFileSync(ipamFile, 'utf8')) as { allocations: Array<{ ip: string; containerId: string; ifname: string }> }).allocations : [];
  return { ports, veths, ips: allocations.map((a) => `${a.ip} ${a.containerId}/${a.ifname}`).sort() };
}
