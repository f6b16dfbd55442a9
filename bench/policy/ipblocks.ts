/**
 * One NetworkPolicy with 10,000 ipBlock /32 peers (scattered addresses, so no two merge into a wider block) on a
 * private OVS: from the policy object to every flow installed (compile, compute, the node's share, resolve, flows,
 * one atomic sync), against the goal (under 500 ms; Antrea, informally: 5,000 CIDRs in 376 ms) and, in the same
 * run, against installing as many plain flows in one bundle. Then a change of one peer (the sync's diff).
 * Build, then: node dist/bench/policy/ipblocks.js   (env PEERS=10000)
 */
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { pathToFileURL } from 'node:url';
import { run } from '../../src/host/exec.js';
import type { OvsDaemons } from '../../src/ovs/daemons.js';
import { CookieOwner, makeCookie, ownerSelector } from '../../src/ovs/openflow/cookie.js';
import { FlowWriter } from '../../src/ovs/openflow/writer.js';
import { resolveShare, RuleIds } from '../../src/policy/agent/resolve.js';
import { PolicyComputation } from '../../src/policy/controller/compute.js';
import { policySync } from '../../src/policy/datapath/flows.js';
import { POLICY_TABLES } from '../../src/policy/datapath/layout.js';
import { compileNetworkPolicy } from '../../src/policy/model/networkpolicy.js';
import { withPrivateOvs } from '../ovs/private-ovs.js';
import { benchMain } from '../primary/common.js';

const PEERS = Number(process.env.PEERS ?? 10_000);
const BRIDGE = 'br-int';
const NODE = 'node-1';

/** PEERS distinct addresses, every other one, so no two are neighbours. */
function peers(shift = 0): string[] {
  return Array.from({ length: PEERS }, (_, i) => {
    const n = 2 * (i + shift) + 1;
    return `172.${16 + ((n >> 16) & 15)}.${(n >> 8) & 255}.${n & 255}/32`;
  });
}

function policy(cidrs: string[]): V1NetworkPolicy {
  return {
    metadata: { namespace: 'x', name: 'many-peers', uid: 'u-many-peers' },
    spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ _from: cidrs.map((cidr) => ({ ipBlock: { cidr } })), ports: [{ port: 80 }] }] },
  };
}

interface Enforced {
  computeMs: number;
  /** Where the computation's time went: compile, compute + the node's share, resolve, flows (ms). */
  split: { compile: number; share: number; resolve: number; flows: number };
  installMs: number;
  changes: number;
}

const splitText = (s: Enforced['split']): string =>
  `compile ${s.compile.toFixed(1)} ms, compute + share ${s.share.toFixed(1)} ms, resolve ${s.resolve.toFixed(1)} ms, flows ${s.flows.toFixed(1)} ms`;

async function tableCount(ovs: OvsDaemons, table: number): Promise<number> {
  const { stdout } = await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-aggregate', ovs.bridgeMgmt(BRIDGE), `table=${table}`], { env: ovs.env });
  return Number(/flow_count=(\d+)/.exec(stdout)?.[1] ?? NaN);
}

async function bench(ovs: OvsDaemons): Promise<void> {
  const writer = FlowWriter.forBridge(ovs, BRIDGE);
  const c = new PolicyComputation();
  c.upsertNamespace('x', {});
  c.upsertPod({ uid: 'web', namespace: 'x', name: 'web', labels: { app: 'web' }, ip: '10.0.0.2', node: NODE, namedPorts: [] });
  const ids = new RuleIds();
  const ofport = (): number[] => [5];

  // Baseline, same run: as many plain flows in one bundle, then removed.
  const plain = peers().map((nw_src, i) => ({ table: 200, priority: 100, cookie: makeCookie(CookieOwner.primary, 1, i + 1), match: { protocol: 'ip' as const, nw_src }, actions: [] }));
  const t0 = performance.now();
  await writer.sync({ cookie: ownerSelector(CookieOwner.primary), flows: plain });
  const baselineMs = performance.now() - t0;
  await writer.sync({ cookie: ownerSelector(CookieOwner.primary), flows: [] });

  const enforce = async (np: V1NetworkPolicy): Promise<Enforced> => {
    const t = performance.now();
    const compiled = compileNetworkPolicy(np);
    const tCompiled = performance.now();
    c.upsertPolicy(compiled.policy, compiled.groups);
    c.drain();
    const share = { policies: c.policiesOf(NODE).map((policy) => ({ policy, pods: c.appliedOn(policy.ref.uid, NODE) })), groups: c.peerGroupsOf(NODE) };
    const tShared = performance.now();
    const state = resolveShare(share, ofport, ids, 1);
    const tResolved = performance.now();
    const sync = policySync(state);
    const computed = performance.now();
    const result = await writer.sync(sync);
    const split = { compile: tCompiled - t, share: tShared - tCompiled, resolve: tResolved - tShared, flows: computed - tResolved };
    return { computeMs: computed - t, split, installMs: performance.now() - computed, changes: result.changes.length };
  };

  const first = await enforce(policy(peers()));
  const flows = await tableCount(ovs, POLICY_TABLES.Ingress.networkPolicy);
  if (flows < PEERS) throw new Error(`only ${flows} flows in the NetworkPolicy ingress table`);
  // One peer replaced by another.
  const changed = peers();
  changed[0] = '192.0.2.1/32';
  const second = await enforce(policy(changed));
  const total = first.computeMs + first.installMs;
  console.log(`one NetworkPolicy with ${PEERS.toLocaleString('en-US')} ipBlock /32 peers, one pod, TCP 80: ${flows.toLocaleString('en-US')} flows in the ingress NetworkPolicy table`);
  console.log(`  create -> every flow installed: ${total.toFixed(0)} ms (computation ${first.computeMs.toFixed(0)} ms, one atomic sync ${first.installMs.toFixed(0)} ms, ${first.changes} changes); goal under 500 ms: ${total < 500 ? 'met' : 'not met'}`);
  console.log(`  baseline, same run: ${PEERS.toLocaleString('en-US')} plain flows in one sync ${baselineMs.toFixed(0)} ms (policy path ${(total / baselineMs).toFixed(2)}x)`);
  console.log(`  one peer changed: ${(second.computeMs + second.installMs).toFixed(0)} ms (computation ${second.computeMs.toFixed(0)} ms, sync ${second.installMs.toFixed(0)} ms, ${second.changes} changes)`);
  console.log(`  computation split, create: ${splitText(first.split)}`);
  console.log(`  computation split, one peer changed: ${splitText(second.split)}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await benchMain('Seine policy flows: one policy with many ipBlock peers on a private OVS', () => withPrivateOvs(BRIDGE, bench));
