import { request } from 'node:http';
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { controllerCommand } from '../../../src/cli/controller.js';
import { Controller } from '../../../src/primary/controller/controller.js';
import { NodeIpamReason } from '../../../src/primary/controller/nodeipam.js';
import { CuttableProxy, eventually, sleep, startApi, testConfig, type TestApi } from './helpers.js';

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  leaseTransitions?: number;
  renewTime?: string;
}

describe('seine controller against the API server', () => {
  let t: TestApi;
  const controllers: Controller[] = [];
  const start = async (identity: string, over: Record<string, unknown> = {}, kubeConfig = t.kubeConfig()): Promise<Controller> => {
    const c = new Controller({ config: testConfig(over), kubeConfig, identity });
    controllers.push(c);
    await c.start();
    return c;
  };
  const lease = (): LeaseSpec | undefined => (t.api.resource('coordination.k8s.io/v1', 'leases').tryGet('seine-controller', 'kube-system') as { spec?: LeaseSpec } | undefined)?.spec;

  beforeEach(async () => {
    t = await startApi();
  });
  afterEach(async () => {
    for (const c of controllers.splice(0)) await c.stop();
    await t.stop();
  });

  it('assigns the lowest free subnet to nodes created before and after it starts, keeping existing ones', async () => {
    t.createNode('n-old', '10.244.0.0/24');
    t.createNode('n-a');
    t.createNode('n-far', '10.244.7.0/24');
    const c = await start('c1');
    await eventually(() => t.podCIDR('n-a'), 30_000, 'n-a assigned');
    expect(t.podCIDR('n-a')).toBe('10.244.1.0/24');
    t.createNode('n-b');
    t.createNode('n-c');
    await eventually(() => t.podCIDR('n-b') && t.podCIDR('n-c'), 30_000, 'n-b and n-c assigned');
    expect([t.podCIDR('n-b'), t.podCIDR('n-c')].sort()).toEqual(['10.244.2.0/24', '10.244.3.0/24']);
    expect(t.podCIDR('n-old')).toBe('10.244.0.0/24');
    expect(t.podCIDR('n-far')).toBe('10.244.7.0/24');
    // The test lease is 1 s: on a loaded machine a renewal can come late and leadership flap for a moment (it is
    // the only replica, so it wins again); what matters is that it leads.
    await eventually(() => c.isLeader && lease()?.holderIdentity === 'c1', 30_000, 'c1 leading');
    expect(lease()).toMatchObject({ holderIdentity: 'c1', leaseDurationSeconds: 1 });
    await eventually(() => c.nodeIpam, 30_000, 'c1 running node IPAM');
    expect(c.nodeIpam?.free).toBe(256 - 5);
    expect(t.warnings('n-a')).toEqual([]);
  });

  it('after a restart respects what nodes hold, and reuses what deleted nodes held', async () => {
    const first = await start('c1');
    for (const n of ['n1', 'n2', 'n3']) t.createNode(n);
    await eventually(() => ['n1', 'n2', 'n3'].every((n) => t.podCIDR(n)), 30_000, 'three nodes assigned');
    const before = Object.fromEntries(['n1', 'n2', 'n3'].map((n) => [n, t.podCIDR(n)]));
    await first.stop();
    controllers.splice(controllers.indexOf(first), 1);
    // While no controller runs, n2 goes away; a new node must get n2's subnet, no one else's.
    t.nodes.delete('n2');
    await start('c2');
    t.createNode('n4');
    await eventually(() => t.podCIDR('n4'), 30_000, 'n4 assigned');
    expect(t.podCIDR('n4')).toBe(before.n2);
    expect(t.podCIDR('n1')).toBe(before.n1);
    expect(t.podCIDR('n3')).toBe(before.n3);
  });

  it('releases the subnet of a deleted node and hands it out again', async () => {
    const c = await start('c1');
    for (const n of ['n1', 'n2']) t.createNode(n);
    await eventually(() => t.podCIDR('n1') && t.podCIDR('n2'), 30_000, 'assigned');
    const freed = t.podCIDR('n1');
    t.nodes.delete('n1');
    await eventually(() => !c.nodeIpam?.assignments().has('n1'), 30_000, 'n1 released');
    t.createNode('n3');
    await eventually(() => t.podCIDR('n3'), 30_000, 'n3 assigned');
    expect(t.podCIDR('n3')).toBe(freed);
  });

  it('reports an exhausted pool on the node and assigns once a subnet frees up', async () => {
    const c = await start('c1', { clusterCIDR: '10.250.0.0/23', nodeCIDRMaskSize: 24 });
    t.createNode('n1');
    t.createNode('n2');
    await eventually(() => t.podCIDR('n1') && t.podCIDR('n2'), 30_000, 'two nodes assigned');
    t.createNode('n3');
    const warning = await eventually(() => t.warnings('n3')[0], 30_000, 'exhaustion event');
    expect(warning).toBe(`${NodeIpamReason.CIDRNotAvailable}: no free /24 left in cluster CIDR 10.250.0.0/23; the node gets one when another node is deleted`);
    expect(t.podCIDR('n3')).toBeUndefined();
    // Updates of the waiting node neither assign nor repeat the event.
    t.nodes.patch('n3', { metadata: { labels: { touched: 'yes' } } });
    await sleep(300);
    expect(t.warnings('n3')).toHaveLength(1);
    expect(c.nodeIpam?.free).toBe(0);
    const freed = t.podCIDR('n1');
    t.nodes.delete('n1');
    await eventually(() => t.podCIDR('n3'), 30_000, 'n3 assigned after n1 left');
    expect(t.podCIDR('n3')).toBe(freed);
  });

  it('leaves podCIDRs outside the cluster CIDR or overlapping another node alone, with a warning, and allocates around them', async () => {
    t.createNode('outside', '192.168.7.0/24');
    // Created within the same second: the name decides which one came first.
    t.createNode('a-wide', '10.244.0.0/23');
    t.createNode('b-overlap', '10.244.1.0/24');
    t.createNode('ipv6', 'fd00:10::/64');
    await start('c1');
    t.createNode('fresh');
    await eventually(() => t.podCIDR('fresh'), 30_000, 'fresh assigned');
    // 10.244.0.0/23 covers the first two /24s.
    expect(t.podCIDR('fresh')).toBe('10.244.2.0/24');
    await eventually(() => t.warnings('b-overlap').length && t.warnings('outside').length && t.warnings('ipv6').length, 30_000, 'warnings');
    expect(t.warnings('outside')).toEqual([`${NodeIpamReason.PodCIDROutsideClusterCIDR}: podCIDR 192.168.7.0/24 is not inside the cluster CIDR 10.244.0.0/16; Seine leaves it as it is`]);
    expect(t.warnings('b-overlap')).toEqual([`${NodeIpamReason.PodCIDROverlap}: podCIDR 10.244.1.0/24 overlaps the podCIDR of a-wide (10.244.0.0/23); Seine leaves it as it is`]);
    expect(t.warnings('ipv6')).toEqual([`${NodeIpamReason.InvalidPodCIDR}: podCIDR fd00:10::/64 is not an IPv4 CIDR; Seine leaves it as it is`]);
    expect(t.warnings('a-wide')).toEqual([]);
    expect([t.podCIDR('outside'), t.podCIDR('a-wide'), t.podCIDR('b-overlap'), t.podCIDR('ipv6')]).toEqual(['192.168.7.0/24', '10.244.0.0/23', '10.244.1.0/24', 'fd00:10::/64']);
  });

  it('with two replicas only the leader allocates; the other takes over when the leader stops', async () => {
    const a = await start('replica-a');
    const b = await start('replica-b');
    const leader = await eventually(() => (a.isLeader ? a : b.isLeader ? b : undefined), 30_000, 'a leader');
    const standby = leader === a ? b : a;
    // Both keep competing for a while; the lease never changes hands and only one acts.
    for (let i = 0; i < 10; i++) {
      expect([a.isLeader, b.isLeader].filter(Boolean)).toHaveLength(1);
      await sleep(100);
    }
    expect(lease()?.holderIdentity).toBe(leader.identity);
    expect(standby.nodeIpam).toBeUndefined();
    t.createNode('n1');
    await eventually(() => t.podCIDR('n1'), 30_000, 'n1 assigned');
    expect(leader.nodeIpam?.assignments().get('n1')).toBe('10.244.0.0/24');
    const transitions = lease()?.leaseTransitions ?? 0;

    await leader.stop();
    controllers.splice(controllers.indexOf(leader), 1);
    await eventually(() => standby.isLeader, 30_000, 'failover');
    expect(lease()).toMatchObject({ holderIdentity: standby.identity, leaseTransitions: transitions + 1 });
    t.createNode('n2');
    await eventually(() => t.podCIDR('n2'), 30_000, 'n2 assigned by the new leader');
    expect(t.podCIDR('n2')).toBe('10.244.1.0/24');
    expect(t.podCIDR('n1')).toBe('10.244.0.0/24');
  });

  it('a leader cut off from the API server stops acting, and the other replica takes over once the lease expires', async () => {
    const proxy = await CuttableProxy.start(t.api.port);
    try {
      const a = await start('replica-a', {}, proxy.kubeConfig(t.api));
      await eventually(() => a.isLeader && a.nodeIpam?.isSynced, 30_000, 'a leads');
      const b = await start('replica-b');
      await sleep(1500);
      expect(b.isLeader).toBe(false);
      proxy.partition();
      // a gives up after renewDeadline (0.6 s) without a renewal; b waits out the lease (1 s) from the last renewal
      // it saw. That renewal may be older than the cut (on a loaded machine a renews late), so the takeover is
      // measured from a's last renewal as the API server recorded it, not from the cut.
      let lastRenewal = 0;
      const watchRenewals = (): void => {
        const l = lease();
        if (l?.holderIdentity === 'replica-a' && l.renewTime) lastRenewal = Math.max(lastRenewal, Date.parse(l.renewTime));
      };
      watchRenewals();
      await eventually(() => (watchRenewals(), !a.isLeader && a.nodeIpam === undefined), 30_000, 'a stops acting');
      await eventually(() => (watchRenewals(), b.isLeader), 30_000, 'b takes over');
      // The lease is 1 s; MicroTime and the two clocks (same machine) leave a few milliseconds of slack.
      expect(Date.now() - lastRenewal).toBeGreaterThanOrEqual(1000 - 20);
      expect(lease()?.holderIdentity).toBe('replica-b');
      t.createNode('n1');
      await eventually(() => t.podCIDR('n1'), 30_000, 'n1 assigned by b');
      expect(b.nodeIpam?.assignments().get('n1')).toBe(t.podCIDR('n1'));
      expect(a.isLeader).toBe(false);
    } finally {
      await proxy.close();
    }
  });

  it('without leader election it acts at once; with allocation off it leaves nodes alone', async () => {
    const c = await start('solo', { leaderElection: { enabled: false } });
    expect(c.isLeader).toBe(true);
    t.createNode('n1');
    await eventually(() => t.podCIDR('n1'), 30_000, 'n1 assigned');
    expect(lease()).toBeUndefined();
    await c.stop();
    controllers.splice(0);
    const off = await start('off', { allocateNodeCIDRs: false });
    await eventually(() => off.isLeader, 30_000, 'leader');
    t.createNode('n2');
    await sleep(500);
    expect(t.podCIDR('n2')).toBeUndefined();
    expect(off.nodeIpam).toBeUndefined();
  });

  it('serves /healthz, /readyz and /metrics on the health port', async () => {
    const port = await new Promise<number>((r) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => r(p));
      });
    });
    const c = await start('c1', { healthPort: port });
    expect(c.healthPort).toBe(port);
    const get = (path: string): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) =>
        request({ host: '127.0.0.1', port, path }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        })
          .on('error', reject)
          .end(),
      );
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(200);
    // The leader's policy realization, per policy (none here: the metric families are there, without series).
    await eventually(async () => c.policyController !== undefined, 30_000, 'policy controller running');
    const metrics = await get('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('# TYPE seine_policy_realized_nodes gauge');
    expect((await get('/nope')).status).toBe(404);
  });

  it('`seine controller` runs until stopped and hands the lease back', async () => {
    const config = join(t.dir, 'controller.yaml');
    writeFileSync(config, stringifyYaml({ clusterCIDR: '10.99.0.0/16', nodeCIDRMaskSize: 26, leaderElection: { leaseDurationSeconds: 2, renewDeadlineSeconds: 1, retryPeriodSeconds: 0.2 } }));
    const ac = new AbortController();
    let started: Controller | undefined;
    const running = controllerCommand({ signal: ac.signal, onStarted: (c) => (started = c) }).parseAsync(['--config', config, '--kubeconfig', t.kubeconfigPath], { from: 'user' });
    t.createNode('n1');
    await eventually(() => t.podCIDR('n1'), 30_000, 'n1 assigned');
    expect(t.podCIDR('n1')).toBe('10.99.0.0/26');
    expect(lease()?.holderIdentity).toBe(started?.identity);
    ac.abort();
    await running;
    expect(lease()).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });
  });
});
