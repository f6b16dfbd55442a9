import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CniError } from '../cni/errors.js';
import type { CniDriver } from '../primary/cniserver/index.js';

/** The agent's Prometheus metrics. */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly cniRequests = new Counter({
    name: 'seine_cni_requests_total',
    help: 'CNI requests handled, by command and outcome (ok or the CNI error code)',
    labelNames: ['command', 'result'] as const,
    registers: [this.registry],
  });
  readonly cniDuration = new Histogram({
    name: 'seine_cni_request_duration_seconds',
    help: 'Time to handle a CNI request in the agent, by command',
    labelNames: ['command'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly round = new Gauge({ name: 'seine_flow_round', help: 'The flow round of this agent run', registers: [this.registry] });
  readonly restores = new Counter({ name: 'seine_datapath_restores_total', help: 'Times the agent restored flows after ovs-vswitchd lost them', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'seine_agent_' });
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

/** `/healthz` (the process serves), `/readyz` (the node can take pods), `/metrics` (Prometheus). */
export async function serveHealth(port: number, host: string, metrics: AgentMetrics, ready: () => boolean): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' || path === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ok = ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready\n' : 'not ready\n');
    } else if (path === '/metrics') {
      metrics.registry
        .metrics()
        .then((body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body))
        .catch((e: unknown) => res.writeHead(500).end(String(e)));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
