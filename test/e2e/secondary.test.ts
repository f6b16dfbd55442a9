import { CustomObjectsApi, type V1Pod } from '@kubernetes/client-node';
import { join } from 'node:path';
import { run } from '../../src/host/exec.js';
import type { Lab } from '../../src/lab/lab.js';
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION, type NetworkStatus } from '../../src/secondary/annotations/index.js';
import { startCapture } from '../harness/capture.js';
import { eventually, kubectl, podExec, simplePod, startTestLab, waitRunning } from '../harness/lab.js';

const EXAMPLES = join(process.cwd(), 'manifests', 'examples', 'secondary-networks.yaml');

async function addrOf(lab: Lab, pod: V1Pod, ifname: string): Promise<{ ip?: string; mac?: string; mtu?: number }> {
  const [l] = JSON.parse(await podExec(lab, pod, ['ip', '-json', 'addr', 'show', 'dev', ifname])) as Array<{ address: string; mtu: number; addr_info: Array<{ family: string; local: string }> }>;
  return { ip: l?.addr_info.find((a) => a.family === 'inet')?.local, mac: l?.address, mtu: l?.mtu };
}

async function pings(lab: Lab, from: V1Pod, ip: string): Promise<boolean> {
  try {
    const out = await podExec(lab, from, ['ping', '-c', '3', '-i', '0.2', '-W', '1', ip]);
    expect(out).not.toMatch(/DUP!/);
    return /[123] received/.test(out);
  } catch {
    return false;
  }
}

function status(pod: V1Pod): NetworkStatus[] {
  return JSON.parse(pod.metadata!.annotations![NETWORK_STATUS_ANNOTATION]!) as NetworkStatus[];
}

describe('secondary networks (NADs + networks annotation) on 3 nodes', () => {
  let lab: Lab;
  const pods: Record<string, V1Pod> = {};
  const make = async (name: string, node: number, networks: string, command?: string[]): Promise<V1Pod> => {
    await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod(name, { node: lab.plan.nodes[node]!.name, annotations: { [NETWORKS_ANNOTATION]: networks }, command }) });
    return (pods[name] = await waitRunning(lab, name, 'default', 60_000));
  };
  const fresh = async (name: string): Promise<V1Pod> => (pods[name] = await lab.core.readNamespacedPod({ name, namespace: 'default' }));

  beforeAll(async () => {
    lab = await startTestLab({ nodes: 3 });
    // A NIC for macvlan to sit on (veth: this kernel has no dummy module).
    for (const n of lab.nodes) await run('ip', ['-batch', '-'], { netns: n.netns, input: 'link add mv0 type veth peer name mv0p\nlink set mv0 up\nlink set mv0p up\n' });
    await kubectl(lab, ['apply', '-f', EXAMPLES]);
    await make('v1', 0, 'vlan100,vlan200');
    await make('v2', 1, 'vlan100');
    await make('v3', 2, 'vlan200');
    await make('b1', 0, 'blue');
    await make('b2', 1, 'blue');
    await make('r2', 1, 'red');
    // A requested address that exists only on red, to prove VNI isolation with identical subnets.
    await make('r3', 2, JSON.stringify([{ name: 'red', ips: ['10.50.0.99/24'] }]));
    await make('plain', 1, '');
  }, 240_000);
  afterAll(async () => {
    await lab?.down();
  }, 120_000);

  it('same-VLAN pods reach each other across nodes; different VLANs do not', async () => {
    const v1_100 = await addrOf(lab, pods.v1!, 'net1');
    const v1_200 = await addrOf(lab, pods.v1!, 'net2');
    const v2_100 = await addrOf(lab, pods.v2!, 'net1');
    const v3_200 = await addrOf(lab, pods.v3!, 'net1');
    expect(v1_100.ip).toMatch(/^10\.100\.0\./);
    expect(v1_200.ip).toMatch(/^10\.200\.0\./);
    expect(await pings(lab, pods.v2!, v1_100.ip!)).toBe(true);
    expect(await pings(lab, pods.v3!, v1_200.ip!)).toBe(true);
    // v2 is only on VLAN 100, v3 only on 200.
    expect(await pings(lab, pods.v2!, v3_200.ip!)).toBe(false);
    expect(await pings(lab, pods.v3!, v2_100.ip!)).toBe(false);
  });

  it('secondary traffic does not leak onto the primary network, nor the reverse', async () => {
    const v2_100 = await addrOf(lab, pods.v2!, 'net1');
    // A pod without the network cannot reach its addresses through the pod network.
    expect(await pings(lab, pods.plain!, v2_100.ip!)).toBe(false);
    // While VLAN pods talk, the node's primary gateway sees none of it.
    const capture = startCapture(lab.nodes[0]!.netns, ['-i', 'seine-gw0', 'net 10.100.0.0/16 or net 10.200.0.0/16']);
    await capture.ready;
    expect(await pings(lab, pods.v2!, (await addrOf(lab, pods.v1!, 'net1')).ip!)).toBe(true);
    expect(await capture.stop()).not.toMatch(/10\.(100|200)\.0\./);
    // Primary traffic still works beside it.
    expect(await pings(lab, pods.v1!, pods.plain!.status!.podIP!)).toBe(true);
  });

  it('an overlay network spans nodes and is isolated from another overlay with the same subnet', async () => {
    const b1 = await addrOf(lab, pods.b1!, 'net1');
    const b2blue = await addrOf(lab, pods.b2!, 'net1');
    const b2red = await addrOf(lab, pods.r2!, 'net1');
    const r3 = await addrOf(lab, pods.r3!, 'net1');
    expect(b1.mtu).toBe(1400);
    // Tunnels follow the nodes' published VNIs: the peer side converges within moments of the pod starting.
    await eventually('blue across nodes', async () => ((await pings(lab, pods.b1!, b2blue.ip!)) ? true : undefined), 60_000);
    await eventually('red across nodes', async () => ((await pings(lab, pods.r3!, b2red.ip!)) ? true : undefined), 60_000);
    // Same subnet, different VNI: 10.50.0.99 exists only on red, so blue never reaches it.
    expect(r3.ip).toBe('10.50.0.99');
    expect(await pings(lab, pods.r2!, r3.ip!)).toBe(true);
    expect(await pings(lab, pods.b1!, r3.ip!)).toBe(false);
    expect(await pings(lab, pods.b2!, r3.ip!)).toBe(false);
  });

  it('a pod with three attachments: net1..net3, static ips and mac honoured, default-route moved, correct network-status', async () => {
    const networks = JSON.stringify([
      { name: 'vlan100' },
      { name: 'mgmt', ips: ['10.30.0.7/24'], mac: '02:00:00:aa:bb:cc' },
      { name: 'blue', 'default-route': ['10.50.0.1'] },
    ]);
    const p = await make('multi', 0, networks);
    const net1 = await addrOf(lab, p, 'net1');
    const net2 = await addrOf(lab, p, 'net2');
    const net3 = await addrOf(lab, p, 'net3');
    expect(net1.ip).toMatch(/^10\.100\.0\./);
    expect(net2).toMatchObject({ ip: '10.30.0.7', mac: '02:00:00:aa:bb:cc' });
    expect(net3.ip).toMatch(/^10\.50\.0\./);
    const routes = JSON.parse(await podExec(lab, p, ['ip', '-json', 'route', 'show', 'default'])) as Array<{ gateway: string; dev: string }>;
    expect(routes).toEqual([expect.objectContaining({ gateway: '10.50.0.1', dev: 'net3' })]);
    const st = await eventually('network-status with 4 entries', async () => {
      const s = status(await fresh('multi'));
      return s.length === 4 ? s : undefined;
    });
    expect(st[0]).toMatchObject({ name: 'seine', interface: 'eth0', default: true, ips: [p.status!.podIP] });
    expect(st.slice(1).map((e) => [e.name, e.interface, e.ips?.[0]])).toEqual([
      ['default/vlan100', 'net1', net1.ip],
      ['default/mgmt', 'net2', '10.30.0.7'],
      ['default/blue', 'net3', net3.ip],
    ]);
    expect(st[2]!.mac).toBe('02:00:00:aa:bb:cc');
    expect(st[3]!['default-route']).toEqual(['10.50.0.1']);
    // The pool records the allocation for this pod.
    const pool = (await lab.kubeConfig.makeApiClient(CustomObjectsApi).getClusterCustomObject({ group: 'crd.seine.dev', version: 'v1alpha1', plural: 'ippools', name: 'vlan100' })) as {
      status: { allocations: Array<{ ip: string; owner: { podName: string } }> };
    };
    expect(pool.status.allocations).toContainEqual(expect.objectContaining({ ip: net1.ip, owner: expect.objectContaining({ podName: 'multi' }) }));
  });

  it('delegation: a macvlan NAD (reference plugin) works beside Seine networks', async () => {
    const m1 = await make('mv-a', 2, 'macvlan,red');
    const m2 = await make('mv-b', 2, 'macvlan');
    const a = await addrOf(lab, m1, 'net1');
    const b = await addrOf(lab, m2, 'net1');
    expect(a.ip).toMatch(/^10\.77\.0\./);
    expect(await pings(lab, m1, b.ip!)).toBe(true);
    const st = status(await fresh('mv-a'));
    expect(st.map((e) => e.name)).toEqual(['seine', 'default/macvlan', 'default/red']);
  });

  it('hot-plug adds and removes an interface on a running pod while traffic on eth0 continues', async () => {
    const p = await make('hot', 1, '');
    const target = pods.plain!.status!.podIP!;
    // -w: ping waits for every reply (by default it lingers only two round trips after the last request, and on a
    // busy machine the last replies may come later than that).
    const stream = podExec(lab, p, ['ping', '-c', '40', '-i', '0.1', '-w', '20', target], 30_000);
    await lab.core.patchNamespacedPod(
      { name: 'hot', namespace: 'default', body: { metadata: { annotations: { [NETWORKS_ANNOTATION]: 'vlan100@data0' } } } },
      (await import('../../src/k8s/api.js')).MERGE_PATCH,
    );
    const data0 = await eventually('data0 added', async () => (await addrOf(lab, p, 'data0').catch(() => ({ ip: undefined }))).ip, 60_000);
    expect(await pings(lab, pods.v1!, data0)).toBe(true);
    await lab.core.patchNamespacedPod(
      { name: 'hot', namespace: 'default', body: { metadata: { annotations: { [NETWORKS_ANNOTATION]: '' } } } },
      (await import('../../src/k8s/api.js')).MERGE_PATCH,
    );
    await eventually('data0 removed', async () => ((await addrOf(lab, p, 'data0').catch(() => undefined)) === undefined ? true : undefined), 60_000);
    const out = await stream;
    expect(out).toMatch(/40 packets transmitted, 40 received/);
    expect(status(await fresh('hot')).map((e) => e.interface)).toEqual(['eth0']);
  }, 180_000);

  it('hot-plug keeps auto-named interfaces in place when an earlier element is removed', async () => {
    const p = await make('shift', 0, 'vlan100,vlan200');
    const net2 = await addrOf(lab, p, 'net2');
    const v3_200 = (await addrOf(lab, pods.v3!, 'net1')).ip!;
    // Traffic on net2 (VLAN 200) while net1 (VLAN 100) goes: net2 must not be torn down and re-made.
    const stream = podExec(lab, p, ['ping', '-c', '40', '-i', '0.1', '-w', '20', '-I', 'net2', v3_200], 30_000);
    await lab.core.patchNamespacedPod(
      { name: 'shift', namespace: 'default', body: { metadata: { annotations: { [NETWORKS_ANNOTATION]: 'vlan200' } } } },
      (await import('../../src/k8s/api.js')).MERGE_PATCH,
    );
    await eventually('net1 removed', async () => ((await addrOf(lab, p, 'net1').catch(() => undefined)) === undefined ? true : undefined), 60_000);
    expect(await stream).toMatch(/40 packets transmitted, 40 received/);
    expect(await addrOf(lab, p, 'net2')).toEqual(net2);
    const st = await eventually('network-status shows net2 only', async () => {
      const s = status(await fresh('shift'));
      return s.length === 2 ? s : undefined;
    }, 60_000);
    expect(st.map((e) => [e.interface, e.ips])).toEqual([
      ['eth0', [p.status!.podIP]],
      ['net2', [net2.ip]],
    ]);
    // Adding a network again takes the lowest free name.
    await lab.core.patchNamespacedPod(
      { name: 'shift', namespace: 'default', body: { metadata: { annotations: { [NETWORKS_ANNOTATION]: 'vlan200,vlan100' } } } },
      (await import('../../src/k8s/api.js')).MERGE_PATCH,
    );
    const again = await eventually('vlan100 back as net1', async () => (await addrOf(lab, p, 'net1').catch(() => ({ ip: undefined }))).ip, 60_000);
    expect(again).toMatch(/^10\.100\.0\./);
    expect(await addrOf(lab, p, 'net2')).toEqual(net2);
  }, 180_000);

  it('hot-plug re-attaches an interface whose request changed; the old pool address is returned', async () => {
    const p = await make('renum', 1, JSON.stringify([{ name: 'vlan200' }, { name: 'vlan100', ips: ['10.100.0.77/24'] }]));
    const net1 = await addrOf(lab, p, 'net1');
    expect((await addrOf(lab, p, 'net2')).ip).toBe('10.100.0.77');
    const allocated = async (ip: string): Promise<boolean> => {
      const pool = (await lab.kubeConfig.makeApiClient(CustomObjectsApi).getClusterCustomObject({ group: 'crd.seine.dev', version: 'v1alpha1', plural: 'ippools', name: 'vlan100' })) as {
        status?: { allocations?: Array<{ ip: string }> };
      };
      return (pool.status?.allocations ?? []).some((a) => a.ip === ip);
    };
    expect(await allocated('10.100.0.77')).toBe(true);
    // Traffic on net1 (unchanged) while net2 is renumbered.
    const v3_200 = (await addrOf(lab, pods.v3!, 'net1')).ip!;
    const stream = podExec(lab, p, ['ping', '-c', '30', '-i', '0.1', '-w', '20', '-I', 'net1', v3_200], 30_000);
    await lab.core.patchNamespacedPod(
      { name: 'renum', namespace: 'default', body: { metadata: { annotations: { [NETWORKS_ANNOTATION]: JSON.stringify([{ name: 'vlan200' }, { name: 'vlan100', ips: ['10.100.0.78/24'], mac: '02:00:00:00:01:78' }]) } } } },
      (await import('../../src/k8s/api.js')).MERGE_PATCH,
    );
    const renumbered = await eventually('net2 renumbered', async () => {
      const a = await addrOf(lab, p, 'net2').catch(() => undefined);
      return a?.ip === '10.100.0.78' ? a : undefined;
    }, 60_000);
    expect(renumbered.mac).toBe('02:00:00:00:01:78');
    expect(await stream).toMatch(/30 packets transmitted, 30 received/);
    expect(await addrOf(lab, p, 'net1')).toEqual(net1);
    expect(await pings(lab, pods.v2!, '10.100.0.78')).toBe(true);
    await eventually('old address returned to the pool', async () => ((await allocated('10.100.0.77')) ? undefined : true), 60_000);
    expect(await allocated('10.100.0.78')).toBe(true);
    const st = await eventually('network-status shows the new address', async () => {
      const s = status(await fresh('renum'));
      return s[2]?.ips?.[0] === '10.100.0.78' ? s : undefined;
    }, 60_000);
    expect(st.map((e) => e.interface)).toEqual(['eth0', 'net1', 'net2']);
  }, 180_000);
});
