// The standard model of NetworkPolicy conformance in a 3-node lab: namespaces x, y, z (labelled ns=<name>), pods
// a, b, c in each (labelled pod=<name>), spread so that each node holds one pod of every name and every namespace
// (same-node and cross-node pairs both occur). Every pod serves TCP and UDP on 80 and 81 and answers each
// connection or datagram with its own name, so a probe proves it reached the pod it meant to. The pods a name
// their ports (serve-80-tcp, serve-80-udp, serve-81-tcp, serve-81-udp) so that named ports resolve on them only.
//
// probeMatrix() tries all 9x9 pairs on both ports and protocols with real packets; expectMatrix() compares that
// with the policy model's verdicts (src/policy/model, the reference semantics) until they agree.
import type { V1Namespace, V1NetworkPolicy } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { run } from '../../src/host/exec.js';
import type { Lab } from '../../src/lab/lab.js';
import type { ClusterNetworkPolicy } from '../../src/policy/api/clusternetworkpolicy.js';
import { compileClusterNetworkPolicy } from '../../src/policy/model/clusternetworkpolicy.js';
import { connectionVerdict, type Verdict, type World, type WorldPod } from '../../src/policy/model/evaluate.js';
import { compileNetworkPolicy } from '../../src/policy/model/networkpolicy.js';
import { compileMultiNetworkPolicy, parsePolicyFor } from '../../src/policy/model/multinetworkpolicy.js';
import { POLICY_FOR_ANNOTATION, type MultiNetworkPolicy } from '../../src/policy/api/multinetworkpolicy.js';
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION, parseNetworkStatus } from '../../src/secondary/annotations/index.js';
import type { Compiled, PodGroupSpec, Protocol } from '../../src/policy/model/types.js';
import { eventually, podNetns, startTestLab, waitRunning } from './lab.js';
import { datapathDiagnosis } from './datapath-diagnosis.js';

export const NAMESPACES = ['x', 'y', 'z'] as const;
export const POD_NAMES = ['a', 'b', 'c'] as const;
export const PORTS = [80, 81] as const;
export const PROTOCOLS = ['TCP', 'UDP'] as const satisfies readonly Protocol[];

/**
 * How long a probe waits for an answer: what a denied probe costs each round. Inside the lab an allowed connection
 * answers in milliseconds; one a busy machine answers later (a SYN lost while OVS resolves a tunnel peer is resent
 * after 1 s) is not taken for denied: it is tried again with RETRY_WAIT_MS.
 */
const PROBE_WAIT_MS = 1_500;
/** A probe that should have been answered and was not is tried once more with this wait before it counts. */
const RETRY_WAIT_MS = 8_000;
/**
 * How long the probes may disagree with the model after a change: the change goes from the API server through
 * the controller to every agent and into OVS, a few seconds on a busy machine; this leaves ample room.
 */
const AGREEMENT_TIMEOUT_MS = 60_000;

/** "x/a": a pod of the model by namespace and name. */
export type PodKey = `${string}/${string}`;

export interface MatrixPod {
  key: PodKey;
  namespace: string;
  name: string;
  node: string;
  ip: string;
  /** Its address on each secondary network of the matrix (NAD "namespace/name"). */
  networks: Record<string, string>;
  netns: string;
}

/** Secondary networks every pod of the matrix is attached to: their objects (NADs, pools) and their names. */
export interface MatrixNetworks {
  manifest: string;
  /** NADs as "namespace/name", in the order of the pods' networks annotation. */
  networks: string[];
}

interface Cell {
  from: PodKey;
  to: PodKey;
  port: number;
  protocol: Protocol;
}

/** What a probe got: the name of the pod that answered, or why none did (timeout, error:ECONNREFUSED, ...). */
type Answer = string;

const cellKey = (c: Cell): string => `${c.from}>${c.to}:${c.port}/${c.protocol}`;

/**
 * The pods' server (CommonJS for `node -e`): TCP and UDP on each port, answering with the pod's name; UDP answers
 * each datagram, so a UDP probe is a request and a reply.
 */
const SERVER = `
const net = require('net');
const dgram = require('dgram');
const me = process.env.POD_NAMESPACE + '/' + process.env.POD_NAME;
for (const port of ${JSON.stringify(PORTS)}) {
  net.createServer((c) => { c.on('error', () => {}); c.end(me); }).listen(port, '0.0.0.0');
  const u = dgram.createSocket('udp4');
  u.on('message', (m, peer) => u.send(me, peer.port, peer.address));
  u.bind(port, '0.0.0.0');
}`;

/**
 * One source pod's probes, all at once (argv: the targets as JSON, the wait in ms); prints each target's answer
 * in order. UDP datagrams are resent every 300 ms until one is answered (the first may be lost while a tunnel
 * peer's address resolves).
 */
const PROBE = `
const net = require('net');
const dgram = require('dgram');
const targets = JSON.parse(process.argv[1]);
const waitMs = Number(process.argv[2]);
function tcp(t) {
  return new Promise((done) => {
    let answer = '';
    const s = net.connect({ host: t.ip, port: t.port });
    const timer = setTimeout(() => { s.destroy(); done(answer ? 'incomplete:' + answer : 'timeout'); }, waitMs);
    s.setEncoding('utf8');
    s.on('data', (d) => { answer += d; });
    s.on('end', () => { clearTimeout(timer); s.destroy(); done(answer); });
    s.on('error', (e) => { clearTimeout(timer); done('error:' + (e.code || e.message)); });
  });
}
function udp(t) {
  return new Promise((done) => {
    const s = dgram.createSocket('udp4');
    let over = false;
    const finish = (r) => { if (over) return; over = true; clearTimeout(timer); clearInterval(resend); s.close(); done(r); };
    const send = () => s.send('probe', t.port, t.ip, (e) => { if (e) finish('error:' + (e.code || e.message)); });
    const timer = setTimeout(() => finish('timeout'), waitMs);
    const resend = setInterval(send, 300);
    s.on('message', (m, from) => { if (from.address === t.ip && from.port === t.port) finish(m.toString()); });
    s.on('error', (e) => finish('error:' + (e.code || e.message)));
    send();
  });
}
Promise.all(targets.map((t) => (t.protocol === 'TCP' ? tcp(t) : udp(t)))).then((answers) => {
  process.stdout.write(JSON.stringify(answers));
});`;

/** A kubectl call; `input` goes to its stdin (for `-f -`). */
export async function kubectlIn(lab: Lab, args: string[], input?: string): Promise<string> {
  const { stdout } = await run('kubectl', ['--kubeconfig', lab.kubeconfigPath, '--cache-dir', `${lab.stateDir}/kube-cache`, ...args], { input, timeoutMs: 60_000 });
  return stdout;
}

/** The model's objects as YAML, as a user would write them for `kubectl apply -f`. */
function modelManifest(nodes: string[], networks: readonly string[] = []): string {
  const docs: object[] = [];
  for (const ns of NAMESPACES) docs.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { ns } } });
  NAMESPACES.forEach((ns, i) => {
    POD_NAMES.forEach((name, j) => {
      const ports = PORTS.flatMap((port) =>
        PROTOCOLS.map((protocol) => ({ containerPort: port, protocol, ...(name === 'a' ? { name: `serve-${port}-${protocol.toLowerCase()}` } : {}) })),
      );
      docs.push({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: ns, labels: { pod: name }, ...(networks.length ? { annotations: { [NETWORKS_ANNOTATION]: networks.join(',') } } : {}) },
        // Each node gets one pod of each name and of each namespace.
        spec: { nodeName: nodes[(i + j) % nodes.length], containers: [{ name: 'serve', image: 'lab', command: [process.execPath, '-e', SERVER], ports }] },
      });
    });
  });
  // JSON documents in YAML's flow style, one per `---`.
  return docs.map((d) => `---\n${JSON.stringify(d)}\n`).join('');
}

/**
 * The policies of a manifest, compiled by the model (the objects as written: its defaulting is part of the test).
 * Read as YAML 1.1, as kubectl reads it (where an unquoted `y` is a boolean).
 */
function compileManifest(yaml: string): Compiled[] {
  const out: Compiled[] = [];
  for (const doc of parseAllDocuments(yaml, { version: '1.1' })) {
    const o = doc.toJS() as { kind?: string } | null;
    if (o?.kind === 'NetworkPolicy') out.push(compileNetworkPolicy(o as V1NetworkPolicy));
    else if (o?.kind === 'MultiNetworkPolicy') {
      const mnp = o as MultiNetworkPolicy;
      for (const network of parsePolicyFor(mnp.metadata.annotations?.[POLICY_FOR_ANNOTATION], mnp.metadata.namespace ?? 'default').networks) out.push(compileMultiNetworkPolicy(mnp, network));
    } else if (o?.kind === 'ClusterNetworkPolicy') out.push(compileClusterNetworkPolicy(o as ClusterNetworkPolicy));
    else if (o) throw new Error(`not a policy: ${JSON.stringify(o).slice(0, 200)}`);
  }
  return out;
}

interface Round {
  cells: Array<Cell & { verdict: Verdict; answer: Answer }>;
}

const reached = (c: Cell, answer: Answer): boolean => answer === c.to;
/** How long a stuck cell is probed again while the datapath is watched. */
const DIAGNOSIS_WINDOW_MS = 5000;

export class PolicyMatrix {
  private constructor(
    readonly lab: Lab,
    readonly pods: MatrixPod[],
  ) {}

  /** A 3-node lab with the model's namespaces and pods, every pod serving (on every network given, too). */
  static async start(opts: { secondary?: MatrixNetworks } = {}): Promise<PolicyMatrix> {
    const lab = await startTestLab({ nodes: 3 });
    try {
      if (opts.secondary) await kubectlIn(lab, ['apply', '-f', '-'], opts.secondary.manifest);
      const networks = opts.secondary?.networks ?? [];
      await kubectlIn(lab, ['apply', '-f', '-'], modelManifest(lab.plan.nodes.map((n) => n.name), networks));
      const pods: MatrixPod[] = [];
      for (const namespace of NAMESPACES) {
        for (const name of POD_NAMES) {
          const p = await waitRunning(lab, name, namespace, 120_000);
          const status = parseNetworkStatus(p.metadata?.annotations?.[NETWORK_STATUS_ANNOTATION]);
          const addresses: Record<string, string> = {};
          for (const n of networks) {
            const ip = status.find((s) => s.name === n)?.ips?.[0];
            if (!ip) throw new Error(`pod ${namespace}/${name} has no address on ${n} in its network-status`);
            addresses[n] = ip;
          }
          pods.push({ key: `${namespace}/${name}`, namespace, name, node: p.spec!.nodeName!, ip: p.status!.podIP!, networks: addresses, netns: podNetns(lab, p) });
        }
      }
      return new PolicyMatrix(lab, pods);
    } catch (e) {
      await lab.down();
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.lab.down();
  }

  pod(key: PodKey): MatrixPod {
    const p = this.pods.find((x) => x.key === key);
    if (!p) throw new Error(`no pod ${key} in the model`);
    return p;
  }

  /** The pod CIDR of the node a pod runs on. */
  async nodeCidr(key: PodKey): Promise<string> {
    const node = await this.lab.core.readNode({ name: this.pod(key).node });
    return node.spec!.podCIDR!;
  }

  kubectl(args: string[], input?: string): Promise<string> {
    return kubectlIn(this.lab, args, input);
  }

  apply(yaml: string): Promise<string> {
    return this.kubectl(['apply', '-f', '-'], yaml);
  }

  delete(yaml: string): Promise<string> {
    return this.kubectl(['delete', '--ignore-not-found', '-f', '-'], yaml);
  }

  /** A pod's address on a secondary network of the matrix, or on the pod network (no network). */
  ipOn(key: PodKey, network?: string): string {
    const p = this.pod(key);
    if (!network) return p.ip;
    const ip = p.networks[network];
    if (!ip) throw new Error(`pod ${key} is not on ${network}`);
    return ip;
  }

  /**
   * Every cell of the matrix, probed with real packets: one process per source pod, all its targets at once, at
   * their addresses on `network` (none: the pod network).
   */
  async probeMatrix(cells: readonly Cell[] = this.allCells(), waitMs = PROBE_WAIT_MS, network?: string): Promise<Map<string, Answer>> {
    const bySource = new Map<PodKey, Cell[]>();
    for (const c of cells) bySource.set(c.from, [...(bySource.get(c.from) ?? []), c]);
    const answers = new Map<string, Answer>();
    await Promise.all(
      [...bySource].map(async ([from, list]) => {
        const targets = list.map((c) => ({ ip: this.ipOn(c.to, network), port: c.port, protocol: c.protocol }));
        // The process itself gets far longer than its probes: node's start-up on a busy machine is slow.
        const { stdout } = await run(process.execPath, ['-e', PROBE, JSON.stringify(targets), String(waitMs)], { netns: this.pod(from).netns, timeoutMs: waitMs + 60_000 });
        const got = JSON.parse(stdout) as Answer[];
        list.forEach((c, i) => answers.set(cellKey(c), got[i]!));
      }),
    );
    return answers;
  }

  allCells(): Cell[] {
    return this.pods.flatMap((s) => this.pods.flatMap((d) => PORTS.flatMap((port) => PROTOCOLS.map((protocol): Cell => ({ from: s.key, to: d.key, port, protocol })))));
  }

  /**
   * The model's world: the pods and namespaces as the API server has them now (labels, addresses, named ports),
   * the pods as their entries on `network` (none: the pod network).
   */
  async world(compiled: Compiled[], network?: string): Promise<World> {
    const pods: WorldPod[] = [];
    const namespaceLabels = new Map<string, Record<string, string>>();
    for (const ns of NAMESPACES) {
      const n: V1Namespace = await this.lab.core.readNamespace({ name: ns });
      namespaceLabels.set(ns, n.metadata?.labels ?? {});
      for (const p of (await this.lab.core.listNamespacedPod({ namespace: ns })).items) {
        const namedPorts = (p.spec?.containers ?? []).flatMap((c) =>
          (c.ports ?? []).filter((cp) => cp.name).map((cp) => ({ name: cp.name!, protocol: (cp.protocol ?? 'TCP') as Protocol, port: cp.containerPort })),
        );
        const ip = network ? this.ipOn(`${ns}/${p.metadata!.name!}`, network) : p.status!.podIP!;
        pods.push({ namespace: ns, name: p.metadata!.name!, ip, labels: p.metadata?.labels ?? {}, namedPorts, ...(network ? { network } : {}) });
      }
    }
    const groups = new Map<string, PodGroupSpec>();
    for (const c of compiled) for (const [k, g] of c.groups) groups.set(k, g);
    return { pods, namespaceLabels, policies: compiled.map((c) => c.policy), groups };
  }

  /**
   * Waits until every probe agrees with the model's verdicts for the policies in `manifest` (YAML, as applied;
   * empty: no policies, everything allowed). A probe the model allows that went unanswered is tried once more
   * with a longer wait before it counts as a disagreement. On time-out, fails with the tables of differences.
   * Returns how many probes the model denies (a case that denies nothing proves nothing).
   */
  async expectMatrix(manifest: string, what = 'the policies', network?: string): Promise<number> {
    const compiled = compileManifest(manifest);
    const on = network ? ` on ${network}` : '';
    let last: Round | undefined;
    try {
      return await eventually(
        `probes in every pod${on} to agree with the model for ${what}`,
        async (saw) => {
          const world = await this.world(compiled, network);
          const byKey = new Map(world.pods.map((p) => [`${p.namespace}/${p.name}`, p]));
          const verdict = (c: Cell): Verdict => connectionVerdict(world, { pod: byKey.get(c.from)! }, { pod: byKey.get(c.to)! }, c.protocol, c.port);
          const cells = this.allCells();
          const answers = await this.probeMatrix(cells, PROBE_WAIT_MS, network);
          const unanswered = cells.filter((c) => verdict(c).allowed && !reached(c, answers.get(cellKey(c))!));
          if (unanswered.length) for (const [k, a] of await this.probeMatrix(unanswered, RETRY_WAIT_MS, network)) answers.set(k, a);
          last = { cells: cells.map((c) => ({ ...c, verdict: verdict(c), answer: answers.get(cellKey(c))! })) };
          const wrong = last.cells.filter((c) => c.verdict.allowed !== reached(c, c.answer));
          saw(`${wrong.length} of ${cells.length} probes disagree, e.g. ${wrong.slice(0, 3).map(describeCell).join('; ')}`);
          return wrong.length ? undefined : last.cells.filter((c) => !c.verdict.allowed).length;
        },
        AGREEMENT_TIMEOUT_MS,
        500,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${last ? this.differences(last, network) : ''}${last ? await this.diagnosis(last, network) : ''}`, { cause: e });
    }
  }

  /**
   * For the first cell the model allows but that did not connect: the flows its packets hit on each node while it
   * is probed again, and the conntrack entries between its two pods (a stale entry makes a new SYN invalid).
   */
  private async diagnosis(round: Round, network?: string): Promise<string> {
    const stuck = round.cells.find((c) => c.verdict.allowed && !reached(c, c.answer));
    if (!stuck) return '';
    const from = this.pod(stuck.from);
    const fromIp = this.ipOn(stuck.from, network);
    const toIp = this.ipOn(stuck.to, network);
    const probing = this.probeMatrix([stuck], DIAGNOSIS_WINDOW_MS, network).catch(() => undefined);
    const text = await datapathDiagnosis(this.lab, { windowMs: DIAGNOSIS_WINDOW_MS - 1000, conntrackFilter: `src=${fromIp},dst=${toIp}`, datapathFilter: new RegExp(`src=${fromIp.replace(/\./g, '\\.')}|dst=${toIp.replace(/\./g, '\\.')}|tnl_push`) }).catch((err: unknown) => `(no diagnosis: ${String(err)})`);
    await probing;
    // Stale datapath flows (actions from before the last OpenFlow change) are a known failure of the userspace
    // datapath: say whether the cell connects once the source node's datapath flows are purged.
    const node = this.lab.nodes.find((n) => n.plan.name === from.node);
    const purged = await node?.ovs.appctl('ovs-vswitchd', ['revalidator/purge']).then(() => true, () => false);
    const after = purged ? (await this.probeMatrix([stuck], PROBE_WAIT_MS, network).catch(() => undefined))?.get(cellKey(stuck)) : undefined;
    return `\ndatapath while ${describeCell(stuck)} was probed again:\n${text}\nafter purging ${from.node}'s datapath flows the probe got: ${after ?? '(not probed)'}`;
  }

  /**
   * The disagreements as tables, one per port and protocol that has any: rows are sources, columns destinations.
   * `.` allowed and connected, `X` denied and not connected, `!` connected though the model denies it, `?` not
   * connected though the model allows it, `W` answered by another pod than the one probed.
   */
  differences(round: Round, network?: string): string {
    const lines: string[] = [`pods${network ? ` on ${network}` : ''}: ${this.pods.map((p) => `${p.key} ${this.ipOn(p.key, network)} on ${p.node}`).join(', ')}`];
    const keys = this.pods.map((p) => p.key);
    for (const port of PORTS) {
      for (const protocol of PROTOCOLS) {
        const here = round.cells.filter((c) => c.port === port && c.protocol === protocol);
        if (here.every((c) => c.verdict.allowed === reached(c, c.answer))) continue;
        lines.push('', `${port}/${protocol}   (rows: from, columns: to; . allowed, X denied, ! should be denied, ? should connect, W wrong pod answered)`);
        lines.push(`from\\to ${keys.map((k) => k.padStart(4)).join('')}`);
        for (const from of keys) {
          const row = keys.map((to) => {
            const c = here.find((x) => x.from === from && x.to === to)!;
            const ok = reached(c, c.answer);
            const mark = !ok && !/^(timeout|error:|incomplete:)/.test(c.answer) ? 'W' : c.verdict.allowed === ok ? (ok ? '.' : 'X') : ok ? '!' : '?';
            return mark.padStart(4);
          });
          lines.push(`${from.padEnd(7)} ${row.join('')}`);
        }
      }
    }
    const wrong = round.cells.filter((c) => c.verdict.allowed !== reached(c, c.answer));
    lines.push('', ...wrong.slice(0, 40).map(describeCell));
    if (wrong.length > 40) lines.push(`... and ${wrong.length - 40} more`);
    return lines.join('\n');
  }
}

function describeCell(c: Cell & { verdict: Verdict; answer: Answer }): string {
  return `${c.from} -> ${c.to} ${c.port}/${c.protocol}: model ${c.verdict.allowed ? 'allows' : 'denies'} (${c.verdict.by}), probe got ${c.answer}`;
}
