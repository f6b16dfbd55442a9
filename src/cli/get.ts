// `seine get networkpolicies|clusternetworkpolicies|multi-networkpolicies|networks|ippools|chains|pods|services|rules`.
// Pods, Services and policy rules' counters: what each node's agent knows (get-pods.ts). Policies: where each is realized, as the
// policy controller sees it (NetworkPolicies have no status to hold it); a MultiNetworkPolicy per network it names,
// with why a network is not enforced. Shaped like `kubectl get` (and usable as a kubectl plugin): the
// kubeconfig's cluster and user, -n / -A, -o wide|json|yaml. The controller is found through the API server (the
// endpoint ConfigMap its leader publishes, with the certificate to pin), and the user's own bearer token is sent:
// the controller authenticates it and asks the API server whether the user may list those policies.
import { KubeConfig } from '@kubernetes/client-node';
import { Command, InvalidArgumentError, Option } from 'commander';
import { request } from 'node:https';
import { stringify as stringifyYaml } from 'yaml';
import { AGENT_API_PORT, type PodInfo, type PolicyRuleInfo, type ServiceFrontendInfo } from '../agent/api-types.js';
import { apiFailure, apiStatus } from '../k8s/api.js';
import { ageOf } from '../lab/apiserver/meta.js';
import { bearerTokenSource, controllerEndpointSource, DEFAULT_ENDPOINT_NAMESPACE, ENDPOINT_CONFIGMAP, type ControllerEndpoint } from '../policy/channel/discovery.js';
import { POLICIES_PATH, type PolicyRealizationItem, type PolicyRealizationList } from '../policy/controller/policy-api.js';
import { loadUserKubeConfig } from './kubeconfig.js';
import { chainTable, readChains, type ChainRow } from './get-chains.js';
import { podTable, readFromAgents, ruleTable, serviceTable, type NodeKind } from './get-pods.js';
import { networkTable, poolTable, readNetworks, readPools, type NetworkRow, type PoolRow } from './get-networks.js';
import { renderTable } from './table.js';

const REQUEST_TIMEOUT_MS = 15_000;

interface Kind {
  kind: PolicyRealizationItem['kind'];
  namespaced: boolean;
}

const KINDS: Record<string, Kind> = {};
for (const [names, kind] of [
  [['networkpolicies', 'networkpolicy', 'netpol', 'networkpolicies.networking.k8s.io'], { kind: 'NetworkPolicy', namespaced: true }],
  [['clusternetworkpolicies', 'clusternetworkpolicy', 'cnp', 'clusternetworkpolicies.policy.networking.k8s.io'], { kind: 'ClusterNetworkPolicy', namespaced: false }],
  [['multi-networkpolicies', 'multi-networkpolicy', 'multi-policy', 'mnp', 'multi-networkpolicies.k8s.cni.cncf.io'], { kind: 'MultiNetworkPolicy', namespaced: true }],
] as const) {
  for (const n of names) KINDS[n] = kind;
}

export interface GetOptions {
  namespace?: string;
  allNamespaces?: boolean;
  output?: string;
  kubeconfig?: string;
  context?: string;
  controllerNamespace: string;
  /** Pods and Services: one node's agent only. */
  node?: string;
  /** Pods and Services: the agents' port (their metricsPort). */
  agentPort?: number;
}

/** A failure the command reports as one line (and exit status 1): the server's refusal, or `error: ...` as kubectl. */
class GetError extends Error {
  constructor(
    message: string,
    readonly fromServer = false,
  ) {
    super(message);
  }
}

function loadConfig(path: string | undefined, context: string | undefined): KubeConfig {
  return loadUserKubeConfig(path, context, (m) => new GetError(m));
}

async function userToken(kc: KubeConfig): Promise<string> {
  let token: string | undefined;
  try {
    token = await bearerTokenSource(kc)();
  } catch (e) {
    throw new GetError(`cannot get the kubeconfig user's credentials: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (token) return token;
  const user = kc.getCurrentUser();
  const how = user?.certData || user?.certFile ? 'authenticates with a client certificate' : 'has no bearer token';
  throw new GetError(`the kubeconfig user ${JSON.stringify(user?.name ?? '')} ${how}; the policy controller accepts bearer tokens only: use a user with a token (e.g. one from \`kubectl create token SERVICEACCOUNT\`)`);
}

async function findController(kc: KubeConfig, namespace: string): Promise<ControllerEndpoint> {
  let endpoint: ControllerEndpoint | undefined;
  try {
    endpoint = await controllerEndpointSource(kc, { namespace })();
  } catch (e) {
    throw new GetError(`cannot read ConfigMap ${namespace}/${ENDPOINT_CONFIGMAP} to find the policy controller: ${apiFailure(e)}`);
  }
  if (!endpoint) throw new GetError(`no policy controller endpoint: ConfigMap ${namespace}/${ENDPOINT_CONFIGMAP} is missing or incomplete (is the Seine controller running with policy enabled? see --controller-namespace)`);
  return endpoint;
}

/** One GET to the controller, its certificate pinned; a Status it refuses with becomes kubectl's error line. */
function fetchPolicies(endpoint: ControllerEndpoint, token: string, query: URLSearchParams): Promise<PolicyRealizationList> {
  const url = `${endpoint.url}${POLICIES_PATH}?${query.toString()}`;
  return new Promise((resolve, reject) => {
    const req = request(url, { ca: endpoint.ca, agent: false, headers: { authorization: `Bearer ${token}`, accept: 'application/json' }, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let body: { message?: string; reason?: string } | PolicyRealizationList | undefined;
        try {
          body = JSON.parse(text) as typeof body;
        } catch {
          body = undefined;
        }
        if (res.statusCode === 200 && body && 'items' in body) return resolve(body);
        const status = body && 'message' in body ? body : undefined;
        if (status?.message) reject(new GetError(`Error from server (${status.reason ?? res.statusCode}): ${status.message}`, true));
        else reject(new GetError(`the policy controller at ${endpoint.url} answered ${res.statusCode}: ${text.trim().slice(0, 200)}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${REQUEST_TIMEOUT_MS / 1000} s`)));
    req.on('error', (e: NodeJS.ErrnoException) => reject(new GetError(`cannot reach the policy controller at ${endpoint.url}: ${e.code ?? e.message}`)));
    req.end();
  });
}

/**
 * The table `kubectl get` would print: NAMESPACE with -A, REALIZED as realized/desired nodes, AGE; wide adds the
 * rest. MultiNetworkPolicies get a row per network, NETWORK, and NOT ENFORCED where a network is not (wide: why).
 */
export function policyTable(list: PolicyRealizationList, opts: { namespaced: boolean; allNamespaces: boolean; wide: boolean; now: number; networks?: boolean }): string {
  const networks = opts.networks ?? false;
  const head = [
    ...(opts.namespaced && opts.allNamespaces ? ['namespace'] : []),
    'name',
    ...(networks ? ['network'] : []),
    'realized',
    'age',
    ...(opts.wide ? ['generation', 'pending', ...(networks ? ['problem'] : [])] : []),
  ];
  const rows = list.items.map((i) => [
    ...(opts.namespaced && opts.allNamespaces ? [i.namespace] : []),
    i.name,
    ...(networks ? [i.network] : []),
    i.problem !== undefined ? 'NOT ENFORCED' : `${i.nodes.realized}/${i.nodes.desired}`,
    ageOf(i.creationTimestamp, opts.now),
    ...(opts.wide ? [i.generation, i.nodes.pending.length ? i.nodes.pending.join(',') : undefined, ...(networks ? [i.problem] : [])] : []),
  ]);
  return renderTable(head, rows);
}

/** Kinds read from the API server itself, as kubectl would (the policies come from the policy controller). */
const CLUSTER_KINDS: Record<string, 'networks' | 'ippools' | 'chains'> = {};
for (const n of ['networks', 'network', 'network-attachment-definitions', 'network-attachment-definition', 'net-attach-def', 'nad']) CLUSTER_KINDS[n] = 'networks';
for (const n of ['ippools', 'ippool', 'ipp', 'ippools.crd.seine.dev']) CLUSTER_KINDS[n] = 'ippools';
for (const n of ['chains', 'chain', 'servicechains', 'servicechain', 'sc', 'servicechains.crd.seine.dev']) CLUSTER_KINDS[n] = 'chains';

const NOT_FOUND_KIND = { networks: 'network-attachment-definitions.k8s.cni.cncf.io', ippools: 'ippools.crd.seine.dev', chains: 'servicechains.crd.seine.dev' };

/** `seine get networks|ippools|chains`: rows derived from the API server's objects (json and yaml print the rows). */
async function getClusterKind(kind: 'networks' | 'ippools' | 'chains', name: string | undefined, o: GetOptions, output: string): Promise<string> {
  const kc = loadConfig(o.kubeconfig, o.context);
  const namespace = kind !== 'ippools' ? namespaceOf(kc, o) : undefined;
  let rows: Array<NetworkRow | PoolRow | ChainRow>;
  try {
    rows = kind === 'networks' ? await readNetworks(kc, namespace) : kind === 'chains' ? await readChains(kc, namespace) : await readPools(kc);
  } catch (e) {
    throw new GetError(`Error from server: ${apiFailure(e)}`, true);
  }
  if (name) {
    rows = rows.filter((r) => r.name === name);
    if (!rows.length) throw new GetError(`Error from server (NotFound): ${NOT_FOUND_KIND[kind]} "${name}" not found`, true);
  }
  if (output === 'json') return `${JSON.stringify({ items: rows }, null, 4)}\n`;
  if (output === 'yaml') return stringifyYaml({ items: rows });
  if (rows.length === 0) throw new NoResources(namespace ? `No resources found in ${namespace} namespace.` : 'No resources found');
  const opts = { allNamespaces: !!o.allNamespaces, wide: output === 'wide', now: Date.now() };
  const table = kind === 'networks' ? networkTable(rows as NetworkRow[], opts) : kind === 'chains' ? chainTable(rows as ChainRow[], opts) : poolTable(rows as PoolRow[], opts);
  return `${table}\n`;
}

/** Kinds read from the node agents, through the API server's node proxy. */
const NODE_KINDS: Record<string, NodeKind> = {};
for (const n of ['pods', 'pod', 'po']) NODE_KINDS[n] = 'pods';
for (const n of ['services', 'service', 'svc']) NODE_KINDS[n] = 'services';
for (const n of ['rules', 'rule', 'policy-rules', 'policyrules']) NODE_KINDS[n] = 'rules';

/** The namespace a namespaced listing is of: -n, else the kubeconfig context's, else default (none with -A). */
function namespaceOf(kc: KubeConfig, o: GetOptions): string | undefined {
  return o.allNamespaces ? undefined : (o.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default');
}

/**
 * `seine get pods|services|rules`: every agent's items (json and yaml print them merged; a rule's name is its
 * policy's); unreachable nodes are warned about.
 */
async function getNodeKind(kind: NodeKind, name: string | undefined, o: GetOptions, output: string, warn: (line: string) => void): Promise<string> {
  const kc = loadConfig(o.kubeconfig, o.context);
  const namespace = namespaceOf(kc, o);
  let read: Awaited<ReturnType<typeof readFromAgents>>;
  try {
    read = await readFromAgents(kc, kind, { ...(o.node ? { node: o.node } : {}), port: o.agentPort ?? AGENT_API_PORT, ...(namespace ? { namespace } : {}) });
  } catch (e) {
    if (o.node && apiStatus(e) === 404) throw new GetError(`Error from server (NotFound): nodes "${o.node}" not found`, true);
    throw new GetError(`Error from server: ${apiFailure(e)}`, true);
  }
  // Refused by the API server: every node would be, and the user is told why once.
  const refused = read.failures.find((f) => f.status === 401 || f.status === 403);
  if (refused) throw new GetError(`Error from server (${refused.reason ?? (refused.status === 401 ? 'Unauthorized' : 'Forbidden')}): ${refused.message}`, true);
  for (const f of read.failures) warn(`warning: node ${f.node}: ${f.message}\n`);
  if (read.nodes.length && read.failures.length === read.nodes.length) throw new GetError(`no node's agent could be reached (${read.nodes.length} node${read.nodes.length === 1 ? '' : 's'})`);
  const items = name ? read.items.filter((i) => i.name === name) : read.items;
  if (name && !items.length && !read.failures.length) throw new GetError(`Error from server (NotFound): ${kind === 'rules' ? 'rules of policy' : kind} "${name}" not found`, true);
  if (output === 'json') return `${JSON.stringify({ items }, null, 4)}\n`;
  if (output === 'yaml') return stringifyYaml({ items });
  if (items.length === 0) throw new NoResources(namespace ? `No resources found in ${namespace} namespace.` : 'No resources found');
  const opts = { allNamespaces: !!o.allNamespaces, wide: output === 'wide' };
  const table = kind === 'pods' ? podTable(items as PodInfo[], opts) : kind === 'services' ? serviceTable(items as ServiceFrontendInfo[], opts) : ruleTable(items as PolicyRuleInfo[], opts);
  return `${table}\n`;
}

/** What `seine get` prints; an empty table is NoResources (said on stderr, not a failure, as kubectl does). `warn` gets the lines for stderr. */
export async function getResources(resource: string, name: string | undefined, o: GetOptions, warn: (line: string) => void = (l) => void process.stderr.write(l)): Promise<string> {
  const clusterKind = CLUSTER_KINDS[resource.toLowerCase()];
  const nodeKind = NODE_KINDS[resource.toLowerCase()];
  const kind = KINDS[resource.toLowerCase()];
  if (!kind && !clusterKind && !nodeKind) throw new GetError(`unknown resource type ${JSON.stringify(resource)}: seine get knows ${[...Object.keys(KINDS), ...Object.keys(CLUSTER_KINDS), ...Object.keys(NODE_KINDS)].join(', ')}`);
  const output = o.output ?? '';
  if (!['', 'wide', 'json', 'yaml'].includes(output)) throw new GetError(`unable to match a printer suitable for the output format ${JSON.stringify(output)}, allowed formats are: json, wide, yaml`);
  if (name && o.allNamespaces) throw new GetError('a resource cannot be retrieved by name across all namespaces');
  if (clusterKind) return getClusterKind(clusterKind, name, o, output);
  if (nodeKind) return getNodeKind(nodeKind, name, o, output, warn);
  const kc = loadConfig(o.kubeconfig, o.context);
  const namespace = kind!.namespaced ? namespaceOf(kc, o) : undefined;
  // The token first: a user without one cannot read the endpoint either, and this says why.
  const token = await userToken(kc);
  const endpoint = await findController(kc, o.controllerNamespace);
  const query = new URLSearchParams({ kind: kind!.kind, ...(namespace ? { namespace } : {}), ...(name ? { name } : {}) });
  const list = await fetchPolicies(endpoint, token, query);
  if (output === 'json') return `${JSON.stringify(list, null, 4)}\n`;
  if (output === 'yaml') return stringifyYaml(list);
  if (list.items.length === 0) throw new NoResources(namespace ? `No resources found in ${namespace} namespace.` : 'No resources found');
  return `${policyTable(list, { namespaced: kind!.namespaced, allNamespaces: !!o.allNamespaces, wide: output === 'wide', now: Date.now(), networks: kind!.kind === 'MultiNetworkPolicy' })}\n`;
}

/** Nothing to show: not an error (exit 0), said on stderr as kubectl does. */
export class NoResources extends Error {}

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('must be a TCP port (1-65535)');
  return n;
}

export function getCommand(): Command {
  return new Command('get')
    .description('show where network policies are realized (as the policy controller sees it), the secondary networks with their pods per node, the IP pools\' usage, the service chains\' hops, replica health and counters, and what each node\'s agent has (pods\' interfaces and OVS ports, Service frontends and endpoints, policy rules\' counters)')
    .argument('<resource>', 'networkpolicies (netpol), clusternetworkpolicies (cnp), multi-networkpolicies (multi-policy, mnp), networks (network-attachment-definitions, net-attach-def, nad), ippools (ipp), chains (servicechains, sc), pods (po), services (svc) or rules (policy-rules: each policy rule\'s new connections and bytes, summed over the nodes; [name] is the policy\'s)')
    .argument('[name]', 'one object')
    .option('-n, --namespace <namespace>', 'the namespace (default: the kubeconfig context\'s, else default)')
    .option('-A, --all-namespaces', 'every namespace')
    .addOption(new Option('-o, --output <format>', 'wide (policies: the pending nodes, why a network is not enforced; networks and pools: per node; pods: container id and netns; services: external traffic\'s endpoints, affinity, every endpoint; rules: the network and the nodes counted), json or yaml').choices(['wide', 'json', 'yaml']))
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG, else ~/.kube/config)')
    .option('--context <name>', 'the kubeconfig context to use (default: its current context)')
    .option('--controller-namespace <namespace>', 'where the Seine controller publishes its endpoint', DEFAULT_ENDPOINT_NAMESPACE)
    .option('--node <name>', 'pods, services and rules: ask this node\'s agent only (default: every node\'s)')
    .option('--agent-port <port>', 'pods, services and rules: the agents\' metricsPort, which the API server\'s node proxy is asked for', parsePort, AGENT_API_PORT)
    .action(async (resource: string, name: string | undefined, o: GetOptions) => {
      try {
        process.stdout.write(await getResources(resource, name, o));
      } catch (e) {
        if (e instanceof NoResources) {
          process.stderr.write(`${e.message}\n`);
          return;
        }
        if (!(e instanceof GetError)) throw e;
        process.stderr.write(e.fromServer ? `${e.message}\n` : `error: ${e.message}\n`);
        process.exitCode = 1;
      }
    });
}
