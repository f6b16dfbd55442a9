import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../../src/host/exec.js';
import { ipamdStore } from '../../../src/lab/cloud/aws-vpc-cni.js';
import { AWS_CONFLIST, cloudStateDir, deprovisionCloudNode } from '../../../src/lab/cloud/profile.js';
import { eventually } from '../../../src/util/wait.js';
import { CloudNodes, sha11, neighbours, rules, sysctl, type CloudTestPod } from './harness.js';

describe('EKS stand-in: aws-cni on two nodes with a secondary ENI each', () => {
  let cloud: CloudNodes;
  const pods: Record<string, CloudTestPod> = {};
  beforeAll(async () => {
    cloud = await CloudNodes.start({ profile: 'eks' });
  }, 120_000);
  afterAll(async () => {
    await cloud?.close();
  }, 60_000);

  it('installs 10-aws.conflist as aws-node renders it', () => {
    const conf = JSON.parse(readFileSync(join(cloud.nodes[0]!.dirs.cniConfDir, AWS_CONFLIST), 'utf8'));
    expect(conf).toMatchObject({ cniVersion: '0.4.0', name: 'aws-cni', disableCheck: true });
    expect(conf.plugins.map((p: { type: string }) => p.type)).toEqual(['aws-cni', 'egress-cni', 'portmap']);
    expect(conf.plugins[0]).toMatchObject({ vethPrefix: 'eni', mtu: '1500' });
    expect(conf.plugins[1]).toMatchObject({ enabled: 'false' });
    expect(conf.plugins[2]).toEqual({ type: 'portmap', capabilities: { portMappings: true }, snat: true });
  });

  it("sets up the node as aws-node does: fwmark rule, loose rp_filter, SNAT and CONNMARK chains, the secondary ENI's table", async () => {
    const node = cloud.nodes[0]!;
    expect(await rules(node.netns)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ priority: 1024, fwmark: '0x80', fwmask: '0x80', table: 'main' }),
        expect.objectContaining({ priority: 32765, src: node.plan.cloud!.enis[1]!.ip, table: '2' }),
      ]),
    );
    expect(await sysctl(node.netns, 'net.ipv4.conf.eth0.rp_filter')).toBe('2');
    const nat = (await run('iptables-save', ['-t', 'nat'], { netns: node.netns })).stdout;
    expect(nat).toContain('-A POSTROUTING -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0');
    expect(nat).toMatch(/-A AWS-SNAT-CHAIN-0 ! -o vlan\+ .*-j SNAT --to-source 172\.28\.0\.11 --random-fully/);
    expect(nat).toContain('-A PREROUTING -i eni+ -m comment --comment "AWS, outbound connections" -j AWS-CONNMARK-CHAIN-0');
    expect(nat).toContain('-A AWS-CONNMARK-CHAIN-0 -d 10.100.0.0/16 -m comment --comment "AWS CONNMARK CHAIN" -j RETURN');
    const mangle = (await run('iptables-save', ['-t', 'mangle'], { netns: node.netns })).stdout;
    expect(mangle).toMatch(/-A PREROUTING -i eth0 .*--limit-iface-in -j CONNMARK --set-xmark 0x80\/0x80/);
    expect(mangle).toMatch(/-A PREROUTING -i eni\+ .*-j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80/);
    const table2 = await node.ip.routes({ table: 2 });
    expect(table2).toEqual(expect.arrayContaining([expect.objectContaining({ dst: 'default', gateway: cloud.plan.externalIp, dev: 'eth2' })]));
  });

  it('ADD builds the routed-ENI layout and answers with aws-cni\'s result', async () => {
    const [n1, n2] = cloud.nodes;
    const a = await cloud.addPod(n1!, 'a');
    const b = await cloud.addPod(n1!, 'b');
    const c = await cloud.addPod(n2!, 'c');
    Object.assign(pods, { a: a.pod, b: b.pod, c: c.pod });
    const hostA = `eni${sha11('default.a')}`;
    // The first pod gets the primary ENI (route table main = 254, device 0), the next the secondary one.
    expect(a.result).toEqual({
      cniVersion: '0.4.0',
      interfaces: [{ name: hostA }, { name: 'eth0', sandbox: a.pod.netns, mac: '254' }, { name: `dummy${sha11('default.a')}`, mac: '0', sandbox: '0' }],
      ips: [{ version: '4', address: '10.100.1.1/32', interface: 1 }],
    });
    expect(b.result.interfaces![1]).toEqual({ name: 'eth0', sandbox: b.pod.netns, mac: '2' });
    expect(b.result.interfaces![2]).toMatchObject({ mac: '0', sandbox: '1' });
    expect(b.result.ips![0]!.address).toBe('10.100.1.129/32');
    expect(c.result.ips![0]!.address).toBe('10.100.2.1/32');

    // Pod side: /32, the 169.254.1.1 link route and default, a permanent neighbour naming the host veth's MAC.
    const hostLink = await n1!.ip.link(hostA);
    expect(hostLink?.mtu).toBe(1500);
    const podRun = (args: string[]) => run('ip', ['-json', ...args], { netns: a.pod.netns }).then((r) => JSON.parse(r.stdout));
    const [eth0] = await podRun(['addr', 'show', 'dev', 'eth0']);
    expect(eth0.addr_info.filter((i: { family: string }) => i.family === 'inet').map((i: { local: string; prefixlen: number }) => `${i.local}/${i.prefixlen}`)).toEqual(['10.100.1.1/32']);
    expect(eth0.mtu).toBe(1500);
    const podRoutes = await podRun(['-4', 'route', 'show']);
    expect(podRoutes).toEqual(expect.arrayContaining([expect.objectContaining({ dst: 'default', gateway: '169.254.1.1', dev: 'eth0' }), expect.objectContaining({ dst: '169.254.1.1', dev: 'eth0', scope: 'link' })]));
    expect(await neighbours(a.pod.netns, 'eth0')).toEqual([expect.objectContaining({ dst: '169.254.1.1', lladdr: hostLink!.address, state: ['PERMANENT'] })]);

    // Host side: the pod's /32 on its veth, rule 512 for every pod, 1536 for pods of the secondary ENI.
    const hostRoutes = await n1!.ip.routes();
    expect(hostRoutes).toEqual(expect.arrayContaining([expect.objectContaining({ dst: '10.100.1.1', dev: hostA, scope: 'link' }), expect.objectContaining({ dst: '10.100.1.129', dev: `eni${sha11('default.b')}` })]));
    const r = await rules(n1!.netns);
    expect(r).toEqual(expect.arrayContaining([expect.objectContaining({ priority: 512, dst: '10.100.1.1', table: 'main' }), expect.objectContaining({ priority: 512, dst: '10.100.1.129', table: 'main' }), expect.objectContaining({ priority: 1536, src: '10.100.1.129', table: '2' })]));
    expect(r.filter((x) => x.priority === 1536)).toHaveLength(1);
  });

  it('pods reach each other across nodes and the external host, through both ENIs, without an overlay', async () => {
    const { a, b, c } = pods;
    for (const [from, to] of [
      [a!, '10.100.2.1'],
      [b!, '10.100.2.1'],
      [c!, '10.100.1.1'],
      [c!, '10.100.1.129'],
      [a!, cloud.plan.externalIp],
      [b!, cloud.plan.externalIp],
    ] as const) {
      await eventually(`ping from ${from.name} to ${to}`, async () => ((await cloud.ping(from, to)) ? true : undefined), 20_000);
    }
  });

  it('the VPC source/destination check drops what leaves through an ENI that does not own the source', async () => {
    const { c } = pods;
    const n1 = cloud.nodes[0]!;
    // Without its 1536 rule, b's replies take the main table out of eth0, which does not own 10.100.1.129.
    const rule = ['from', '10.100.1.129/32', 'priority', '1536', 'table', '2'];
    await run('ip', ['rule', 'del', ...rule], { netns: n1.netns });
    try {
      expect(await cloud.ping(c!, '10.100.1.129')).toBe(false);
    } finally {
      await run('ip', ['rule', 'add', ...rule], { netns: n1.netns });
    }
    await eventually('ping from c to b again', async () => ((await cloud.ping(c!, '10.100.1.129')) ? true : undefined), 20_000);
  });

  it('DEL removes rules and routes and releases the address, also when repeated and when the namespace is gone', async () => {
    const { a, b } = pods;
    const n1 = cloud.nodes[0]!;
    await cloud.delPod(a!);
    await cloud.delPod(a!);
    await cloud.removePodNetns(a!);
    await cloud.removePodNetns(b!);
    await cloud.delPod(b!);
    const r = await rules(n1.netns);
    expect(r.filter((x) => x.priority === 512 || x.priority === 1536)).toEqual([]);
    expect((await n1.ip.routes()).filter((x) => x.dst.startsWith('10.100.'))).toEqual([]);
    expect((await n1.ip.links()).filter((l) => l.ifname.startsWith('eni'))).toEqual([]);
    expect(await ipamdStore(cloudStateDir(cloud.plan, n1.dirs)).assignments()).toEqual({});
  });

  it('deprovisioning removes what aws-node set up', async () => {
    const n2 = cloud.nodes[1]!;
    await cloud.delPod(pods.c!);
    await cloud.removePodNetns(pods.c!);
    await deprovisionCloudNode(cloud.plan, n2.plan, n2.dirs);
    expect((await rules(n2.netns)).map((x) => x.priority)).toEqual([0, 32766, 32767]);
    const saved = (await run('iptables-save', [], { netns: n2.netns })).stdout;
    expect(saved).not.toMatch(/AWS/);
    expect(await n2.ip.link('eth2')).toBeUndefined();
    expect(await sysctl(n2.netns, 'net.ipv4.conf.eth0.rp_filter')).toBe('0');
  });
});
