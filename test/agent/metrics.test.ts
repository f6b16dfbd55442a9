import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniError } from '../../src/cni/errors.js';
import { AgentMetrics } from '../../src/agent/metrics.js';
import type { CniDriver } from '../../src/primary/cniserver/index.js';
import { HealthServer } from '../../src/util/health-server.js';

/** GET over a unix socket: status and body. */
function getUnix(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ socketPath, path }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

describe('agent health and metrics endpoint', () => {
  it('counts and times CNI requests by outcome, serves readiness, liveness and metrics on TCP and a unix socket', async () => {
    let ready = false;
    let live = true;
    const metrics = new AgentMetrics();
    metrics.gauge('seine_agent_pods', 'Pods', () => 7);
    let flows = 3;
    metrics.gauges('seine_agent_ovs_flows', 'Flows', ['bridge'], async () => [{ labels: { bridge: 'br-int' }, value: flows }]);
    let packets = 5;
    metrics.counters('seine_test_packets_total', 'Packets', ['rule'], () => [{ labels: { rule: 'a' }, value: packets }]);
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
    const dir = mkdtempSync(join(tmpdir(), 'seine-health-'));
    const socket = join(dir, 'metrics.sock');
    const server = new HealthServer({ live: () => live, ready: () => ready, registry: metrics.registry });
    try {
      await server.listen({ port: 0, host: '127.0.0.1' });
      await server.listen({ path: socket });
      const base = `http://127.0.0.1:${server.port}`;
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/readyz`)).status).toBe(503);
      ready = true;
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      live = false;
      expect((await fetch(`${base}/livez`)).status).toBe(503);
      const text = await (await fetch(`${base}/metrics`)).text();
      expect(text).toMatch(/seine_agent_cni_requests_total\{command="ADD",result="ok"\} 2/);
      expect(text).toMatch(/seine_agent_cni_requests_total\{command="DEL",result="11"\} 1/);
      expect(text).toMatch(/seine_agent_cni_request_duration_seconds_count\{command="ADD"\} 2/);
      expect(text).toMatch(/seine_agent_pods 7/);
      expect(text).toMatch(/seine_agent_ovs_flows\{bridge="br-int"\} 3/);
      expect(text).toMatch(/# TYPE seine_test_packets_total counter\nseine_test_packets_total\{rule="a"\} 5/);
      expect(text).toMatch(/seine_agent_process_resident_memory_bytes/);
      expect((await fetch(`${base}/nope`)).status).toBe(404);
      // Read afresh at every scrape, over the unix socket too.
      flows = 4;
      packets = 9;
      const again = await getUnix(socket, '/metrics');
      expect(again.status).toBe(200);
      expect(again.body).toMatch(/seine_agent_ovs_flows\{bridge="br-int"\} 4/);
      expect(again.body).toMatch(/seine_test_packets_total\{rule="a"\} 9/);
      expect((await getUnix(socket, '/readyz')).status).toBe(200);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a unix socket left by an earlier run does not stop the endpoint from listening', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'seine-health-'));
    const socket = join(dir, 'metrics.sock');
    const metrics = new AgentMetrics();
    const first = new HealthServer({ live: () => true, ready: () => true, registry: metrics.registry });
    const second = new HealthServer({ live: () => true, ready: () => true, registry: metrics.registry });
    try {
      await first.listen({ path: socket });
      // The first process died without closing: its socket file stays.
      await second.listen({ path: socket });
      expect((await getUnix(socket, '/healthz')).status).toBe(200);
    } finally {
      await first.close();
      await second.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
