import type { AddressInfo } from 'node:net';
import { CniError } from '../../src/cni/errors.js';
import { AgentMetrics, serveHealth } from '../../src/agent/metrics.js';
import type { CniDriver } from '../../src/primary/cniserver/index.js';

describe('agent health and metrics endpoint', () => {
  it('counts and times CNI requests by outcome, and serves readiness', async () => {
    let ready = false;
    const metrics = new AgentMetrics();
    metrics.gauge('seine_pods', 'Pod interfaces attached to the integration bridge', () => 7);
    const driver: CniDriver = {
      add: async () => ({ cniVersion: '1.0.0' }),
      del: async () => {
        throw new CniError(11, 'busy');
      },
      check: async () => undefined,
      gc: async () => undefined,
      status: async () => undefined,
    };
    const d = metrics.instrument(driver);
    await d.add({} as never);
    await d.add({} as never);
    await expect(d.del({} as never)).rejects.toThrow('busy');
    const server = await serveHealth(0, '127.0.0.1', metrics, () => ready);
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/readyz`)).status).toBe(503);
      ready = true;
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      const text = await (await fetch(`${base}/metrics`)).text();
      expect(text).toMatch(/seine_cni_requests_total\{command="ADD",result="ok"\} 2/);
      expect(text).toMatch(/seine_cni_requests_total\{command="DEL",result="11"\} 1/);
      expect(text).toMatch(/seine_cni_request_duration_seconds_count\{command="ADD"\} 2/);
      expect(text).toMatch(/seine_pods 7/);
      expect(text).toMatch(/seine_agent_process_resident_memory_bytes/);
      expect((await fetch(`${base}/nope`)).status).toBe(404);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
