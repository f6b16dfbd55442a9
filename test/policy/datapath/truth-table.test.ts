// The whole policy path on one real bridge, checked against the policy model's own verdicts: NetworkPolicies and
// ClusterNetworkPolicies are compiled, computed into the node's share, resolved and installed; then every pair of
// the standard model's 9 pods (namespaces x, y, z; pods a, b, c) tries a TCP connection on each port, all at once,
// and the pairs that connect must be exactly those the model allows.
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { run } from '../../../src/host/exec.js';
import { addFlow, FlowWriter } from '../../../src/ovs/openflow/index.js';
import type { ClusterNetworkPolicy } from '../../../src/policy/api/clusternetworkpolicy.js';
import { resolveShare, RuleIds } from '../../../src/policy/agent/resolve.js';
import { PolicyComputation, type PolicyPod } from '../../../src/policy/controller/compute.js';
import { policySync } from '../../../src/policy/datapath/flows.js';
import { compileClusterNetworkPolicy } from '../../../src/policy/model/clusternetworkpolicy.js';
import { connectionVerdict, type World } from '../../../src/policy/model/evaluate.js';
import { compileNetworkPolicy } from '../../../src/policy/model/networkpolicy.js';
import type { Compiled, PodGroupSpec } from '../../../src/policy/model/types.js';
import { pipelineFlows } from '../../../src/primary/pipeline/index.js';
import { OvsSandbox, SANDBOX_NODE, type SandboxPod } from '../../harness/sandbox.js';

const BR = 'br-int';
const NODE = 'n1';
const PORTS = [80, 81, 8080];
const NAMESPACES = ['x', 'y', 'z'];
const NAMES = ['a', 'b', 'c'];

interface ModelPod extends PolicyPod {
  sandbox: SandboxPod;
  ofport: number;
}

describe('policy truth tables on a real bridge (9 pods, one node)', () => {
  let sb: OvsSandbox;
  let w: FlowWriter;
  const pods: ModelPod[] = [];

  beforeAll(async () => {
    sb = await OvsSandbox.start();
    await sb.addBridge(BR);
    await sb.ovs.vsctl(['add-port', BR, 'gw0', '--', 'set', 'interface', 'gw0', 'type=internal', `ofport_request=${SANDBOX_NODE.gatewayOfport}`, `mac="${SANDBOX_NODE.gatewayMac}"`]);
    let i = 0;
    for (const ns of NAMESPACES) {
      for (const name of NAMES) {
        const n = i++;
        const sandbox = await sb.addPod(`10.10.0.${n + 10}/24`);
        const ofport = n + 10;
        await sb.ovs.vsctl(['add-port', BR, sandbox.hostIf, '--', 'set', 'interface', sandbox.hostIf, `ofport_request=${ofport}`]);
        // The a pods name their 8080 "web".
        pods.push({ uid: `${ns}-${name}`, namespace: ns, name, labels: { pod: name }, ip: sandbox.addr, node: NODE, namedPorts: name === 'a' ? [{ name: 'web', protocol: 'TCP', port: 8080 }] : [], sandbox, ofport });
        await sb.startTcpServers(sandbox, PORTS);
      }
    }
    w = FlowWriter.forBridge(sb.ovs, BR);
    await w.submit(pipelineFlows({ node: SANDBOX_NODE, pods: pods.map((p) => ({ ofport: p.ofport, ip: p.ip, mac: p.sandbox.mac })), peers: [] }).map(addFlow));
  }, 120_000);

  afterAll(async () => {
    await sb?.close();
  });

  const ids = new RuleIds();

  /** Computes and installs the policies; returns the model's world for the verdicts. */
  async function enforce(nps: V1NetworkPolicy[], cnps: ClusterNetworkPolicy[]): Promise<World> {
    const c = new PolicyComputation();
    for (const ns of NAMESPACES) c.upsertNamespace(ns, { ns });
    for (const p of pods) c.upsertPod(p);
    const compiled: Compiled[] = [...nps.map(compileNetworkPolicy), ...cnps.map(compileClusterNetworkPolicy)];
    const groups = new Map<string, PodGroupSpec>();
    for (const x of compiled) {
      c.upsertPolicy(x.policy, x.groups);
      for (const [k, g] of x.groups) groups.set(k, g);
    }
    c.drain();
    const share = {
      policies: c.policiesOf(NODE).map((policy) => ({ policy, pods: c.appliedOn(policy.ref.uid, NODE) })),
      groups: c.peerGroupsOf(NODE),
    };
    const ofports = new Map(pods.map((p) => [p.uid, p.ofport]));
    await w.sync(policySync(resolveShare(share, (uid) => (ofports.has(uid) ? [ofports.get(uid)!] : []), ids, 1)));
    return { pods, namespaceLabels: new Map(NAMESPACES.map((n) => [n, { ns: n }])), policies: compiled.map((x) => x.policy), groups };
  }

  /**
   * Every pair's connection on `port`, all at once: the pairs that connected, and those the model allows. Pairs
   * that disagree are tried twice more with a longer wait (a busy machine may be slow to open a connection that
   * should open; one that should be dropped never opens).
   */
  async function truthTable(world: World, port: number): Promise<{ actual: string[]; expected: string[] }> {
    const pairs = pods.flatMap((s) => pods.map((d) => ({ s, d, label: `${s.uid}>${d.uid}`, allowed: connectionVerdict(world, { pod: s }, { pod: d }, 'TCP', port).allowed })));
    const probe = (s: ModelPod, d: ModelPod, waitS: number): Promise<boolean> =>
      run('nc', ['-z', '-w', String(waitS), d.ip, String(port)], { netns: s.sandbox.netns, timeoutMs: 30_000 }).then(() => true, () => false);
    const results = await Promise.all(pairs.map(({ s, d }) => probe(s, d, 3)));
    for (let retry = 0; retry < 2; retry++) {
      await Promise.all(pairs.map(async (p, i) => {
        if (results[i] !== p.allowed) results[i] = await probe(p.s, p.d, 5);
      }));
    }
    return { actual: pairs.filter((_, i) => results[i]).map((p) => p.label), expected: pairs.filter((p) => p.allowed).map((p) => p.label) };
  }

  async function check(nps: V1NetworkPolicy[], cnps: ClusterNetworkPolicy[], ports = PORTS): Promise<void> {
    const world = await enforce(nps, cnps);
    for (const port of ports) {
      const t = await truthTable(world, port);
      expect({ port, connected: t.actual }).toEqual({ port, connected: t.expected });
    }
  }

  const np = (ns: string, name: string, spec: V1NetworkPolicy['spec']): V1NetworkPolicy => ({ metadata: { namespace: ns, name, uid: `np-${ns}-${name}` }, spec });
  const cnp = (name: string, spec: ClusterNetworkPolicy['spec']): ClusterNetworkPolicy => ({ metadata: { name, uid: `cnp-${name}` }, spec });

  it('NetworkPolicy: isolation, peers by pod and namespace (AND and OR), ports and named ports', async () => {
    await check(
      [
        // x: only y's pods, and x's own b, may reach x/a, on 80 or its "web" port.
        np('x', 'web', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ _from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }, { podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 80 }, { port: 'web' }] }] }),
        // z: nothing gets in; z/c may only reach a pods' "web" port.
        np('z', 'deny', { podSelector: {}, policyTypes: ['Ingress'] }),
        np('z', 'egress', { podSelector: { matchLabels: { pod: 'c' } }, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: {}, podSelector: { matchLabels: { pod: 'a' } } }], ports: [{ port: 'web' }] }] }),
        // y/b may go anywhere, but only to 81 or to a pod's "web" port.
        np('y', 'egress-anywhere', { podSelector: { matchLabels: { pod: 'b' } }, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'web' }, { port: 81 }] }] }),
      ],
      [],
    );
  }, 180_000);

  it('ClusterNetworkPolicy: Admin before NetworkPolicy, Pass, Baseline for pods no NetworkPolicy selects', async () => {
    await check(
      [np('x', 'y-only', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ _from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] })],
      [
        cnp('admin-pass-y', { tier: 'Admin', priority: 1, subject: { namespaces: {} }, ingress: [{ action: 'Pass', from: [{ pods: { namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } } }] }] }),
        cnp('admin-deny-y', { tier: 'Admin', priority: 2, subject: { namespaces: { matchLabels: { ns: 'x' } } }, ingress: [{ action: 'Deny', from: [{ namespaces: { matchLabels: { ns: 'y' } } }], protocols: [{ tcp: { destinationPort: { range: { start: 80, end: 81 } } } }] }] }),
        cnp('baseline-z', { tier: 'Baseline', priority: 10, subject: { namespaces: { matchLabels: { ns: 'z' } } }, ingress: [{ action: 'Deny', from: [{ namespaces: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['z'] }] } }] }] }),
      ],
      [80, 8080],
    );
  }, 180_000);
});
