// What the reconciliation tests need on a lab node: run seine-cni as a container runtime does, and read
// what the node holds (OVS ports of every bridge, node IPAM, IPPool addresses, the agent's log).
import { CustomObjectsApi } from '@kubernetes/client-node';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CommandError, run } from '../../../src/host/exec.js';
import type { Lab } from '../../../src/lab/lab.js';
import type { LabNode } from '../../../src/lab/node.js';
import { CookieOwner, decodeCookie } from '../../../src/ovs/openflow/cookie.js';
import { SEINE_CNI_BINARY } from '../../../src/cni/plugin-binary.js';
import { eventually } from '../../../src/util/wait.js';


export interface CniOutcome {
  exitCode: number;
  stdout: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

/** One sandbox as a runtime names it to the plugin. */
export interface CniTarget {
  containerId: string;
  netns: string;
  /** CNI_ARGS; none: a container that is not a Kubernetes pod. */
  args?: string;
  ifname?: string;
}

/** The node's conflist as one plugin config on stdin (name and cniVersion of the list), plus `extra`. */
export function pluginConf(node: LabNode, extra: Record<string, unknown> = {}): string {
  const list = JSON.parse(readFileSync(join(node.dirs.cniConfDir, '10-seine.conflist'), 'utf8')) as { name: string; cniVersion: string; plugins: Array<Record<string, unknown>> };
  return JSON.stringify({ ...list.plugins[0], name: list.name, cniVersion: list.cniVersion, ...extra });
}

/** Runs seine-cni inside the node's namespace with exactly this env (plus PATH/HOME) and stdin. */
export async function seineCni(node: LabNode, env: Record<string, string>, stdin: string): Promise<CniOutcome> {
  let exitCode = 0;
  let stdout: string;
  try {
    ({ stdout } = await run(SEINE_CNI_BINARY, [], { netns: node.netns, env: { PATH: process.env.PATH, HOME: process.env.HOME, CNI_PATH: node.dirs.cniBinDir, ...env }, input: stdin, timeoutMs: 60_000 }));
  } catch (e) {
    if (!(e instanceof CommandError) || e.exitCode === null) throw e;
    ({ exitCode, stdout } = e);
  }
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    json = undefined;
  }
  return { exitCode, stdout, json };
}

/** ADD or DEL of one attachment. */
export function cniCall(node: LabNode, command: 'ADD' | 'DEL', t: CniTarget, stdin = pluginConf(node)): Promise<CniOutcome> {
  return seineCni(node, { CNI_COMMAND: command, CNI_CONTAINERID: t.containerId, CNI_NETNS: t.netns, CNI_IFNAME: t.ifname ?? 'eth0', ...(t.args !== undefined ? { CNI_ARGS: t.args } : {}) }, stdin);
}

/** The CNI_ARGS a Kubernetes runtime passes for a pod sandbox. */
export function podArgs(namespace: string, name: string, uid: string, containerId: string): string {
  return `IgnoreUnknown=1;K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${name};K8S_POD_INFRA_CONTAINER_ID=${containerId};K8S_POD_UID=${uid}`;
}

/** The lab kubelet's sandbox id (CNI_CONTAINERID) of a pod. */
export function labSandboxId(podUid: string): string {
  return `lab${podUid.replaceAll('-', '')}`;
}

/** Every OVS port of the node (any bridge) with its external_ids. */
export async function ovsPorts(node: LabNode): Promise<Array<{ bridge: string; name: string; ids: Record<string, string> }>> {
  const table = JSON.parse(await node.ovs.vsctl(['--format=json', '--columns=name,external_ids', 'list', 'Port'])) as { data: Array<[string, ['map', Array<[string, string]>]]> };
  const ids = new Map(table.data.map(([name, [, pairs]]) => [name, Object.fromEntries(pairs)]));
  const out: Array<{ bridge: string; name: string; ids: Record<string, string> }> = [];
  for (const bridge of (await node.ovs.vsctl(['list-br'])).split('\n').filter(Boolean)) {
    for (const name of (await node.ovs.vsctl(['list-ports', bridge])).split('\n').filter(Boolean)) out.push({ bridge, name, ids: ids.get(name) ?? {} });
  }
  return out;
}

/** The node IPAM's allocations. */
export function nodeIpam(node: LabNode): Array<{ ip: string; containerId: string; ifname: string; podUid?: string; network?: string }> {
  const file = join(node.dirs.stateDir, 'ipam-ipv4.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { allocations: Array<{ ip: string; containerId: string; ifname: string }> }).allocations : [];
}

export interface PoolHolding {
  pool: string;
  ip: string;
  owner: { podNamespace: string; podName: string; podUID?: string; containerID: string; interface: string; node?: string };
}

/** Every IPPool address held, in any pool. */
export async function poolHoldings(lab: Lab): Promise<PoolHolding[]> {
  const custom = lab.kubeConfig.makeApiClient(CustomObjectsApi);
  const { items } = (await custom.listClusterCustomObject({ group: 'crd.seine.dev', version: 'v1alpha1', plural: 'ippools' })) as {
    items: Array<{ metadata: { name: string }; status?: { allocations?: Array<Omit<PoolHolding, 'pool'>> } }>;
  };
  return items.flatMap((p) => (p.status?.allocations ?? []).map((a) => ({ pool: p.metadata.name, ip: a.ip, owner: a.owner })));
}

/** Pod flows (cookie kind 0) on br-int per ofport. */
export async function podFlowCounts(node: LabNode): Promise<Map<number, number>> {
  const { stdout } = await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-flows', node.ovs.bridgeMgmt('br-int')]);
  const out = new Map<number, number>();
  for (const m of stdout.matchAll(/cookie=(0x[0-9a-f]+)/g)) {
    const { owner, object } = decodeCookie(BigInt(m[1]!));
    const id = Number(object & 0xffffffffn);
    if (owner === CookieOwner.primary && object >> 32n === 0n && id !== 0) out.set(id, (out.get(id) ?? 0) + 1);
  }
  return out;
}

/** Lines of the node's agent log so far (to wait for what comes after). */
export function agentLogLines(node: LabNode): string[] {
  const log = join(node.dirs.logDir, 'seine-agent.log');
  return existsSync(log) ? readFileSync(log, 'utf8').split('\n') : [];
}

/** Waits for an "agent ready" logged after line `after`; resolves to when it was seen. */
export async function agentReadyAfter(node: LabNode, after: number, timeoutMs = 90_000): Promise<number> {
  await eventually(`the agent of ${node.plan.name} to log "agent ready" again`, async () => (agentLogLines(node).slice(after).some((l) => l.includes('"agent ready"')) ? true : undefined), timeoutMs, 100);
  return Date.now();
}

/** Links in a network namespace (iproute2: sysfs under nsenter is the root namespace's). */
export async function linksIn(netns: string): Promise<Array<{ ifname: string; address?: string }>> {
  const { stdout } = await run('ip', ['-json', 'link', 'show'], { netns });
  return JSON.parse(stdout || '[]') as Array<{ ifname: string; address?: string }>;
}
