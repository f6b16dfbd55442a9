// What the datapath is doing while a test's traffic is stuck: the flows whose packet counters move, and the
// conntrack entries of the traffic, on each node. Printed with a failure so that a rare stall can be understood.
import { run } from '../../src/host/exec.js';
import type { Lab } from '../../src/lab/lab.js';
import { sleep } from '../../src/util/wait.js';

/** br-int's flows of one node, keyed without their statistics, with their packet counts. */
async function flowCounts(lab: Lab, node: number, bridge: string): Promise<Map<string, number>> {
  const ovs = lab.nodes[node]!.ovs;
  const { stdout } = await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-flows', ovs.bridgeMgmt(bridge)], { env: ovs.env, timeoutMs: 30_000 });
  const counts = new Map<string, number>();
  for (const line of stdout.split('\n')) {
    const n = /n_packets=(\d+)/.exec(line);
    if (n) counts.set(line.replace(/ (cookie|duration|n_packets|n_bytes|idle_age|hard_age)=[^ ,]+,?/g, '').trim(), Number(n[1]));
  }
  return counts;
}

/**
 * The flows of `bridge` on every node whose counters grew over `windowMs`, and each node's conntrack entries
 * containing `conntrackFilter`, as text.
 */
export async function datapathDiagnosis(lab: Lab, opts: { bridge?: string; windowMs?: number; conntrackFilter: string; datapathFilter?: RegExp }): Promise<string> {
  const bridge = opts.bridge ?? 'br-int';
  const nodes = lab.nodes.map((_, i) => i);
  const safely = <T>(p: Promise<T>, fallback: T): Promise<T> => p.catch(() => fallback);
  const before = await Promise.all(nodes.map((i) => safely(flowCounts(lab, i, bridge), new Map<string, number>())));
  await sleep(opts.windowMs ?? 4000);
  const after = await Promise.all(nodes.map((i) => safely(flowCounts(lab, i, bridge), new Map<string, number>())));
  const parts: string[] = [];
  for (const i of nodes) {
    const name = lab.plan.nodes[i]!.name;
    const moving = [...after[i]!].map(([flow, n]) => ({ flow, d: n - (before[i]!.get(flow) ?? 0) })).filter((m) => m.d > 0);
    const ct = await safely(lab.nodes[i]!.ovs.appctl('ovs-vswitchd', ['dpctl/dump-conntrack']), '(no conntrack dump)');
    parts.push(
      `--- ${name}: flows of ${bridge} that matched packets in ${opts.windowMs ?? 4000} ms`,
      ...moving.map((m) => `  +${m.d} ${m.flow}`),
      `--- ${name}: conntrack entries with "${opts.conntrackFilter}"`,
      ...ct.split('\n').filter((l) => l.includes(opts.conntrackFilter)).map((l) => `  ${l}`),
    );
    if (opts.datapathFilter) {
      const dp = await safely(lab.nodes[i]!.ovs.appctl('ovs-vswitchd', ['dpctl/dump-flows']), '(no datapath flows)');
      const neigh = await safely(lab.nodes[i]!.ovs.appctl('ovs-vswitchd', ['tnl/neigh/show']), '(no tunnel neighbours)');
      parts.push(
        `--- ${name}: datapath flows matching ${String(opts.datapathFilter)}`,
        ...dp.split('\n').filter((l) => opts.datapathFilter!.test(l)).map((l) => `  ${l}`),
        `--- ${name}: tunnel neighbours`,
        ...neigh.split('\n').map((l) => `  ${l}`),
      );
    }
  }
  return parts.join('\n');
}
