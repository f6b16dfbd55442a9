/**
 * The controller's policy computation at the scale of Antrea's published case (its
 * TestInitXLargeScaleWithSmallNamespaces: 25,000 namespaces, each with 4 pods and 3 NetworkPolicies: a default
 * deny-all and two that admit pods of the same label; pods on 1,000 nodes). Fed in-process, from objects built
 * before the clock starts: compile, compute groups and spans, and produce every node's share as the messages it
 * would be sent (JSON). Prints the time and the peak memory (V8 heap in use, sampled every 100 ms, as Antrea samples Go's heap,
 * and the process's peak RSS) against Antrea's figures (5.84-6.42 s, 1522-1708 MB) and the goals (under 5 s and
 * 1.5 GB). Build, then: node --expose-gc dist/bench/policy/compute.js   (env NAMESPACES=25000 NODES=1000)
 */
import type { V1Namespace, V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { PolicyComputation } from '../../src/policy/controller/compute.js';
import { NodeShares } from '../../src/policy/controller/shares.js';
import { compileNetworkPolicy } from '../../src/policy/model/networkpolicy.js';
import { benchMain } from '../primary/common.js';

const NAMESPACES = Number(process.env.NAMESPACES ?? 25_000);
const NODES = Number(process.env.NODES ?? 1000);
const MB = 1024 * 1024;

export interface Inputs {
  namespaces: V1Namespace[];
  pods: V1Pod[];
  policies: V1NetworkPolicy[];
}

/** Antrea's scale case as API objects: every namespace with its 4 pods (on random nodes) and 3 NetworkPolicies. */
export function inputs(namespaces = NAMESPACES, nodes = NODES): Inputs {
  const out: Inputs = { namespaces: [], pods: [], policies: [] };
  const rnd = (n: number): number => Math.floor(Math.random() * n);
  for (let i = 0; i < namespaces; i++) {
    const ns = `ns-${i.toString(36)}-${rnd(1e6).toString(36)}`;
    out.namespaces.push({ metadata: { name: ns, labels: { app: ns } } });
    const policy = (name: string, selector: Record<string, string> | undefined): V1NetworkPolicy => ({
      metadata: { namespace: ns, name, uid: randomUUID() },
      spec: {
        podSelector: selector ? { matchLabels: selector } : {},
        policyTypes: ['Ingress', 'Egress'],
        ...(selector ? { ingress: [{ _from: [{ podSelector: { matchLabels: selector } }] }] } : {}),
      },
    });
    out.policies.push(policy('default-deny-all', undefined), policy('np-1', { 'app-1': 'scale-1' }), policy('np-2', { 'app-2': 'scale-2' }));
    const labels: Array<Record<string, string>> = [{ 'app-1': 'scale-1' }, { 'app-1': 'scale-1' }, { 'app-2': 'scale-2' }, { 'app-2': 'scale-2' }];
    labels.forEach((l, j) =>
      out.pods.push({
        metadata: { namespace: ns, name: `pod${j + 1}`, uid: randomUUID(), labels: l },
        spec: { nodeName: `node-${rnd(nodes)}`, containers: [] },
        status: { podIP: `${rnd(256)}.${rnd(256)}.${rnd(256)}.${rnd(256)}` },
      }),
    );
  }
  return out;
}

async function main(): Promise<void> {
  const built = inputs();
  (globalThis as { gc?: () => void }).gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  let peakHeap = heapBefore;
  let peakRss = process.memoryUsage().rss;
  const sample = (): void => {
    const m = process.memoryUsage();
    peakHeap = Math.max(peakHeap, m.heapUsed);
    peakRss = Math.max(peakRss, m.rss);
  };
  const sampler = setInterval(sample, 100);
  const t0 = process.hrtime.bigint();
  const c = new PolicyComputation();
  // Let the sampler run now and then: the computation is synchronous.
  const yieldEvery = async (i: number): Promise<void> => {
    if (i % 5000 === 0) await new Promise((r) => setImmediate(r));
  };
  for (const ns of built.namespaces) c.upsertNamespace(ns.metadata!.name!, ns.metadata!.labels ?? {});
  let i = 0;
  for (const p of built.pods) {
    c.upsertPod({ uid: p.metadata!.uid!, namespace: p.metadata!.namespace!, name: p.metadata!.name!, labels: p.metadata!.labels ?? {}, ip: p.status!.podIP!, node: p.spec!.nodeName!, namedPorts: [] });
    await yieldEvery(++i);
  }
  for (const np of built.policies) {
    const compiled = compileNetworkPolicy(np);
    c.upsertPolicy(compiled.policy, compiled.groups);
    await yieldEvery(++i);
  }
  const { nodes } = c.drain();
  const tComputed = process.hrtime.bigint();
  // Every node's share as the messages it would be sent, encoded.
  const shares = new NodeShares(c);
  let bytes = 0;
  let messagesSent = 0;
  for (const node of nodes) {
    const share = shares.snapshot(node);
    messagesSent += share.count;
    bytes += share.json.length;
    await yieldEvery(++i);
  }
  const t1 = process.hrtime.bigint();
  sample();
  clearInterval(sampler);
  const s = (a: bigint, b: bigint): number => Number(b - a) / 1e9;
  const total = s(t0, t1);
  console.log(`inputs: ${built.namespaces.length} namespaces, ${built.pods.length} pods, ${built.policies.length} NetworkPolicies, ${NODES} nodes`);
  console.log(`computed: ${c.size.groups} groups; ${nodes.size} nodes, ${messagesSent} messages (policies and groups) sent in all, ${(bytes / MB).toFixed(1)} MB of node shares as JSON`);
  console.log(`time: ${total.toFixed(2)} s (groups and spans ${s(t0, tComputed).toFixed(2)} s, node shares ${s(tComputed, t1).toFixed(2)} s)` +
    `  vs Antrea 5.84-6.42 s: ${(total / 5.84).toFixed(2)}x its best; goal under 5 s: ${total < 5 ? 'met' : 'not met'}`);
  const heapMb = peakHeap / MB;
  console.log(`peak memory: V8 heap ${heapMb.toFixed(0)} MB (${((peakHeap - heapBefore) / MB).toFixed(0)} MB above the inputs alone), RSS ${(peakRss / MB).toFixed(0)} MB` +
    `  vs Antrea 1522-1708 MB (Go heap): ${(heapMb / 1522).toFixed(2)}x its best; goal under 1.5 GB: ${peakRss < 1.5 * 1024 * MB ? 'met' : 'not met'}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await benchMain('Seine policy computation at Antrea\'s scale case (in-process)', main);
