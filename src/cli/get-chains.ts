// `seine get chains`: each ServiceChain's hops with their replicas' health and the chain's counters, from the
// status the controller writes (replica health and counters come from the agents' node reports).
import type { KubeConfig } from '@kubernetes/client-node';
import { CHAIN_GROUP, CHAIN_PLURAL, CHAIN_VERSION, type Counters, type ServiceChain } from '../chaining/api/types.js';
import { ageOf } from '../lab/apiserver/meta.js';
import { listCustomObjects } from './get-networks.js';
import { renderTable } from './table.js';

export interface ChainRow {
  namespace: string;
  name: string;
  network: string;
  /** Healthy and all replicas, per hop in order. */
  hops: Array<{ name: string; healthy: number; replicas: number; unhealthy: string[] }>;
  ready: string;
  packets: Counters;
  bytes: Counters;
  /** The Ready condition's reason (Ready, HopUnavailable, Invalid, ...). */
  reason: string;
  creationTimestamp?: string;
}

const ZERO: Counters = { forward: 0, reverse: 0 };

export function chainRows(chains: readonly ServiceChain[]): ChainRow[] {
  return chains
    .map((c) => {
      const hops = c.spec.hops.map((h) => {
        const replicas = c.status?.hops?.find((s) => s.name === h.name)?.replicas ?? [];
        return { name: h.name, healthy: replicas.filter((r) => r.healthy).length, replicas: replicas.length, unhealthy: replicas.filter((r) => !r.healthy).map((r) => `${r.pod}${r.reason ? ` (${r.reason})` : ''}`) };
      });
      const healthy = hops.reduce((a, h) => a + h.healthy, 0);
      const all = hops.reduce((a, h) => a + h.replicas, 0);
      return {
        namespace: c.metadata.namespace ?? '',
        name: c.metadata.name ?? '',
        network: c.spec.network || 'pod network',
        hops,
        ready: `${healthy}/${all}`,
        packets: c.status?.packets ?? ZERO,
        bytes: c.status?.bytes ?? ZERO,
        reason: c.status?.conditions?.find((x) => x.type === 'Ready')?.reason ?? 'Pending',
        creationTimestamp: c.metadata.creationTimestamp ? new Date(c.metadata.creationTimestamp).toISOString() : undefined,
      };
    })
    .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
}

export function chainTable(rows: readonly ChainRow[], opts: { allNamespaces: boolean; wide: boolean; now: number }): string {
  const head = [...(opts.allNamespaces ? ['namespace'] : []), 'name', 'network', 'hops', 'replicas', 'status', 'packets', 'age', ...(opts.wide ? ['bytes', 'unhealthy'] : [])];
  return renderTable(
    head,
    rows.map((r) => [
      ...(opts.allNamespaces ? [r.namespace] : []),
      r.name,
      r.network,
      // Each hop with its healthy/all replicas, in the order traffic goes through them.
      r.hops.map((h) => `${h.name}(${h.healthy}/${h.replicas})`).join(' -> '),
      r.ready,
      r.reason,
      `${r.packets.forward}/${r.packets.reverse}`,
      ageOf(r.creationTimestamp, opts.now),
      ...(opts.wide ? [`${r.bytes.forward}/${r.bytes.reverse}`, r.hops.flatMap((h) => h.unhealthy.map((u) => `${h.name}:${u}`)).join(',') || undefined] : []),
    ]),
  );
}

export async function readChains(kc: KubeConfig, namespace: string | undefined): Promise<ChainRow[]> {
  return chainRows(await listCustomObjects<ServiceChain>(kc, { group: CHAIN_GROUP, version: CHAIN_VERSION, plural: CHAIN_PLURAL }, namespace));
}
