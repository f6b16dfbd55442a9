import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CniError } from '../cni/errors.js';
import { watchRestarts } from '../k8s/informer.js';
import type { CniDriver } from '../primary/cniserver/index.js';

/** One labelled value of a metric read at scrape time. */
export interface Sample<L extends string> {
  labels: Partial<Record<L, string>>;
  value: number;
}

/**
 * The agent's Prometheus metrics (docs/metrics.md lists them). Names follow Prometheus conventions: `seine_`
 * and the subsystem, base units, counters end in `_total`. What a feature owns it registers here, read at
 * scrape time from its state.
 */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly cniRequests = new Counter({
    name: 'seine_agent_cni_requests_total',
    help: 'CNI requests handled, by command and result (ok, or the CNI error code)',
    labelNames: ['command', 'result'] as const,
    registers: [this.registry],
  });
  readonly cniDuration = new Histogram({
    name: 'seine_agent_cni_request_duration_seconds',
    help: 'Time to handle a CNI request in the agent, by command',
    labelNames: ['command'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly round = new Gauge({ name: 'seine_agent_flow_round', help: 'The flow round of this agent run (its flows carry it in their cookies)', registers: [this.registry] });
  readonly restores = new Counter({ name: 'seine_agent_datapath_restores_total', help: 'Times the agent restored flows after ovs-vswitchd lost them', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'seine_agent_' });
    this.counters('seine_agent_watch_restarts_total', 'Restarts of a Kubernetes watch of this process (after an error or a stall), by informer', ['informer'], () =>
      [...watchRestarts].map(([informer, value]) => ({ labels: { informer }, value })),
    );
  }

  /** A gauge a feature owns, read at scrape time. */
  gauge(name: string, help: string, read: () => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }

  /** A labelled gauge read at scrape time: every scrape shows exactly the samples `read` returns. */
  gauges<L extends string>(name: string, help: string, labelNames: readonly L[], read: () => Sample<L>[] | Promise<Sample<L>[]>): Gauge<L> {
    return new Gauge<L>({ name, help, labelNames, registers: [this.registry], collect: scrapeWith(read, (m: Gauge<L>, s) => m.set(s.labels, s.value)) });
  }

  /**
   * A labelled counter read at scrape time from a source that only grows (OVS flow counters, a process's
   * tallies); when the source starts over (a flow re-installed), Prometheus sees a counter reset, as it should.
   */
  counters<L extends string>(name: string, help: string, labelNames: readonly L[], read: () => Sample<L>[] | Promise<Sample<L>[]>): Counter<L> {
    return new Counter<L>({ name, help, labelNames, registers: [this.registry], collect: scrapeWith(read, (m: Counter<L>, s) => m.inc(s.labels, s.value)) });
  }

  /** Wraps a CNI driver so every call is counted and timed. */
  instrument(driver: CniDriver): CniDriver {
    const timed =
      <A extends unknown[], R>(command: string, fn: (...a: A) => Promise<R>) =>
      async (...a: A): Promise<R> => {
        const end = this.cniDuration.startTimer({ command });
        try {
          const r = await fn(...a);
          this.cniRequests.inc({ command, result: 'ok' });
          return r;
        } catch (e) {
          this.cniRequests.inc({ command, result: e instanceof CniError ? String(e.code) : 'error' });
          throw e;
        } finally {
          end();
        }
      };
    return {
      add: timed('ADD', (r) => driver.add(r)),
      del: timed('DEL', (r) => driver.del(r)),
      check: timed('CHECK', (r) => driver.check(r)),
      gc: timed('GC', (r) => driver.gc(r)),
      status: timed('STATUS', (r) => driver.status(r)),
    };
  }
}

/** A collect() that replaces a metric's samples with what `read` returns now. */
function scrapeWith<L extends string, M extends { reset(): void }>(read: () => Sample<L>[] | Promise<Sample<L>[]>, put: (m: M, s: Sample<L>) => void): (this: M) => Promise<void> {
  return async function (this: M) {
    const samples = await read();
    this.reset();
    for (const s of samples) put(this, s);
  };
}
