// `seine get pods`, `seine get services` and `seine get rules`: what only the node agents know (each pod's
// interfaces with their OVS ports; the Service frontends each node's proxy serves; the policy rules' counters),
// read from every agent's read-only API (src/agent/api.ts) through the API server's node proxy,
// `GET /api/v1/nodes/NODE:PORT/proxy/v1/pods`, with the kubeconfig's user, as kubectl reaches a node: the user needs
// `list` on nodes and `get` on nodes/proxy. A node that cannot be reached is reported and the others shown.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { AGENT_PODS_PATH, AGENT_POLICY_RULES_PATH, AGENT_SERVICES_PATH, type EndpointCounts, type PodInfo, type PolicyRuleInfo, type ServiceFrontendInfo } from '../agent/api-types.js';
import { renderTable } from './table.js';

const REQUEST_TIMEOUT_MS = 15_000;
/** Nodes asked at once. */
const CONCURRENCY = 16;

export type NodeKind = 'pods' | 'services' | 'rules';

export const NODE_KIND_PATHS: Record<NodeKind, string> = { pods: AGENT_PODS_PATH, services: AGENT_SERVICES_PATH, rules: AGENT_POLICY_RULES_PATH };

/** A node whose agent did not give its list: the HTTP status (0: no answer) and why, in one line. */
export interface NodeFailure {
  node: string;
  status: number;
  reason?: string;
  message: string;
}

/** One GET to the API server as the kubeconfig's user on its cluster: the status and the body's text. */
export async function apiGet(kc: KubeConfig, path: string): Promise<{ status: number; text: string }> {
  const server = kc.getCurrentCluster()?.server ?? '';
  const url = new URL(`${server.replace(/\/+$/, '')}${path}`);
  const opts: RequestOptions = { method: 'GET', headers: { accept: 'application/json' }, timeout: REQUEST_TIMEOUT_MS };
  await kc.applyToHTTPSOptions(opts);
  const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, opts, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${REQUEST_TIMEOUT_MS / 1000} s`)));
    req.on('error', reject);
    req.end();
  });
}

/** The node proxy's path to `path` of the agent of `node`. */
export const agentProxyPath = (node: string, port: number, path: string, query: URLSearchParams): string =>
  `/api/v1/nodes/${encodeURIComponent(node)}:${port}/proxy${path}${query.size ? `?${query.toString()}` : ''}`;

function parse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The list a node's answer holds, or why it holds none. */
function nodeAnswer<T>(node: string, port: number, path: string, status: number, text: string): T[] | NodeFailure {
  const body = parse(text) as { kind?: string; reason?: string; message?: string; items?: unknown } | undefined;
  if (status === 200 && Array.isArray(body?.items)) return body.items as T[];
  if (body?.kind === 'Status') return { node, status, ...(body.reason ? { reason: body.reason } : {}), message: body.message ?? `HTTP ${status}` };
  if (status === 404) return { node, status, message: `the agent does not serve ${path} on port ${port} (an agent of an older Seine, or another port: see --agent-port)` };
  const said = typeof body?.message === 'string' ? body.message : text.trim().split('\n')[0]?.slice(0, 200);
  return { node, status, message: `the agent answered ${status}${said ? `: ${said}` : ''}` };
}

/** Runs `fn` on every item, `CONCURRENCY` at a time; results in the items' order. */
async function eachLimited<A, R>(items: readonly A[], fn: (a: A) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, items.length) }, worker));
  return out;
}

/**
 * The items of `kind` from the agent of `node` (one node) or of every node, through the node proxy; with the
 * nodes that gave none. Listing or reading the Nodes fails as client-node does (an ApiException).
 */
export async function readFromAgents<T extends PodInfo | ServiceFrontendInfo | PolicyRuleInfo>(
  kc: KubeConfig,
  kind: NodeKind,
  opts: { node?: string; port: number; namespace?: string },
): Promise<{ nodes: string[]; items: T[]; failures: NodeFailure[] }> {
  const core = kc.makeApiClient(CoreV1Api);
  let nodes: string[];
  if (opts.node) {
    await core.readNode({ name: opts.node });
    nodes = [opts.node];
  } else {
    nodes = (await core.listNode()).items.map((n) => n.metadata?.name ?? '').filter(Boolean);
  }
  const path = NODE_KIND_PATHS[kind];
  const query = new URLSearchParams(opts.namespace ? { namespace: opts.namespace } : {});
  const answers = await eachLimited(nodes, async (node): Promise<T[] | NodeFailure> => {
    try {
      const r = await apiGet(kc, agentProxyPath(node, opts.port, path, query));
      return nodeAnswer<T>(node, opts.port, path, r.status, r.text);
    } catch (e) {
      return { node, status: 0, message: e instanceof Error ? e.message : String(e) };
    }
  });
  const items: T[] = [];
  const failures: NodeFailure[] = [];
  answers.forEach((a, i) => {
    if (!Array.isArray(a)) return void failures.push(a);
    // The node the agent names, or the one asked (an agent always says which it is).
    for (const item of a) items.push({ ...item, node: item.node || nodes[i]! });
  });
  return { nodes, items: sortByNode(items), failures };
}

/** Namespace, name, then node: one pod's sandboxes side by side, each Service's frontends of every node together. */
function sortByNode<T extends { namespace: string; name: string; node: string }>(items: T[]): T[] {
  const by = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  // Stable: each node's own order (an agent's is deterministic) stays within a node.
  return items.sort((a, b) => by(a.namespace, b.namespace) || by(a.name, b.name) || by(a.node, b.node));
}

interface TableOptions {
  allNamespaces: boolean;
  wide: boolean;
}

/** One row per interface: the pod network's eth0, then the secondary ones; wide adds the sandbox (container id, netns). */
export function podTable(pods: readonly PodInfo[], opts: TableOptions): string {
  const head = [...(opts.allNamespaces ? ['namespace'] : []), 'name', 'node', 'interface', 'network', 'ips', 'mac', 'bridge', 'port', 'ofport', ...(opts.wide ? ['container', 'netns'] : [])];
  const rows = pods.flatMap((p) =>
    p.interfaces.map((i) => [
      ...(opts.allNamespaces ? [p.namespace] : []),
      p.name,
      p.node,
      i.ifname,
      i.kind === 'pod-network' ? 'pod network' : i.kind === 'delegated' ? `${i.network} (delegated)` : i.network,
      i.ips.join(',') || undefined,
      i.mac,
      i.bridge,
      i.port,
      i.ofport,
      ...(opts.wide ? [p.containerId.slice(0, 13), p.netns || undefined] : []),
    ]),
  );
  return renderTable(head, rows);
}

const endpoints = (c: EndpointCounts | undefined): string | undefined => (c ? `${c.local}/${c.remote}` : undefined);

/**
 * One row per frontend and node: where it is served (address:port/protocol) and its endpoints on that node and on
 * others; wide adds the endpoints of external traffic under externalTrafficPolicy Local, affinity and the endpoints.
 */
export function serviceTable(frontends: readonly ServiceFrontendInfo[], opts: TableOptions): string {
  const head = [...(opts.allNamespaces ? ['namespace'] : []), 'name', 'port name', 'node', 'type', 'address', 'local', 'remote', ...(opts.wide ? ['external local/remote', 'affinity', 'endpoints'] : [])];
  const rows = frontends.map((f) => [
    ...(opts.allNamespaces ? [f.namespace] : []),
    f.name,
    f.portName || undefined,
    f.node,
    f.kind,
    `${f.address}:${f.port}/${f.protocol}`,
    f.endpoints.local,
    f.endpoints.remote,
    ...(opts.wide
      ? [endpoints(f.externalEndpoints), f.affinitySeconds !== undefined ? `${f.affinitySeconds}s` : undefined, f.endpointList.map((e) => `${e.ip}:${e.port}${e.local ? '(local)' : ''}`).join(',') || undefined]
      : []),
  ]);
  return renderTable(head, rows);
}

/** One rule's counters summed over the nodes that reported it. */
export interface RuleTotal extends Omit<PolicyRuleInfo, 'node'> {
  /** The nodes whose counters are in the sums. */
  nodes: string[];
}

/** Each rule's counters summed over the nodes, in the agents' order (policy, then direction and rule). */
export function ruleTotals(rules: readonly PolicyRuleInfo[]): RuleTotal[] {
  const totals = new Map<string, RuleTotal>();
  for (const { node, ...r } of rules) {
    const key = JSON.stringify([r.kind, r.namespace, r.name, r.network, r.direction, r.rule, r.action]);
    const t = totals.get(key);
    if (!t) totals.set(key, { ...r, nodes: [node] });
    else {
      t.packets += r.packets;
      t.bytes += r.bytes;
      t.nodes.push(node);
    }
  }
  return [...totals.values()];
}

/**
 * One row per policy rule with its new connections (packets) and their bytes, summed over the nodes; wide adds
 * the secondary network of a MultiNetworkPolicy and the nodes counted.
 */
export function ruleTable(rules: readonly PolicyRuleInfo[], opts: TableOptions): string {
  const head = [...(opts.allNamespaces ? ['namespace'] : []), 'policy', 'kind', 'direction', 'rule', 'action', 'packets', 'bytes', ...(opts.wide ? ['network', 'nodes'] : [])];
  const rows = ruleTotals(rules).map((r) => [
    ...(opts.allNamespaces ? [r.namespace || undefined] : []),
    r.name,
    r.kind,
    r.direction,
    r.rule,
    r.action,
    r.packets,
    r.bytes,
    ...(opts.wide ? [r.network || undefined, r.nodes.join(',')] : []),
  ]);
  return renderTable(head, rows);
}
