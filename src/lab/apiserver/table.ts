import { evalJsonPath } from './jsonpath.js';
import { ageOf } from './meta.js';
import type { ResourceType } from './registry.js';
import { isObject, type JsonObject, type KubeObject, type ListMeta } from './types.js';

// Server-side printing (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`): the columns
// `kubectl get` shows, computed as kube's printers do, so `-o wide` looks like a real cluster.

export interface TableColumn {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

export interface TableRow {
  cells: unknown[];
  object?: unknown;
}

export interface Table {
  kind: 'Table';
  apiVersion: string;
  metadata: ListMeta;
  columnDefinitions: TableColumn[];
  rows: TableRow[];
}

export type IncludeObject = 'None' | 'Metadata' | 'Object';

interface Printer {
  columns: TableColumn[];
  row(o: KubeObject, now: number): unknown[];
}

function col(name: string, opts: { type?: string; priority?: number; format?: string; description?: string } = {}): TableColumn {
  return { name, type: opts.type ?? 'string', format: opts.format ?? '', description: opts.description ?? name, priority: opts.priority ?? 0 };
}

const NAME = col('Name', { format: 'name', description: 'Name must be unique within a namespace.' });
const AGE = col('Age', { description: 'CreationTimestamp is a timestamp representing the server time when this object was created.' });

function at(o: unknown, ...path: (string | number)[]): unknown {
  let cur = o;
  for (const p of path) {
    if (typeof p === 'number') cur = Array.isArray(cur) ? cur[p] : undefined;
    else cur = isObject(cur) ? cur[p] : undefined;
  }
  return cur;
}

const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const none = (s: string | undefined): string => (s === undefined || s === '' ? '<none>' : s);

function podStatus(pod: KubeObject): { ready: string; status: string; restarts: string } {
  const containers = arr(at(pod, 'spec', 'containers'));
  let reason = (at(pod, 'status', 'reason') as string | undefined) || (at(pod, 'status', 'phase') as string | undefined) || 'Pending';
  let restarts = 0;
  let ready = 0;
  let initializing = false;
  const inits = arr(at(pod, 'spec', 'initContainers'));
  arr(at(pod, 'status', 'initContainerStatuses')).forEach((c, i) => {
    restarts += Number(at(c, 'restartCount') ?? 0);
    if (initializing) return;
    const term = at(c, 'state', 'terminated');
    if (isObject(term) && term.exitCode === 0) return;
    if (isObject(term)) reason = term.reason ? `Init:${String(term.reason)}` : `Init:ExitCode:${String(term.exitCode)}`;
    else {
      const waiting = at(c, 'state', 'waiting', 'reason');
      reason = waiting && waiting !== 'PodInitializing' ? `Init:${String(waiting)}` : `Init:${i}/${inits.length}`;
    }
    initializing = true;
  });
  if (!initializing) {
    let hasRunning = false;
    for (const c of [...arr(at(pod, 'status', 'containerStatuses'))].reverse()) {
      restarts += Number(at(c, 'restartCount') ?? 0);
      const waiting = at(c, 'state', 'waiting', 'reason');
      const term = at(c, 'state', 'terminated');
      if (waiting) reason = String(waiting);
      else if (isObject(term)) reason = term.reason ? String(term.reason) : term.signal ? `Signal:${String(term.signal)}` : `ExitCode:${String(term.exitCode)}`;
      else if (at(c, 'ready') === true && isObject(at(c, 'state', 'running'))) {
        hasRunning = true;
        ready++;
      }
    }
    if (reason === 'Completed' && hasRunning) reason = 'Running';
  }
  if (pod.metadata.deletionTimestamp) reason = at(pod, 'status', 'reason') === 'NodeLost' ? 'Unknown' : 'Terminating';
  return { ready: `${ready}/${containers.length}`, status: reason, restarts: String(restarts) };
}

function nodeStatus(node: KubeObject): string {
  const ready = arr(at(node, 'status', 'conditions')).find((c) => at(c, 'type') === 'Ready');
  const parts = [ready === undefined ? 'Unknown' : at(ready, 'status') === 'True' ? 'Ready' : at(ready, 'status') === 'False' ? 'NotReady' : 'Unknown'];
  if (at(node, 'spec', 'unschedulable') === true) parts.push('SchedulingDisabled');
  return parts.join(',');
}

function nodeRoles(node: KubeObject): string {
  const roles = new Set<string>();
  for (const [k, v] of Object.entries(node.metadata.labels ?? {})) {
    if (k.startsWith('node-role.kubernetes.io/')) roles.add(k.slice('node-role.kubernetes.io/'.length) || String(v));
    else if (k === 'kubernetes.io/role' && v) roles.add(v);
  }
  return none([...roles].sort().join(','));
}

function nodeAddress(node: KubeObject, type: string): string {
  const a = arr(at(node, 'status', 'addresses')).find((x) => at(x, 'type') === type);
  return none(at(a, 'address') as string | undefined);
}

function selectorString(sel: unknown): string {
  if (!isObject(sel)) return '<none>';
  const parts = Object.entries(isObject(sel.matchLabels) ? sel.matchLabels : {}).map(([k, v]) => `${k}=${String(v)}`);
  for (const e of arr(sel.matchExpressions)) parts.push(`${String(at(e, 'key'))} ${String(at(e, 'operator')).toLowerCase()} (${arr(at(e, 'values')).join(',')})`);
  return none(parts.join(','));
}

function mapString(m: unknown): string {
  return isObject(m) ? none(Object.entries(m).map(([k, v]) => `${k}=${String(v)}`).join(',')) : '<none>';
}

function containersOf(o: KubeObject): { names: string; images: string } {
  const cs = arr(at(o, 'spec', 'template', 'spec', 'containers'));
  return { names: cs.map((c) => String(at(c, 'name'))).join(','), images: cs.map((c) => String(at(c, 'image'))).join(',') };
}

const count = (v: unknown): number => (isObject(v) ? Object.keys(v).length : 0);
const num = (v: unknown): number => (typeof v === 'number' ? v : 0);

const printers: Record<string, Printer> = {
  Pod: {
    columns: [
      NAME,
      col('Ready', { description: 'The aggregate readiness state of this pod for accepting traffic.' }),
      col('Status', { description: 'The aggregate status of the containers in this pod.' }),
      col('Restarts', { description: 'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.' }),
      AGE,
      col('IP', { priority: 1, description: 'IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.' }),
      col('Node', { priority: 1, description: 'NodeName is a request to schedule this pod onto a specific node.' }),
      col('Nominated Node', { priority: 1, description: 'nominatedNodeName is set only when this pod preempts other pods on the node.' }),
      col('Readiness Gates', { priority: 1, description: 'If specified, all readiness gates will be evaluated for pod readiness.' }),
    ],
    row(o, now) {
      const s = podStatus(o);
      const gates = arr(at(o, 'spec', 'readinessGates'));
      const conds = arr(at(o, 'status', 'conditions'));
      const gatesCell = gates.length
        ? `${gates.filter((g) => conds.some((c) => at(c, 'type') === at(g, 'conditionType') && at(c, 'status') === 'True')).length}/${gates.length}`
        : '<none>';
      return [o.metadata.name, s.ready, s.status, s.restarts, ageOf(o.metadata.creationTimestamp, now), none(at(o, 'status', 'podIP') as string | undefined), none(at(o, 'spec', 'nodeName') as string | undefined), none(at(o, 'status', 'nominatedNodeName') as string | undefined), gatesCell];
    },
  },
  Node: {
    columns: [
      NAME,
      col('Status', { description: 'The status of the node' }),
      col('Roles', { description: 'The roles of the node' }),
      AGE,
      col('Version', { description: 'Kubelet Version reported by the node.' }),
      col('Internal-IP', { priority: 1, description: 'List of addresses reachable to the node.' }),
      col('External-IP', { priority: 1, description: 'List of addresses reachable to the node.' }),
      col('OS-Image', { priority: 1, description: 'OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).' }),
      col('Kernel-Version', { priority: 1, description: "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)." }),
      col('Container-Runtime', { priority: 1, description: 'ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).' }),
    ],
    row(o, now) {
      const info = (k: string): string => none(at(o, 'status', 'nodeInfo', k) as string | undefined);
      return [o.metadata.name, nodeStatus(o), nodeRoles(o), ageOf(o.metadata.creationTimestamp, now), info('kubeletVersion') === '<none>' ? '' : info('kubeletVersion'), nodeAddress(o, 'InternalIP'), nodeAddress(o, 'ExternalIP'), info('osImage') === '<none>' ? '<unknown>' : info('osImage'), info('kernelVersion') === '<none>' ? '<unknown>' : info('kernelVersion'), info('containerRuntimeVersion') === '<none>' ? '<unknown>' : info('containerRuntimeVersion')];
    },
  },
  Namespace: {
    columns: [NAME, col('Status', { description: 'The status of the namespace' }), AGE],
    row: (o, now) => [o.metadata.name, at(o, 'status', 'phase') ?? '', ageOf(o.metadata.creationTimestamp, now)],
  },
  Service: {
    columns: [NAME, col('Type'), col('Cluster-IP'), col('External-IP'), col('Port(s)'), AGE, col('Selector', { priority: 1 })],
    row(o, now) {
      const type = String(at(o, 'spec', 'type') ?? 'ClusterIP');
      const lb = arr(at(o, 'status', 'loadBalancer', 'ingress')).map((i) => String(at(i, 'ip') ?? at(i, 'hostname') ?? ''));
      const ext = type === 'ExternalName' ? String(at(o, 'spec', 'externalName') ?? '') : [...arr(at(o, 'spec', 'externalIPs')).map(String), ...lb].join(',') || (type === 'LoadBalancer' ? '<pending>' : '<none>');
      const ports = arr(at(o, 'spec', 'ports')).map((p) => `${String(at(p, 'port'))}${at(p, 'nodePort') ? `:${String(at(p, 'nodePort'))}` : ''}/${String(at(p, 'protocol') ?? 'TCP')}`);
      return [o.metadata.name, type, String(at(o, 'spec', 'clusterIP') ?? '<none>'), ext, none(ports.join(',')), ageOf(o.metadata.creationTimestamp, now), mapString(at(o, 'spec', 'selector'))];
    },
  },
  ConfigMap: { columns: [NAME, col('Data', { type: 'integer' }), AGE], row: (o, now) => [o.metadata.name, count(o.data) + count(o.binaryData), ageOf(o.metadata.creationTimestamp, now)] },
  Secret: { columns: [NAME, col('Type'), col('Data', { type: 'integer' }), AGE], row: (o, now) => [o.metadata.name, o.type ?? 'Opaque', count(o.data), ageOf(o.metadata.creationTimestamp, now)] },
  ServiceAccount: { columns: [NAME, col('Secrets', { type: 'integer' }), AGE], row: (o, now) => [o.metadata.name, arr(o.secrets).length, ageOf(o.metadata.creationTimestamp, now)] },
  Endpoints: {
    columns: [NAME, col('Endpoints'), AGE],
    row(o, now) {
      const eps: string[] = [];
      for (const s of arr(o.subsets)) for (const a of arr(at(s, 'addresses'))) for (const p of arr(at(s, 'ports')).length ? arr(at(s, 'ports')) : [undefined]) eps.push(p ? `${String(at(a, 'ip'))}:${String(at(p, 'port'))}` : String(at(a, 'ip')));
      const shown = eps.length > 3 ? `${eps.slice(0, 3).join(',')} + ${eps.length - 3} more...` : eps.join(',');
      return [o.metadata.name, none(shown), ageOf(o.metadata.creationTimestamp, now)];
    },
  },
  Event: {
    columns: [col('Last Seen'), col('Type'), col('Reason'), col('Object'), col('Message'), col('Source', { priority: 1 }), col('First Seen', { priority: 1 }), col('Count', { type: 'integer', priority: 1 }), col('Name', { priority: 1, format: 'name' })],
    row(o, now) {
      const last = (o.lastTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp) as string | undefined;
      const first = (o.firstTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp) as string | undefined;
      const io = isObject(o.involvedObject) ? o.involvedObject : {};
      return [ageOf(last, now), o.type ?? '', o.reason ?? '', `${String(io.kind ?? '').toLowerCase()}/${String(io.name ?? '')}`, o.message ?? '', String(at(o, 'source', 'component') ?? o.reportingComponent ?? ''), ageOf(first, now), num(o.count) || 1, o.metadata.name];
    },
  },
  Deployment: {
    columns: [NAME, col('Ready'), col('Up-to-date', { type: 'integer' }), col('Available', { type: 'integer' }), AGE, col('Containers', { priority: 1 }), col('Images', { priority: 1 }), col('Selector', { priority: 1 })],
    row(o, now) {
      const c = containersOf(o);
      return [o.metadata.name, `${num(at(o, 'status', 'readyReplicas'))}/${num(at(o, 'spec', 'replicas'))}`, num(at(o, 'status', 'updatedReplicas')), num(at(o, 'status', 'availableReplicas')), ageOf(o.metadata.creationTimestamp, now), c.names, c.images, selectorString(at(o, 'spec', 'selector'))];
    },
  },
  DaemonSet: {
    columns: [NAME, col('Desired', { type: 'integer' }), col('Current', { type: 'integer' }), col('Ready', { type: 'integer' }), col('Up-to-date', { type: 'integer' }), col('Available', { type: 'integer' }), col('Node Selector'), AGE, col('Containers', { priority: 1 }), col('Images', { priority: 1 }), col('Selector', { priority: 1 })],
    row(o, now) {
      const c = containersOf(o);
      const st = (k: string): number => num(at(o, 'status', k));
      return [o.metadata.name, st('desiredNumberScheduled'), st('currentNumberScheduled'), st('numberReady'), st('updatedNumberScheduled'), st('numberAvailable'), mapString(at(o, 'spec', 'template', 'spec', 'nodeSelector')), ageOf(o.metadata.creationTimestamp, now), c.names, c.images, selectorString(at(o, 'spec', 'selector'))];
    },
  },
  EndpointSlice: {
    columns: [NAME, col('AddressType'), col('Ports'), col('Endpoints'), AGE],
    row(o, now) {
      const ports = arr(o.ports).map((p) => String(at(p, 'port') ?? '<unset>')).join(',');
      const addrs = arr(o.endpoints).flatMap((e) => arr(at(e, 'addresses')).map(String));
      const shown = addrs.length > 3 ? `${addrs.slice(0, 3).join(',')} + ${addrs.length - 3} more...` : addrs.join(',');
      return [o.metadata.name, o.addressType ?? '', ports || '<unset>', shown || '<unset>', ageOf(o.metadata.creationTimestamp, now)];
    },
  },
  NetworkPolicy: { columns: [NAME, col('Pod-Selector'), AGE], row: (o, now) => [o.metadata.name, selectorString(at(o, 'spec', 'podSelector')) === '<none>' ? '<none>' : selectorString(at(o, 'spec', 'podSelector')), ageOf(o.metadata.creationTimestamp, now)] },
  Lease: { columns: [NAME, col('Holder'), AGE], row: (o, now) => [o.metadata.name, String(at(o, 'spec', 'holderIdentity') ?? ''), ageOf(o.metadata.creationTimestamp, now)] },
  RoleBinding: { columns: [NAME, col('Role'), AGE], row: (o, now) => [o.metadata.name, `${String(at(o, 'roleRef', 'kind'))}/${String(at(o, 'roleRef', 'name'))}`, ageOf(o.metadata.creationTimestamp, now)] },
  ClusterRoleBinding: { columns: [NAME, col('Role'), AGE], row: (o, now) => [o.metadata.name, `${String(at(o, 'roleRef', 'kind'))}/${String(at(o, 'roleRef', 'name'))}`, ageOf(o.metadata.creationTimestamp, now)] },
  CustomResourceDefinition: { columns: [NAME, col('Created At', { type: 'date' })], row: (o) => [o.metadata.name, o.metadata.creationTimestamp ?? ''] },
};

const generic: Printer = { columns: [NAME, AGE], row: (o, now) => [o.metadata.name, ageOf(o.metadata.creationTimestamp, now)] };

/** A custom resource's additionalPrinterColumns, rendered as apiextensions does. */
function crdPrinter(rt: ResourceType, version: string): Printer {
  const cols = rt.crd?.versions.get(version)?.printerColumns ?? [];
  if (cols.length === 0) return generic;
  return {
    columns: [NAME, ...cols.map((c) => col(c.name, { type: c.type, priority: c.priority ?? 0, format: c.format ?? '', description: c.description ?? '' }))],
    row(o, now) {
      return [
        o.metadata.name,
        ...cols.map((c) => {
          let found: unknown[];
          try {
            found = evalJsonPath(o, c.jsonPath);
          } catch {
            return null;
          }
          if (found.length === 0) return null;
          const v = found[0];
          if (c.type === 'date') return typeof v === 'string' ? ageOf(v, now) : '<invalid>';
          if (c.type === 'string') return found.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(',');
          return v;
        }),
      ];
    },
  };
}

function partialMetadata(o: KubeObject, metaApiVersion: string): JsonObject {
  return { kind: 'PartialObjectMetadata', apiVersion: metaApiVersion, metadata: o.metadata };
}

export function toTable(rt: ResourceType, version: string, objects: KubeObject[], listMeta: ListMeta, include: IncludeObject, metaApiVersion = 'meta.k8s.io/v1'): Table {
  const printer = rt.crd ? crdPrinter(rt, version) : (printers[rt.kind] ?? generic);
  const now = Date.now();
  return {
    kind: 'Table',
    apiVersion: metaApiVersion,
    metadata: listMeta,
    columnDefinitions: printer.columns,
    rows: objects.map((o) => ({
      cells: printer.row(o, now),
      ...(include === 'None' ? {} : { object: include === 'Object' ? o : partialMetadata(o, metaApiVersion) }),
    })),
  };
}
