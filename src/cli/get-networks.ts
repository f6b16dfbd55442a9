// `seine get networks` and `seine get ippools`: the secondary networks (NetworkAttachmentDefinitions as Seine reads
// them: type, segment, bridge, addressing, the pods attached per node) and the cluster-wide pools' usage. Read from
// the API server with the kubeconfig's user, as kubectl would: the pods' network-status says where each network is
// attached, the pools' status who holds which address.
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { apiStatus } from '../k8s/api.js';
import { ageOf } from '../lab/apiserver/meta.js';
import { NETWORK_STATUS_ANNOTATION, parseNetworkStatus } from '../secondary/annotations/index.js';
import { parseNad } from '../secondary/nad/config.js';
import type { NadNetwork, NetworkAttachmentDefinition } from '../secondary/nad/types.js';
import { PoolLayout } from '../secondary/ippool/ranges.js';
import { IPPOOL_GROUP, IPPOOL_PLURAL, IPPOOL_VERSION, type IPPool } from '../secondary/ippool/types.js';
import { renderTable } from './table.js';

/** What `seine get networks` shows of one NAD. */
export interface NetworkRow {
  namespace: string;
  name: string;
  /** vlan, overlay, function, delegated (PLUGIN), node file, or invalid. */
  type: string;
  /** `vlan 100`, `vni 5001`, what a function network is bound to; empty for others. */
  segment: string;
  bridge: string;
  /** `pools A,B`, `static`, `PLUGIN` (delegated IPAM), or empty. */
  ipam: string;
  /** Pods whose network-status lists the network, by node. */
  pods: Record<string, number>;
  /** Why the NAD cannot be used (invalid only). */
  problem?: string;
  creationTimestamp?: string;
}

/** What `seine get ippools` shows of one pool. */
export interface PoolRow {
  name: string;
  ranges: string[];
  gateway: string;
  vlan?: number;
  used: number;
  total: number;
  /** Allocations by node (their owners' node). */
  byNode: Record<string, number>;
  /** Blocks of the pool claimed for each node (status.blocks). */
  blocksByNode: Record<string, number>;
  creationTimestamp?: string;
}

interface NadObject extends NetworkAttachmentDefinition {
  metadata: { name?: string; namespace?: string; creationTimestamp?: string };
}

function describeNetwork(n: NadNetwork): Pick<NetworkRow, 'type' | 'segment' | 'bridge' | 'ipam'> {
  if (n.kind === 'node-file') return { type: 'node file', segment: '', bridge: '', ipam: '' };
  if (n.kind === 'delegated') return { type: `delegated (${n.list.plugins.map((p) => p.type).join(',')})`, segment: '', bridge: '', ipam: '' };
  const net = n.network;
  if (net.networkType === 'function') return { type: 'function', segment: net.network ? `bound to ${net.network.namespace}/${net.network.name}` : 'pod network', bridge: '', ipam: '' };
  const ipam = net.ipam.type === 'seine' ? `pools ${net.ipam.ippools.join(',')}` : net.ipam.type === 'static' ? 'static' : net.ipam.plugin;
  return { type: net.networkType, segment: net.networkType === 'vlan' ? `vlan ${net.vlan}` : `vni ${net.vni}`, bridge: net.bridge, ipam };
}

/** The rows of the NADs in `namespace` (all when undefined), with the given pods' attachments counted. */
export function networkRows(nads: readonly NadObject[], pods: readonly V1Pod[]): NetworkRow[] {
  const attached = new Map<string, Record<string, number>>();
  for (const pod of pods) {
    if (pod.status?.phase !== 'Running') continue;
    const node = pod.spec?.nodeName ?? '';
    for (const s of parseNetworkStatus(pod.metadata?.annotations?.[NETWORK_STATUS_ANNOTATION])) {
      if (s.default) continue;
      const perNode = attached.get(s.name) ?? {};
      perNode[node] = (perNode[node] ?? 0) + 1;
      attached.set(s.name, perNode);
    }
  }
  return nads
    .map((nad) => {
      const namespace = nad.metadata.namespace ?? '';
      const name = nad.metadata.name ?? '';
      const base = { namespace, name, pods: attached.get(`${namespace}/${name}`) ?? {}, creationTimestamp: nad.metadata.creationTimestamp };
      try {
        return { ...base, ...describeNetwork(parseNad(nad)) };
      } catch (e) {
        return { ...base, type: 'invalid', segment: '', bridge: '', ipam: '', problem: e instanceof Error ? e.message : String(e) };
      }
    })
    .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
}

export function poolRows(pools: readonly IPPool[]): PoolRow[] {
  return pools
    .map((p) => {
      const byNode: Record<string, number> = {};
      for (const a of p.status?.allocations ?? []) byNode[a.owner.node ?? ''] = (byNode[a.owner.node ?? ''] ?? 0) + 1;
      const blocksByNode: Record<string, number> = {};
      for (const b of p.status?.blocks ?? []) blocksByNode[b.node] = (blocksByNode[b.node] ?? 0) + 1;
      return {
        name: p.metadata.name,
        ranges: p.spec.ipRanges.map((r) => r.cidr ?? `${r.start}-${r.end}`),
        gateway: p.spec.subnetInfo.gateway,
        ...(p.spec.subnetInfo.vlan !== undefined ? { vlan: p.spec.subnetInfo.vlan } : {}),
        // The allocations themselves: status.usage is written a moment after them.
        used: p.status?.allocations?.length ?? p.status?.usage?.used ?? 0,
        // A pool no one has allocated from yet has no usage in its status: its size from its spec.
        total: p.status?.usage?.total ?? poolSize(p),
        byNode,
        blocksByNode,
        creationTimestamp: p.metadata.creationTimestamp as string | undefined,
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

function poolSize(p: IPPool): number {
  try {
    return PoolLayout.parse(p.spec).total;
  } catch {
    return 0; // an invalid spec: the controller's validation says why
  }
}

const perNode = (counts: Record<string, number>): string | undefined =>
  Object.keys(counts).length
    ? Object.entries(counts)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([node, n]) => `${node || '<none>'}=${n}`)
        .join(',')
    : undefined;
const sum = (counts: Record<string, number>): number => Object.values(counts).reduce((a, n) => a + n, 0);

export function networkTable(rows: readonly NetworkRow[], opts: { allNamespaces: boolean; wide: boolean; now: number }): string {
  const head = [...(opts.allNamespaces ? ['namespace'] : []), 'name', 'type', 'segment', 'bridge', 'ipam', 'pods', 'age', ...(opts.wide ? ['by node', 'problem'] : [])];
  return renderTable(
    head,
    rows.map((r) => [
      ...(opts.allNamespaces ? [r.namespace] : []),
      r.name,
      r.type,
      r.segment || undefined,
      r.bridge || undefined,
      r.ipam || undefined,
      sum(r.pods),
      ageOf(r.creationTimestamp, opts.now),
      ...(opts.wide ? [perNode(r.pods), r.problem] : []),
    ]),
  );
}

export function poolTable(rows: readonly PoolRow[], opts: { wide: boolean; now: number }): string {
  const head = ['name', 'ranges', 'used', 'total', 'usage', 'age', ...(opts.wide ? ['gateway', 'vlan', 'by node', 'blocks'] : [])];
  return renderTable(
    head,
    rows.map((r) => [
      r.name,
      r.ranges.join(','),
      r.used,
      r.total,
      r.total ? `${Math.round((100 * r.used) / r.total)}%` : undefined,
      ageOf(r.creationTimestamp, opts.now),
      ...(opts.wide ? [r.gateway, r.vlan, perNode(r.byNode), perNode(r.blocksByNode)] : []),
    ]),
  );
}

/** Reads the NADs (of `namespace`, or all) and the pods that show where they are attached (in any namespace). */
export async function readNetworks(kc: KubeConfig, namespace: string | undefined): Promise<NetworkRow[]> {
  const core = kc.makeApiClient(CoreV1Api);
  const nads = await listCustomObjects<NadObject>(kc, { group: 'k8s.cni.cncf.io', version: 'v1', plural: 'network-attachment-definitions' }, namespace);
  // Pods of any namespace may attach a NAD (`ns/name`): all of them, unless the user may list only this namespace's.
  const pods = await core.listPodForAllNamespaces().catch((e: unknown) => {
    if (namespace && apiStatus(e) === 403) return core.listNamespacedPod({ namespace });
    throw e;
  });
  return networkRows(nads, pods.items);
}

export async function readPools(kc: KubeConfig): Promise<PoolRow[]> {
  return poolRows(await listCustomObjects<IPPool>(kc, { group: IPPOOL_GROUP, version: IPPOOL_VERSION, plural: IPPOOL_PLURAL }));
}

/** The custom objects of a kind, in `namespace` or in all namespaces (and cluster-scoped kinds). */
export async function listCustomObjects<T>(kc: KubeConfig, kind: { group: string; version: string; plural: string }, namespace?: string): Promise<T[]> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const list = (namespace ? await custom.listNamespacedCustomObject({ ...kind, namespace }) : await custom.listClusterCustomObject(kind)) as { items: T[] };
  return list.items;
}
