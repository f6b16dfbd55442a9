import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { Counter, Gauge, collectDefaultMetrics, type Registry } from 'prom-client';
import { watchRestarts } from '../../k8s/informer.js';
import { IPPOOL_GROUP, IPPOOL_PLURAL, IPPOOL_VERSION, type IPPool } from '../../secondary/ippool/types.js';

/** A pool list is reused by the scrape that made it (and by one that comes within this time). */
const POOL_LIST_REUSE_MS = 1000;

/** What the controller's own metrics read at scrape time. */
export interface ControllerMetricsSource {
  leading(): boolean;
  /** The chain controller's view of replica health, while this replica leads. */
  replicaHealth(): Array<{ namespace: string; chain: string; hop: string; replica: string; healthy: boolean }>;
}

/**
 * The controller's metrics beyond the policy controller's (docs/metrics.md): process, leadership, watch restarts,
 * the IPPools' usage (from their status, the single truth of who holds what) and the chains' replica health.
 * The pools are listed when scraped rather than watched: their status changes with every allocation on every
 * node, far more often than anyone scrapes.
 */
export function registerControllerMetrics(registry: Registry, kubeConfig: KubeConfig, source: ControllerMetricsSource): void {
  let scrapedPools: Promise<readonly IPPool[]> | undefined;
  collectDefaultMetrics({ register: registry, prefix: 'seine_controller_' });
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  // One list serves both pool gauges of a scrape (they collect one after the other).
  const pools = (): Promise<readonly IPPool[]> => {
    scrapedPools ??= (custom.listClusterCustomObject({ group: IPPOOL_GROUP, version: IPPOOL_VERSION, plural: IPPOOL_PLURAL }) as Promise<{ items: IPPool[] }>)
      .then((l) => l.items)
      // No CRD, or the API server away: no pool samples this time.
      .catch(() => [])
      .finally(() => setTimeout(() => (scrapedPools = undefined), POOL_LIST_REUSE_MS).unref());
    return scrapedPools;
  };
  new Gauge({
    name: 'seine_controller_leader',
    help: '1 while this controller replica holds the lease and acts, else 0',
    registers: [registry],
    collect() {
      this.set(source.leading() ? 1 : 0);
    },
  });
  new Counter({
    name: 'seine_controller_watch_restarts_total',
    help: 'Restarts of a Kubernetes watch of this process (after an error or a stall), by informer',
    labelNames: ['informer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [informer, n] of watchRestarts) this.inc({ informer }, n);
    },
  });
  const poolGauges: Array<[name: string, help: string, pick: (u: { total: number; used: number }) => number]> = [
    ['seine_ippool_addresses', 'Addresses an IPPool can hand out (its ranges without exclusions)', (u) => u.total],
    ['seine_ippool_allocated_addresses', 'Addresses of an IPPool held by pod interfaces, as its status records them', (u) => u.used],
  ];
  for (const [name, help, pick] of poolGauges) {
    new Gauge({
      name,
      help,
      labelNames: ['pool'],
      registers: [registry],
      async collect() {
        const list = await pools();
        this.reset();
        for (const p of list) if (p.status?.usage) this.set({ pool: p.metadata?.name ?? '' }, pick(p.status.usage));
      },
    });
  }
  new Gauge({
    name: 'seine_chain_replica_healthy',
    help: '1 while a ServiceChain hop replica is healthy (its probes answer), else 0; reported by the leading controller',
    labelNames: ['namespace', 'chain', 'hop', 'replica'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of source.replicaHealth()) this.set({ namespace: r.namespace, chain: r.chain, hop: r.hop, replica: r.replica }, r.healthy ? 1 : 0);
    },
  });
}
