/**
 * OpenFlow flows Seine installs on a node's br-int (`ovs-ofctl -O OpenFlow15 dump-flows unix:<rundir>/br-int.mgmt`),
 * in a 2-node VXLAN lab (so node 1 has one real peer):
 *   1. with 0 pods: base flows (cookie object 0) + 1 peer's flows;
 *   2. with N pods on node 1 (through the API, pinned by spec.nodeName): flows per pod, and by table;
 *   3. with 2 extra Node objects (no namespaces; InternalIP and podCIDR only): flows per peer node;
 *   4. back to 0 pods and the real peer only: nothing left behind.
 * The baseline is the same node with 0 pods in the same run; the figures are also checked against what
 * src/primary/pipeline builds for the same state (the flows the agent means to install).
 * Build, then: node dist/bench/primary/flows.js   (env PODS=20)
 */
import './quiet.js';
import { run } from '../../src/host/exec.js';
import { decodeCookie } from '../../src/ovs/openflow/cookie.js';
import { Lab } from '../../src/lab/lab.js';
import type { LabNode } from '../../src/lab/node.js';
import { tableName } from '../../src/primary/pipeline/tables.js';
import { baseFlows, objectKind, ObjectKind, peerFlows, podFlows, type NodeConfig } from '../../src/primary/pipeline/index.js';
import { BENCH_ROOT, benchMain, benchName, deleteAllPods, eventually, labPod, sleep, waitAgentReady, waitRunning, withCleanup } from './common.js';

const PODS = Number(process.env.PODS ?? 20);
const FAKE_PEERS = 2;

interface FlowCount {
  total: number;
  /** By cookie kind: base (object 0), pod (kind 0, object > 0), peer (kind 1), other (not Seine's pipeline). */
  base: number;
  pod: number;
  peer: number;
  other: number;
  byTable: Map<number, number>;
}

async function countFlows(node: LabNode): Promise<FlowCount> {
  const { stdout } = await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-flows', node.ovs.bridgeMgmt('br-int')], { env: node.ovs.env });
  const c: FlowCount = { total: 0, base: 0, pod: 0, peer: 0, other: 0, byTable: new Map() };
  for (const line of stdout.split('\n')) {
    const cookie = /cookie=(0x[0-9a-f]+)/.exec(line)?.[1];
    if (!cookie) continue; // the reply header
    c.total++;
    const table = Number(/table=(\d+)/.exec(line)?.[1] ?? 0);
    c.byTable.set(table, (c.byTable.get(table) ?? 0) + 1);
    const { owner, object } = decodeCookie(BigInt(cookie));
    if (owner !== 1) c.other++;
    else if (object === 0n) c.base++;
    else if (objectKind(object) === ObjectKind.nodeOrPod) c.pod++;
    else if (objectKind(object) === ObjectKind.peer) c.peer++;
    else c.other++;
  }
  return c;
}

/** The count once it satisfies `ok` and holds still for a second (the agent applies changes in batches). */
async function settledCount(node: LabNode, what: string, ok: (c: FlowCount) => boolean, timeoutMs = 60_000): Promise<FlowCount> {
  let last = -1;
  return eventually(
    what,
    async () => {
      const c = await countFlows(node);
      const stable = c.total === last && ok(c);
      last = c.total;
      return stable ? c : undefined;
    },
    timeoutMs,
    1000,
  );
}

function fakeNode(lab: Lab, i: number): Parameters<Lab['core']['createNode']>[0]['body'] {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: `${lab.plan.name}-fake${i}`, labels: { 'seine.dev/bench': 'fake-peer' } },
    spec: { podCIDR: `10.244.${200 + i}.0/24`, podCIDRs: [`10.244.${200 + i}.0/24`] },
    status: { addresses: [{ type: 'InternalIP', address: `172.28.0.${200 + i}` }] },
  };
}

async function main(): Promise<void> {
  const lab = await Lab.up({ name: benchName('bf'), nodes: 2, stateRoot: BENCH_ROOT, encap: 'vxlan' });
  await withCleanup(() => lab.down(), async () => {
    const node = lab.nodes[0]!;
    await waitAgentReady(lab, 0);
    await waitAgentReady(lab, 1);
    const idle = await settledCount(node, 'base and peer flows', (c) => c.base > 0 && c.peer > 0);

    const names = Array.from({ length: PODS }, (_, i) => `flows-${i}`);
    for (const n of names) await lab.core.createNamespacedPod({ namespace: 'default', body: labPod(n, node.plan.name) });
    await waitRunning(lab, names, 180_000);
    const loaded = await settledCount(node, `flows of ${PODS} pods`, (c) => c.pod > 0);

    for (let i = 1; i <= FAKE_PEERS; i++) await lab.core.createNode({ body: fakeNode(lab, i) });
    const peered = await settledCount(node, `flows of ${1 + FAKE_PEERS} peers`, (c) => c.peer > idle.peer);
    for (let i = 1; i <= FAKE_PEERS; i++) await lab.core.deleteNode({ name: `${lab.plan.name}-fake${i}` });
    await deleteAllPods(lab, 180_000);
    await sleep(1000);
    const after = await settledCount(node, 'flows back to idle', (c) => c.pod === 0 && c.peer === idle.peer, 30_000).catch(() => undefined);
    const afterNow = after ?? (await countFlows(node));

    // What the pipeline module builds for the same state (addresses do not change the counts).
    const cfg: NodeConfig = { mode: 'encap', round: 1, gatewayOfport: 2, tunnelOfport: 1, gatewayIp: '10.244.0.1', gatewayMac: '0a:00:ac:1c:00:0b', podCidr: '10.244.0.0/24', clusterCidr: '10.244.0.0/16' };
    const expected = {
      base: baseFlows(cfg).length,
      pod: podFlows(cfg, { ofport: 3, ip: '10.244.0.2', mac: '02:00:00:00:00:02' }).length,
      peer: peerFlows(cfg, { index: 2, nodeIp: '172.28.0.12', podCidr: '10.244.1.0/24', gatewayIp: '10.244.1.1' }).length,
    };
    const perPod = (loaded.total - idle.total) / PODS;
    const perPeer = (peered.total - loaded.total) / FAKE_PEERS;
    const check = (measured: number, want: number): string => (measured === want ? `= ${want} built by the pipeline` : `pipeline builds ${want}: MISMATCH`);
    const tables = (a: FlowCount, b: FlowCount): string =>
      [...new Set([...a.byTable.keys(), ...b.byTable.keys()])]
        .sort((x, y) => x - y)
        .map((t) => [t, ((b.byTable.get(t) ?? 0) - (a.byTable.get(t) ?? 0)) / PODS] as const)
        .filter(([, d]) => d !== 0)
        .map(([t, d]) => `${tableName(t) ?? t} ${d}`)
        .join(', ');

    console.log(`Lab ${lab.plan.name}: 2 nodes, VXLAN; counting br-int of ${node.plan.name}`);
    console.log(`- 0 pods, 1 peer:            ${String(idle.total).padStart(4)} flows  (base ${idle.base} ${check(idle.base, expected.base)}; peer ${idle.peer}; other owners ${idle.other})  [baseline]`);
    console.log(`- ${PODS} pods, 1 peer:           ${String(loaded.total).padStart(4)} flows  (${(loaded.total / idle.total).toFixed(2)}x the baseline)`);
    console.log(`    flows per pod:    ${perPod.toFixed(2)}  (${check(perPod, expected.pod)}; by table: ${tables(idle, loaded)})`);
    console.log(`- ${PODS} pods, ${1 + FAKE_PEERS} peers:          ${String(peered.total).padStart(4)} flows`);
    console.log(`    flows per peer:   ${perPeer.toFixed(2)}  (${check(perPeer, expected.peer)}; the 1 real peer has ${idle.peer})`);
    console.log(`- pods deleted, fake peers removed: ${afterNow.total} flows (${afterNow.total === idle.total ? 'back to the baseline' : `LEFT BEHIND: ${afterNow.total - idle.total} (pod ${afterNow.pod}, peer ${afterNow.peer - idle.peer})`})`);
    console.log(`=> a node with P pods and K peers holds ${idle.base} + ${perPod.toFixed(0)}·P + ${perPeer.toFixed(0)}·K flows on br-int; e.g. 110 pods, 49 peers: ${idle.base + perPod * 110 + perPeer * 49}`);
  });
}

await benchMain('Seine flows on br-int: base, per pod, per peer node', main);
