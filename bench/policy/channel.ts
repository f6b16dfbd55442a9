/**
 * The policy channel at Antrea's scale case (the generator of compute.ts: 25,000 namespaces, 100,000 pods, 75,000
 * NetworkPolicies, 1,000 nodes), against the alternative of one custom resource per computed object:
 *   - the stream: bytes and time to encode every node's snapshot (NodeShares.snapshot), and typical updates (one
 *     policy changed, one pod added) as the lines the share server writes;
 *   - custom resources, in two layouts: one object per computed policy (with its span) and per group, which every
 *     agent watches (each receives every object), or one object per policy and node and per peer group and node,
 *     which each agent watches with its node's label selector (each receives its own);
 *   - the lab API server, in a process of its own: the rate at which it accepts such objects (created through
 *     client-node, sizes sampled from the real computed objects) and the bytes a watch receives per object, which
 *     turn the counts above into write time and bytes on the wire.
 * Build, then: node dist/bench/policy/channel.js   (env NAMESPACES=25000 NODES=1000 WRITES=3000 IN_FLIGHT=16)
 */
import { ApiextensionsV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { Agent, get, request, type RequestOptions } from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ResourceLedger } from '../../src/host/ledger.js';
import { ApiServer } from '../../src/lab/apiserver/index.js';
import { policyPod } from '../../src/policy/controller/controller.js';
import { PolicyComputation } from '../../src/policy/controller/compute.js';
import { NodeShares, type ShareMessage } from '../../src/policy/controller/shares.js';
import { compileNetworkPolicy } from '../../src/policy/model/networkpolicy.js';
import { BENCH_ROOT, benchMain, eventually, withCleanup } from '../primary/common.js';
import { inputs } from './compute.js';

const NAMESPACES = Number(process.env.NAMESPACES ?? 25_000);
const NODES = Number(process.env.NODES ?? 1000);
/** Objects created against the API server to measure its write rate. */
const WRITES = Number(process.env.WRITES ?? 3000);
const IN_FLIGHT = Number(process.env.IN_FLIGHT ?? 16);
/** Policies changed (one at a time) for the typical update. */
const UPDATES = 100;

const GROUP = 'bench.seine.dev';
const PLURAL = 'computedobjects';
const NODE_LABEL = 'bench.seine.dev/node';
const MB = 1024 * 1024;

/** A line of the stream as the share server writes it around its messages. */
const lineBytes = (kind: 'snapshot' | 'update', messagesJson: string): number => Buffer.byteLength(`{"type":"${kind}","messages":${messagesJson}}\n`);

interface Layout {
  objects: number;
  /** Bytes of the objects' specs. */
  specBytes: number;
}

interface UpdateFigures {
  nodes: number;
  streamBytes: number;
  encodeMs: number;
  /** One object per computed object: distinct objects rewritten, and their spec bytes. */
  cluster: Layout;
  /** One object per computed object and node: a write per message. */
  perNode: Layout;
}

/** Spec bytes of a computed object as the cluster-wide layout would store it. */
function clusterPolicySpec(c: PolicyComputation, uid: string): number {
  return Buffer.byteLength(JSON.stringify({ policy: c.policy(uid), span: [...c.spanOf(uid)] }));
}
function clusterGroupSpec(c: PolicyComputation, key: string): number {
  return Buffer.byteLength(JSON.stringify({ members: c.groupMembers(key).map((p) => ({ uid: p.uid, ip: p.ip, node: p.node, namedPorts: p.namedPorts })) }));
}

/** What one burst of changes costs in each design: the stream's updates, and the objects each layout would rewrite. */
function measureUpdate(c: PolicyComputation, shares: NodeShares): UpdateFigures {
  const t = performance.now();
  const { nodes } = c.drain();
  const encoded = [...nodes].map((n) => shares.update(n));
  const encodeMs = performance.now() - t;
  const out: UpdateFigures = { nodes: 0, streamBytes: 0, encodeMs, cluster: { objects: 0, specBytes: 0 }, perNode: { objects: 0, specBytes: 0 } };
  const policies = new Set<string>();
  const groups = new Set<string>();
  for (const e of encoded) {
    if (!e.count) continue;
    out.nodes++;
    out.streamBytes += lineBytes('update', e.json);
    for (const m of JSON.parse(e.json) as ShareMessage[]) {
      out.perNode.objects++;
      out.perNode.specBytes += 'value' in m && m.value ? Buffer.byteLength(JSON.stringify(m.value)) : 0;
      if (m.kind === 'policy') policies.add(m.uid);
      if (m.kind === 'group') groups.add(m.key);
    }
  }
  // A pod list per node has no cluster-wide object: its pods' groups carry that.
  for (const uid of policies) out.cluster.specBytes += c.policy(uid) ? clusterPolicySpec(c, uid) : 0;
  for (const key of groups) out.cluster.specBytes += clusterGroupSpec(c, key);
  out.cluster.objects = policies.size + groups.size;
  return out;
}

/** One batch of creates: how long, and the CPU the server and this process spent meanwhile. */
interface CreateRun {
  created: number;
  createMs: number;
  /** From the first create to the batch's last watch event received. */
  watchedMs: number;
  serverCpuS: number;
  clientCpuS: number;
}

interface ApiFigures {
  clientNode: CreateRun;
  /** The same objects over plain HTTPS with kept-alive connections: the server's own pace. */
  plain: CreateRun;
  /** Spec bytes of one batch, and the bytes one watcher received for both (the ADDED events as sent). */
  specBytes: number;
  watchBytes: number;
}

/** User + system CPU seconds of a process so far (clock ticks of /proc/PID/stat, 100 per second on Linux). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Runs as a child process: the lab's API server, its kubeconfig in `dir`, "ready" on stdout once it serves. */
async function serveApi(dir: string): Promise<void> {
  const api = await ApiServer.start({ dataFile: join(dir, 'apiserver.json') });
  api.writeKubeconfig(join(dir, 'kubeconfig'));
  process.once('SIGTERM', () => void api.close().finally(() => process.exit(0)));
  process.stdout.write('ready\n');
}

/** Starts the API server child (recorded in the ledger), resolves with its kubeconfig once it serves. */
async function startApiChild(ledger: ResourceLedger): Promise<{ kc: KubeConfig; pid: number }> {
  const child = spawn(process.execPath, [process.argv[1]!, '--serve-api', ledger.dir], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SEINE_LOG_LEVEL: 'error' } });
  ledger.process(child.pid!, 'lab API server (channel bench)');
  await new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (l) => l === 'ready' && resolve());
    child.once('exit', (code) => reject(new Error(`the API server child exited (${code}) before serving`)));
  });
  const kc = new KubeConfig();
  kc.loadFromFile(join(ledger.dir, 'kubeconfig'));
  return { kc, pid: child.pid! };
}

/** Bytes and events of one watch on the bench's objects, counted as they arrive. */
async function watchBytes(kc: KubeConfig): Promise<{ bytes: () => number; events: () => number; lastAt: () => number; close: () => void }> {
  const cluster = kc.getCurrentCluster()!;
  const url = new URL(`${cluster.server}/apis/${GROUP}/v1/${PLURAL}?watch=1`);
  const opts: Parameters<typeof get>[1] = { hostname: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, headers: {} };
  await kc.applyToHTTPSOptions(opts);
  let bytes = 0;
  let events = 0;
  let lastAt = 0;
  let tail = '';
  const req = get(opts, (res) => {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      bytes += Buffer.byteLength(chunk);
      const text = tail + chunk;
      const parts = text.split('\n');
      tail = parts.pop()!;
      for (const p of parts) {
        if (!p.startsWith('{"type":"ADDED"')) continue;
        events++;
        lastAt = performance.now();
      }
    });
  });
  req.on('error', () => undefined);
  await new Promise((r) => setTimeout(r, 200));
  return { bytes: () => bytes, events: () => events, lastAt: () => lastAt, close: () => req.destroy() };
}

/** A ComputedObject for spec i (per-node layout: named after and labelled with a node). */
const computedObject = (spec: unknown, i: number): object => ({
  apiVersion: `${GROUP}/v1`,
  kind: 'ComputedObject',
  metadata: { name: `${randomUUID()}.node-${i % NODES}`, labels: { [NODE_LABEL]: `node-${i % NODES}` } },
  spec,
});

/** POSTs of JSON bodies over kept-alive HTTPS connections, authenticated as the kubeconfig says. */
async function plainCreator(kc: KubeConfig, path: string): Promise<{ create: (body: object) => Promise<void>; close: () => void }> {
  const base: RequestOptions = {};
  await kc.applyToHTTPSOptions(base);
  const server = new URL(kc.getCurrentCluster()!.server);
  const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT, ca: base.ca });
  const create = (body: object): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = request({ ...base, agent, hostname: server.hostname, port: server.port, path, method: 'POST', headers: { ...base.headers, 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`create: HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
  return { create, close: () => agent.destroy() };
}

/** Creates one object per spec with IN_FLIGHT requests outstanding, until the watch has seen them all. */
async function createBatch(pid: number, watch: Awaited<ReturnType<typeof watchBytes>>, specs: readonly unknown[], create: (body: object) => Promise<unknown>): Promise<CreateRun> {
  const seenBefore = watch.events();
  let next = 0;
  const server0 = cpuSeconds(pid);
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < specs.length) {
        const i = next++;
        await create(computedObject(specs[i], i));
      }
    }),
  );
  const createMs = performance.now() - t0;
  const serverCpuS = cpuSeconds(pid) - server0;
  const client = process.cpuUsage(client0);
  await eventually('every object seen by the watch', async () => (watch.events() >= seenBefore + specs.length ? true : undefined), 60_000, 20);
  return { created: specs.length, createMs, watchedMs: watch.lastAt() - t0, serverCpuS, clientCpuS: (client.user + client.system) / 1e6 };
}

/** The bench CRD, then the objects created through client-node, then again over plain kept-alive HTTPS. */
async function apiWrites({ kc, pid }: { kc: KubeConfig; pid: number }, specs: readonly unknown[]): Promise<ApiFigures> {
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  await ext.createCustomResourceDefinition({
    body: {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: `${PLURAL}.${GROUP}` },
      spec: {
        group: GROUP,
        scope: 'Cluster',
        names: { plural: PLURAL, singular: 'computedobject', kind: 'ComputedObject' },
        versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', x_kubernetes_preserve_unknown_fields: true } } } } }],
      },
    },
  });
  await eventually('the bench CRD served', async () => (await custom.listClusterCustomObject({ group: GROUP, version: 'v1', plural: PLURAL }).then(() => true, () => undefined)), 10_000, 50);
  const watch = await watchBytes(kc);
  const plain = await plainCreator(kc, `/apis/${GROUP}/v1/${PLURAL}`);
  try {
    const clientNode = await createBatch(pid, watch, specs, (body) => custom.createClusterCustomObject({ group: GROUP, version: 'v1', plural: PLURAL, body }));
    const plainRun = await createBatch(pid, watch, specs, plain.create);
    const specBytes = specs.reduce<number>((s, x) => s + Buffer.byteLength(JSON.stringify(x)), 0);
    return { clientNode, plain: plainRun, specBytes, watchBytes: watch.bytes() };
  } finally {
    plain.close();
    watch.close();
  }
}

async function main(): Promise<void> {
  const built = inputs(NAMESPACES, NODES);
  const c = new PolicyComputation();
  for (const ns of built.namespaces) c.upsertNamespace(ns.metadata!.name!, ns.metadata!.labels ?? {});
  for (const p of built.pods) c.upsertPod(policyPod(p)!);
  for (const np of built.policies) {
    const compiled = compileNetworkPolicy(np);
    c.upsertPolicy(compiled.policy, compiled.groups);
  }
  const { nodes } = c.drain();
  const shares = new NodeShares(c);
  console.log(`inputs: ${built.namespaces.length} namespaces, ${built.pods.length} pods, ${built.policies.length} NetworkPolicies on ${nodes.size} nodes; ${c.size.groups} groups`);

  // The stream: every node's snapshot, encoded and framed as the share server sends it.
  const t0 = performance.now();
  const snapshots = [...nodes].map((n) => shares.snapshot(n));
  const snapshotMs = performance.now() - t0;
  const snapshotBytes = snapshots.reduce((s, e) => s + lineBytes('snapshot', e.json), 0);
  const messages = snapshots.reduce((s, e) => s + e.count, 0);

  // Per-node layout: a custom resource per message; a sample of their specs for the API server.
  const perNode: Layout = { objects: 0, specBytes: 0 };
  const sample: unknown[] = [];
  let seen = 0;
  for (const e of snapshots) {
    for (const m of JSON.parse(e.json) as ShareMessage[]) {
      if (!('value' in m) || !m.value) continue;
      perNode.objects++;
      perNode.specBytes += Buffer.byteLength(JSON.stringify(m.value));
      // Reservoir sampling: WRITES specs drawn evenly from every object.
      seen++;
      if (sample.length < WRITES) sample.push(m.value);
      else if (Math.random() * seen < WRITES) sample[Math.floor(Math.random() * WRITES)] = m.value;
    }
  }
  // Cluster-wide layout: a custom resource per computed policy and per group.
  const cluster: Layout = { objects: 0, specBytes: 0 };
  const groupKeys = new Set<string>();
  for (const np of built.policies) {
    const uid = np.metadata!.uid!;
    const policy = c.policy(uid)!;
    cluster.objects++;
    cluster.specBytes += clusterPolicySpec(c, uid);
    groupKeys.add(policy.appliedTo);
    for (const r of policy.rules) for (const g of r.peers.groups) groupKeys.add(g);
  }
  for (const key of groupKeys) {
    cluster.objects++;
    cluster.specBytes += clusterGroupSpec(c, key);
  }

  // Typical updates: one policy changed (a port added to its rule), UPDATES times; one pod added.
  const policyUpdates: UpdateFigures[] = [];
  for (let i = 0; i < UPDATES; i++) {
    const np = structuredClone(built.policies[Math.floor(Math.random() * built.policies.length)]!);
    np.metadata!.generation = 2 + i;
    if (np.spec!.ingress?.length) np.spec!.ingress[0]!.ports = [{ protocol: 'TCP', port: 8000 + i }];
    else np.spec!.ingress = [{ ports: [{ protocol: 'TCP', port: 8000 + i }] }];
    const compiled = compileNetworkPolicy(np);
    c.upsertPolicy(compiled.policy, compiled.groups);
    policyUpdates.push(measureUpdate(c, shares));
  }
  const podUpdates: UpdateFigures[] = [];
  for (let i = 0; i < UPDATES; i++) {
    const ns = built.namespaces[Math.floor(Math.random() * built.namespaces.length)]!.metadata!.name!;
    c.upsertPod({ uid: randomUUID(), namespace: ns, name: `extra-${i}`, labels: { 'app-1': 'scale-1' }, ip: `10.${i >> 8}.${i & 255}.9`, node: `node-${Math.floor(Math.random() * NODES)}`, namedPorts: [] });
    podUpdates.push(measureUpdate(c, shares));
  }

  // The lab API server in its own process: how fast it takes such objects, and what a watch receives for each.
  const ledger = ResourceLedger.create(join(BENCH_ROOT, `ch${randomBytes(3).toString('hex')}`));
  const api = await withCleanup(() => ledger.release(), async () => apiWrites(await startApiChild(ledger), sample));
  const rate = (r: CreateRun): number => r.created / (r.createMs / 1000);
  /** The faster of the two: the alternative is given the best pace measured. */
  const perSec = Math.max(rate(api.clientNode), rate(api.plain));
  /** What an object costs on the wire beyond its spec: metadata and the watch event's envelope. */
  const overhead = api.watchBytes / (api.clientNode.created + api.plain.created) - api.specBytes / api.clientNode.created;
  const wire = (l: Layout): number => l.specBytes + l.objects * overhead;
  const mb = (b: number): string => (b >= 10 * MB ? (b / MB).toFixed(0) : (b / MB).toFixed(2));
  const kb = (b: number): string => (b / 1024).toFixed(1);
  const mean = (xs: UpdateFigures[], f: (u: UpdateFigures) => number): number => xs.reduce((s, u) => s + f(u), 0) / xs.length;
  console.log(`\nthe stream: ${nodes.size} snapshots (${messages} messages) encoded in ${snapshotMs.toFixed(0)} ms, ${mb(snapshotBytes)} MB as sent (${kb(snapshotBytes / nodes.size)} KiB per node)`);
  for (const [what, us] of [['one policy changed', policyUpdates], ['one pod added', podUpdates]] as const) {
    console.log(`  ${what} (mean of ${us.length}): ${mean(us, (u) => u.nodes).toFixed(1)} nodes told, ${kb(mean(us, (u) => u.streamBytes))} KiB sent in all, encoded in ${mean(us, (u) => u.encodeMs).toFixed(2)} ms`);
  }
  console.log(`\nthe lab API server (own process), ${IN_FLIGHT} creates in flight, twice ${api.clientNode.created} objects of ${kb(api.specBytes / api.clientNode.created)} KiB mean spec (sampled from the per-node objects):`);
  for (const [what, r] of [['client-node', api.clientNode], ['plain HTTPS, kept-alive', api.plain]] as const) {
    const pct = (cpuS: number): string => `${((cpuS * 1000 * 100) / r.createMs).toFixed(0)}%`;
    console.log(`  ${what.padEnd(24)} ${(r.createMs / 1000).toFixed(2)} s: ${rate(r).toFixed(0).padStart(5)} objects/s, ${mb((api.specBytes / r.createMs) * 1000)} MB/s of specs; last one seen by a watch after ${(r.watchedMs / 1000).toFixed(2)} s; CPU: server ${pct(r.serverCpuS)}, client ${pct(r.clientCpuS)} of a core`);
  }
  console.log(`  a watch received ${mb(api.watchBytes)} MB for them: ${overhead.toFixed(0)} bytes per object beyond its spec (metadata, event envelope)`);

  const rows: Array<[string, string, string, string]> = [];
  const writeS = (l: Layout): string => `${(l.objects / perSec).toFixed(0)} s`;
  const streamTotal = snapshotBytes;
  const clusterFanout = NODES * wire(cluster);
  const perNodeFanout = wire(perNode);
  rows.push(['objects written to the API server', '0', cluster.objects.toLocaleString('en-US'), perNode.objects.toLocaleString('en-US')]);
  rows.push(['MB written to the API server', '0', mb(wire(cluster)), mb(wire(perNode))]);
  rows.push([`time to write them at ${perSec.toFixed(0)}/s`, `${(snapshotMs / 1000).toFixed(2)} s to encode`, writeS(cluster), writeS(perNode)]);
  rows.push(['  ratio to the stream', '1.00x', `${((cluster.objects / perSec) * 1000 / snapshotMs).toFixed(0)}x`, `${((perNode.objects / perSec) * 1000 / snapshotMs).toFixed(0)}x`]);
  rows.push([`MB to the ${NODES} agents`, mb(streamTotal), mb(clusterFanout), mb(perNodeFanout)]);
  rows.push(['  ratio to the stream', '1.00x', `${(clusterFanout / streamTotal).toFixed(1)}x`, `${(perNodeFanout / streamTotal).toFixed(2)}x`]);
  for (const [what, us] of [['one policy changed', policyUpdates], ['one pod added', podUpdates]] as const) {
    const s = mean(us, (u) => u.streamBytes);
    const cw = mean(us, (u) => NODES * (u.cluster.specBytes + u.cluster.objects * overhead));
    const pn = mean(us, (u) => u.perNode.specBytes + u.perNode.objects * overhead);
    rows.push([`${what}: objects written`, '0', mean(us, (u) => u.cluster.objects).toFixed(1), mean(us, (u) => u.perNode.objects).toFixed(1)]);
    rows.push([`${what}: KiB to agents`, kb(s), kb(cw), kb(pn)]);
    rows.push(['  ratio to the stream', '1.00x', `${(cw / s).toFixed(0)}x`, `${(pn / s).toFixed(2)}x`]);
  }
  const widths = [44, 22, 34, 30];
  const row = (r: readonly string[]): string => r.map((x, i) => (i ? x.padStart(widths[i]!) : x.padEnd(widths[i]!))).join('');
  console.log(`\nfull state and updates at ${NODES} nodes (the CR layouts' wire bytes: spec + ${overhead.toFixed(0)} bytes per object as measured):`);
  console.log(row(['', 'stream (baseline)', 'CR per object, all agents watch', 'CR per object and node']));
  for (const r of rows) console.log(row(r));
}

if (process.argv[2] === '--serve-api') await serveApi(process.argv[3]!);
else await benchMain(`Seine policy channel at Antrea's scale case: the stream against one custom resource per computed object`, main);
