import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../../src/host/exec.js';
import { AZURE_BRIDGE, AZURE_HOST_VETH_MAC, azureIpamStore } from '../../../src/lab/cloud/azure-cni.js';
import { AZURE_CONFLIST, cloudStateDir } from '../../../src/lab/cloud/profile.js';
import { eventually } from '../../../src/util/wait.js';
import { CloudNodes, sha11, neighbours, sysctl, type CloudTestPod } from './harness.js';

describe('AKS stand-in: azure-vnet in transparent mode on two nodes', () => {
  let cloud: CloudNodes;
  const pods: Record<string, CloudTestPod> = {};
  beforeAll(async () => {
    cloud = await CloudNodes.start({ profile: 'aks' });
  }, 120_000);
  afterAll(async () => {
    await cloud?.close();
  }, 60_000);

  it('installs 10-azure.conflist as Azure CNI ships it', () => {
    const conf = JSON.parse(readFileSync(join(cloud.nodes[0]!.dirs.cniConfDir, AZURE_CONFLIST), 'utf8'));
    expect(conf).toMatchObject({ cniVersion: '0.3.0', name: 'azure' });
    expect(conf.plugins[0]).toMatchObject({ type: 'azure-vnet', mode: 'transparent', ipam: { type: 'azure-vnet-ipam' } });
    expect(conf.plugins[1]).toEqual({ type: 'portmap', capabilities: { portMappings: true }, snat: true });
  });

  it("ADD routes the pod on an azv veth with proxy ARP and answers with Azure's result (no host interface)", async () => {
    const [n1, n2] = cloud.nodes;
    const a = await cloud.addPod(n1!, 'a');
    const b = await cloud.addPod(n2!, 'b');
    Object.assign(pods, { a: a.pod, b: b.pod });
    expect(a.result).toEqual({
      cniVersion: '0.3.0',
      interfaces: [{ name: 'eth0' }],
      ips: [{ version: '4', address: '10.224.1.1/16', gateway: '10.224.0.1' }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.224.0.1' }],
      dns: { nameservers: ['168.63.129.16'] },
    });
    const hostIf = `azv${sha11('default.a')}`;
    const link = await n1!.ip.link(hostIf);
    expect(link?.address).toBe(AZURE_HOST_VETH_MAC);
    expect(link?.master).toBeUndefined();
    expect(await sysctl(n1!.netns, `net.ipv4.conf.${hostIf}.proxy_arp`)).toBe('1');
    expect(await n1!.ip.routes()).toEqual(expect.arrayContaining([expect.objectContaining({ dst: '10.224.1.1', dev: hostIf })]));
    // The pod: the subnet's prefix on its address but no subnet route, only the 169.254.1.1 gateway.
    const podRoutes = JSON.parse((await run('ip', ['-json', '-4', 'route', 'show'], { netns: a.pod.netns })).stdout) as Array<{ dst: string; gateway?: string }>;
    expect(podRoutes.map((r) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}`).sort()).toEqual(['169.254.1.1', 'default via 169.254.1.1']);
    const addrs = JSON.parse((await run('ip', ['-json', '-4', 'addr', 'show', 'dev', 'eth0'], { netns: a.pod.netns })).stdout);
    expect(addrs[0].addr_info.map((i: { local: string; prefixlen: number }) => `${i.local}/${i.prefixlen}`)).toEqual(['10.224.1.1/16']);
    expect(await neighbours(a.pod.netns, 'eth0')).toEqual([expect.objectContaining({ dst: '169.254.1.1', lladdr: AZURE_HOST_VETH_MAC })]);
  });

  it('pods reach each other across nodes and the external host; proxy ARP keeps 169.254.1.1 resolved', async () => {
    const { a, b } = pods;
    for (const [from, to] of [
      [a!, '10.224.2.1'],
      [b!, '10.224.1.1'],
      [a!, cloud.plan.externalIp],
    ] as const) {
      await eventually(`ping from ${from.name} to ${to}`, async () => ((await cloud.ping(from, to)) ? true : undefined), 20_000);
    }
    // A probe-state entry is re-resolved by the kernel; the host veth's proxy ARP answers with the same MAC.
    await run('ip', ['neigh', 'flush', 'dev', 'eth0'], { netns: a!.netns });
    await eventually('ping from a after its neighbour entry was flushed', async () => ((await cloud.ping(a!, '10.224.2.1')) ? true : undefined), 20_000);
    expect(await neighbours(a!.netns, 'eth0')).toEqual([expect.objectContaining({ dst: '169.254.1.1', lladdr: AZURE_HOST_VETH_MAC })]);
  });

  it('DEL removes the route, releases the address and forgets the endpoint, also when repeated', async () => {
    const { a } = pods;
    const n1 = cloud.nodes[0]!;
    await cloud.delPod(a!);
    await cloud.delPod(a!);
    await cloud.removePodNetns(a!);
    expect((await n1.ip.routes()).filter((r) => r.dst.startsWith('10.224.'))).toEqual([]);
    // The veth goes with the pod's namespace; the kernel destroys its devices after `ip netns del` returns.
    await eventually('the host veth gone with the namespace', async () => ((await n1.ip.links()).some((l) => l.ifname.startsWith('azv')) ? undefined : true), 20_000);
    expect(await azureIpamStore(cloudStateDir(cloud.plan, n1.dirs)).assignments()).toEqual({});
    expect(JSON.parse(readFileSync(join(cloudStateDir(cloud.plan, n1.dirs), 'azure-vnet.json'), 'utf8'))).toEqual({});
  });
});

describe('AKS stand-in: azure-vnet in the older bridge mode', () => {
  let cloud: CloudNodes;
  beforeAll(async () => {
    cloud = await CloudNodes.start({ profile: 'aks', azureMode: 'bridge' }, 1);
  }, 120_000);
  afterAll(async () => {
    await cloud?.close();
  }, 60_000);

  it('puts the host veth on azure0; the pod uses the subnet gateway and reaches the external host', async () => {
    const node = cloud.nodes[0]!;
    const { pod } = await cloud.addPod(node, 'a');
    const hostIf = (await node.ip.links()).find((l) => l.ifname.startsWith('azv'));
    expect(hostIf?.master).toBe(AZURE_BRIDGE);
    const podRoutes = JSON.parse((await run('ip', ['-json', '-4', 'route', 'show', 'default'], { netns: pod.netns })).stdout) as Array<{ gateway?: string }>;
    expect(podRoutes[0]?.gateway).toBe('10.224.0.1');
    await eventually('ping from the bridged pod to the external host', async () => ((await cloud.ping(pod, cloud.plan.externalIp)) ? true : undefined), 20_000);
    await cloud.delPod(pod);
    await cloud.removePodNetns(pod);
    // As above: the namespace's devices are destroyed after `ip netns del` returns.
    await eventually('the host veth gone with the namespace', async () => ((await node.ip.links()).some((l) => l.ifname.startsWith('azv')) ? undefined : true), 20_000);
  });
});
