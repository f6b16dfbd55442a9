// The policy stage's flows on a real bridge with real connections (one node, no agent): isolation, rules by peer
// and port, tiers (Admin before NetworkPolicy, Pass, Baseline), named ports, replies, the node's own probes.
import { run } from '../../../src/host/exec.js';
import { IpBatch } from '../../../src/host/ip.js';
import { addFlow, FlowWriter } from '../../../src/ovs/openflow/index.js';
import { ruleCounters } from '../../../src/policy/agent/counters.js';
import { policyScope, tieredPriority, PolicyPriority } from '../../../src/policy/datapath/layout.js';
import { policySync, policyFlows, type RuleProblem } from '../../../src/policy/datapath/flows.js';
import type { DatapathRule, Isolation } from '../../../src/policy/datapath/state.js';
import { pipelineFlows, type NodeConfig } from '../../../src/primary/pipeline/index.js';
import { OvsSandbox, SANDBOX_NODE, type SandboxPod } from '../../harness/sandbox.js';

const BR = 'br-int';
const GW = 1;
const PORTS = [80, 81, 8080];

describe('policy flows on a real bridge', () => {
  let sb: OvsSandbox;
  let w: FlowWriter;
  const pods: Record<'a' | 'b' | 'c', SandboxPod> = {} as never;
  const ofport = { a: 2, b: 3, c: 4 } as const;
  const node: NodeConfig = SANDBOX_NODE;

  beforeAll(async () => {
    sb = await OvsSandbox.start();
    await sb.addBridge(BR);
    await sb.ovs.vsctl(['add-port', BR, 'gw0', '--', 'set', 'interface', 'gw0', 'type=internal', `ofport_request=${GW}`, `mac="${node.gatewayMac}"`]);
    await sb.ip.apply(new IpBatch().addAddr('gw0', '10.10.0.1/24').setLink('gw0', { up: true }));
    await sb.ip.txOffloadOff('gw0');
    for (const [name, i] of [['a', 2], ['b', 3], ['c', 4]] as const) {
      const p = await sb.addPod(`10.10.0.${i}/24`);
      await sb.ovs.vsctl(['add-port', BR, p.hostIf, '--', 'set', 'interface', p.hostIf, `ofport_request=${ofport[name]}`]);
      await p.ip.apply(new IpBatch().command('route', 'add', 'default', 'via', '10.10.0.1'));
      pods[name] = p;
      await sb.startTcpServers(p, PORTS);
    }
    w = FlowWriter.forBridge(sb.ovs, BR);
    const podList = (['a', 'b', 'c'] as const).map((n) => ({ ofport: ofport[n], ip: pods[n].addr, mac: pods[n].mac }));
    await w.submit(pipelineFlows({ node, pods: podList, peers: [] }).map(addFlow));
  }, 60_000);

  afterAll(async () => {
    await sb?.close();
  });

  /** Whether a TCP connection from `from` (a pod or the node) to a pod's port opens within `waitS` seconds. */
  async function connects(from: SandboxPod | 'node', to: SandboxPod, port: number, waitS: number): Promise<boolean> {
    const netns = from === 'node' ? sb.netns : from.netns;
    return run('nc', ['-z', '-w', String(waitS), to.addr, String(port)], { netns, timeoutMs: 30_000 }).then(() => true, () => false);
  }

  async function install(rules: DatapathRule[], isolations: Isolation[] = []): Promise<void> {
    await w.sync(policySync({ round: 1, rules, isolations, nodeAddresses: [node.gatewayIp] }));
  }

  /**
   * Checks which of the pairs (x>y:port) connect against `expected`. A pair that disagrees is tried twice more
   * with a longer wait before it counts: on a busy machine a connection that should open may be slow to, while
   * one that should be dropped never opens however long it is given.
   */
  async function expectMatrix(pairs: string[], expected: string[]): Promise<void> {
    const probe = async (p: string, waitS: number): Promise<boolean> => {
      const m = /^(\w+)>(\w+):(\d+)$/.exec(p)!;
      return connects(m[1] === 'node' ? 'node' : pods[m[1] as 'a'], pods[m[2] as 'a'], Number(m[3]), waitS);
    };
    const ok = new Map<string, boolean>();
    for (const p of pairs) ok.set(p, await probe(p, 2));
    for (let retry = 0; retry < 2; retry++) {
      for (const p of pairs) if (ok.get(p) !== expected.includes(p)) ok.set(p, await probe(p, 5));
    }
    expect(pairs.filter((p) => ok.get(p))).toEqual(expected);
  }

  const np = (id: number, direction: 'Ingress' | 'Egress', applied: Array<'a' | 'b' | 'c'>, peers: Array<'a' | 'b' | 'c'> | 'any', ports: DatapathRule['ports'] = []): DatapathRule => ({
    id,
    direction,
    tier: 'NetworkPolicy',
    action: 'Accept',
    priority: PolicyPriority.networkPolicy,
    applied: applied.map((n) => ({ ofport: ofport[n], namedPorts: n === 'c' ? [{ name: 'web', protocol: 'TCP' as const, port: 8080 }] : [] })),
    peers: peers === 'any' ? { any: true, cidrs: [], pods: [] } : { any: false, cidrs: [], pods: peers.map((n) => ({ ip: pods[n].addr, namedPorts: n === 'c' ? [{ name: 'web', protocol: 'TCP' as const, port: 8080 }] : [] })) },
    ports,
  });

  it('passes everything without rules', async () => {
    await install([]);
    await expectMatrix(['a>b:80', 'b>c:81', 'c>a:8080'], ['a>b:80', 'b>c:81', 'c>a:8080']);
  }, 60_000);

  it('isolates a pod for ingress and accepts what a rule lists (peer and port); its own connections and the node still pass', async () => {
    await install([np(1, 'Ingress', ['c'], ['a'], [{ protocol: 'TCP', port: 80 }])], [{ direction: 'Ingress', ofport: ofport.c, ruleId: 2 }]);
    await expectMatrix(['a>c:80', 'b>c:80', 'a>c:81', 'c>a:80', 'c>b:81', 'node>c:81'], ['a>c:80', 'c>a:80', 'c>b:81', 'node>c:81']);
  }, 60_000);

  it('resolves a named port on the pod it applies to (ingress) and on the peer (egress)', async () => {
    await install([np(1, 'Ingress', ['c'], 'any', [{ name: 'web' }])], [{ direction: 'Ingress', ofport: ofport.c, ruleId: 2 }]);
    await expectMatrix(['a>c:8080', 'b>c:8080', 'a>c:80'], ['a>c:8080', 'b>c:8080']);
    await install([np(1, 'Egress', ['a'], ['b', 'c'], [{ name: 'web', protocol: 'TCP' }])], [{ direction: 'Egress', ofport: ofport.a, ruleId: 2 }]);
    await expectMatrix(['a>c:8080', 'a>b:8080', 'a>c:80', 'b>a:80'], ['a>c:8080', 'b>a:80']);
  }, 60_000);

  it('takes Admin rules first (Deny over an accepting NetworkPolicy), Pass to NetworkPolicy, Baseline for pods no NetworkPolicy isolates', async () => {
    const tiered = (id: number, tier: 'Admin' | 'Baseline', action: 'Accept' | 'Deny' | 'Pass', prio: number, applied: Array<'a' | 'b' | 'c'>, peers: Array<'a' | 'b' | 'c'>): DatapathRule => ({
      ...np(id, 'Ingress', applied, peers),
      tier,
      action,
      priority: tieredPriority(prio, 0),
    });
    await install([
      // Admin: a is passed to the lower tiers (priority 1), then everything to c is denied (priority 2).
      tiered(1, 'Admin', 'Pass', 1, ['c'], ['a']),
      tiered(2, 'Admin', 'Deny', 2, ['c'], ['a', 'b']),
      // NetworkPolicy: accepts a and b into c (b never gets here: Admin denied it).
      np(3, 'Ingress', ['c'], ['a', 'b']),
      // Baseline: denies a into b (b is not isolated by NetworkPolicy, so Baseline decides).
      tiered(4, 'Baseline', 'Deny', 0, ['b'], ['a']),
    ], [{ direction: 'Ingress', ofport: ofport.c, ruleId: 5 }]);
    await expectMatrix(['a>c:80', 'b>c:80', 'a>b:80', 'c>b:80'], ['a>c:80', 'c>b:80']);
  }, 60_000);

  it('counts the connections each rule decided, from its verdict flows', async () => {
    await install([np(7, 'Ingress', ['c'], ['a'], [{ protocol: 'TCP', port: 80 }])], [{ direction: 'Ingress', ofport: ofport.c, ruleId: 8 }]);
    const counts = async (): Promise<Map<number, bigint>> => new Map(ruleCounters(await w.dumpFlows({ cookie: policyScope() })).map((c) => [c.ruleId, c.packets]));
    const before = await counts();
    await expectMatrix(['a>c:80', 'b>c:80'], ['a>c:80']);
    const after = await counts();
    // One accepted connection for rule 7 (its first packet; the rest bypass as established), drops for the isolation.
    expect((after.get(7) ?? 0n) - (before.get(7) ?? 0n)).toBeGreaterThanOrEqual(1n);
    expect((after.get(8) ?? 0n) - (before.get(8) ?? 0n)).toBeGreaterThanOrEqual(1n);
  }, 60_000);

  it('costs |pods| + |peers| + |ports| + 1 flows per rule, and merges clauses shared by rules into one flow', () => {
    const base = policyFlows({ round: 1, rules: [], isolations: [] }).length;
    // Peers a and c (10.10.0.2, .4): two /32s (a and b would be one /31: peers become the fewest CIDRs).
    const rule = np(1, 'Ingress', ['a', 'b', 'c'], ['a', 'c'], [{ protocol: 'TCP', port: 80 }, { protocol: 'UDP', port: 53 }]);
    expect(policyFlows({ round: 1, rules: [rule], isolations: [] }).length - base).toBe(3 + 2 + 2 + 1);
    const other = np(2, 'Ingress', ['a', 'b', 'c'], ['b'], [{ protocol: 'TCP', port: 81 }]);
    const both = policyFlows({ round: 1, rules: [rule, other], isolations: [] });
    // The three applied-to clauses are shared: 8 + (1 + 1 + 1) flows.
    expect(both.length - base).toBe(8 + 3);
    expect(both.filter((f) => f.actions.length === 2 && f.actions.every((a) => a.type === 'conjunction')).length).toBe(3);
  });

  it('leaves out a rule it cannot express (too many named-port resolutions) and reports it; the other rules stay', () => {
    const good = np(1, 'Ingress', ['a'], ['b'], [{ protocol: 'TCP', port: 80 }]);
    // 65 applied pods, each naming "web" a different port: 65 conjunctions, one more than a rule may have.
    const wide: DatapathRule = {
      ...np(2, 'Ingress', [], 'any', [{ name: 'web' }]),
      applied: Array.from({ length: 65 }, (_, i) => ({ ofport: 100 + i, namedPorts: [{ name: 'web', protocol: 'TCP' as const, port: 1000 + i }] })),
    };
    const problems: RuleProblem[] = [];
    const flows = policyFlows({ round: 1, rules: [good, wide], isolations: [] }, problems);
    expect(problems).toEqual([{ ruleId: 2, message: expect.stringContaining('65 distinct named-port resolutions') }]);
    expect(flows).toEqual(policyFlows({ round: 1, rules: [good], isolations: [] }));
  });
});
