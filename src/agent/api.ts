// The node agent's read-only JSON API, served by its health endpoint (the metrics port and socket): what only the
// agent knows of its node, for `seine get pods|services`, which reaches it through the API server's node proxy.
//   GET /v1/pods      every pod sandbox with the interfaces Seine made for it (pod network, secondary networks)
//   GET /v1/services  every Service frontend the node's proxy serves, with its endpoints here and elsewhere
//   GET /v1/policy-rules  every policy rule with flows on the node, with its counters (read from the switch)
// All take `?namespace=NS`. Answers are `{ node, items }` in a stable order; anything else is a 404.
import type { JsonAnswer, JsonHandler } from '../util/health-server.js';
import { AGENT_PODS_PATH, AGENT_POLICY_RULES_PATH, AGENT_SERVICES_PATH, type AgentList, type PodInfo, type PodInterfaceInfo, type PolicyRuleInfo, type ServiceFrontendInfo } from './api-types.js';
import type { FeatureInspection, InspectedInterface } from './feature.js';

/** Under this prefix every path is the API's (an unknown one is its 404, not the health endpoint's). */
export const AGENT_API_PREFIX = '/v1/';

const FRONTEND_KINDS: ReadonlyArray<ServiceFrontendInfo['kind']> = ['ClusterIP', 'NodePort', 'External'];

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** eth0 of the pod network first, then by interface name (net2 before net10). */
function interfaceOrder(a: PodInterfaceInfo, b: PodInterfaceInfo): number {
  const primary = Number(b.kind === 'pod-network') - Number(a.kind === 'pod-network');
  return primary || a.ifname.localeCompare(b.ifname, 'en', { numeric: true }) || byText(a.network, b.network);
}

/** The interfaces of every feature grouped by sandbox. */
export function podItems(node: string, interfaces: readonly InspectedInterface[]): PodInfo[] {
  const pods = new Map<string, PodInfo>();
  for (const i of interfaces) {
    const { containerId, netns, podNamespace, podName, podUid, ...itf } = i;
    let pod = pods.get(containerId);
    if (!pod) pods.set(containerId, (pod = { node, namespace: podNamespace, name: podName, uid: podUid, containerId, netns, interfaces: [] }));
    // A secondary feature may know a sandbox the pod network's record names less fully (a port made before it recorded them).
    pod.namespace ||= podNamespace;
    pod.name ||= podName;
    pod.uid ||= podUid;
    pod.netns ||= netns;
    pod.interfaces.push(itf);
  }
  for (const pod of pods.values()) pod.interfaces.sort(interfaceOrder);
  return [...pods.values()].sort((a, b) => byText(a.namespace, b.namespace) || byText(a.name, b.name) || byText(a.containerId, b.containerId));
}

export function serviceItems(node: string, frontends: ReadonlyArray<Omit<ServiceFrontendInfo, 'node'>>): ServiceFrontendInfo[] {
  return frontends
    .map((f) => ({ node, ...f }))
    .sort(
      (a, b) =>
        byText(a.namespace, b.namespace) ||
        byText(a.name, b.name) ||
        byText(a.portName, b.portName) ||
        FRONTEND_KINDS.indexOf(a.kind) - FRONTEND_KINDS.indexOf(b.kind) ||
        byText(a.address, b.address) ||
        a.port - b.port ||
        byText(a.protocol, b.protocol),
    );
}

const DIRECTIONS: ReadonlyArray<PolicyRuleInfo['direction']> = ['Ingress', 'Egress'];

export function policyRuleItems(node: string, rules: ReadonlyArray<Omit<PolicyRuleInfo, 'node'>>): PolicyRuleInfo[] {
  return rules
    .map((r) => ({ node, ...r }))
    .sort(
      (a, b) =>
        byText(a.namespace, b.namespace) ||
        byText(a.name, b.name) ||
        byText(a.kind, b.kind) ||
        byText(a.network, b.network) ||
        DIRECTIONS.indexOf(a.direction) - DIRECTIONS.indexOf(b.direction) ||
        a.rule.localeCompare(b.rule, 'en', { numeric: true }),
    );
}

const PATHS = [AGENT_PODS_PATH, AGENT_SERVICES_PATH, AGENT_POLICY_RULES_PATH];

/**
 * The API's handler over the features' inspections (read on every request). Until `features()` gives them (the
 * features are starting) it answers 503.
 */
export function agentApi(node: string, features: () => readonly FeatureInspection[] | undefined): JsonHandler {
  return async (path: string, query: URLSearchParams): Promise<JsonAnswer> => {
    const namespace = query.get('namespace') || undefined;
    const list = <T extends { namespace: string }>(items: T[]): JsonAnswer => {
      const body: AgentList<T> = { node, items: namespace ? items.filter((i) => i.namespace === namespace) : items };
      return { status: 200, body };
    };
    if (!PATHS.includes(path)) return { status: 404, body: { message: `no such path: ${path} (the agent serves ${PATHS.join(', ')})` } };
    const started = features();
    if (!started) return { status: 503, body: { message: 'the agent is starting' } };
    if (path === AGENT_PODS_PATH) return list(podItems(node, started.flatMap((f) => f.podInterfaces?.() ?? [])));
    if (path === AGENT_POLICY_RULES_PATH) return list(policyRuleItems(node, (await Promise.all(started.map((f) => f.policyRules?.() ?? []))).flat()));
    return list(serviceItems(node, started.flatMap((f) => f.serviceFrontends?.() ?? [])));
  };
}
