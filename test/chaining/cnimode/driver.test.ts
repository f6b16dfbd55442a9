// Chained mode's pod network on a real OVS: pods made the way EKS's VPC CNI makes them (a /32 on eth0, the
// 169.254.1.1 next hop with a permanent neighbour, `podIP dev <veth>` on the host), taken over by ADD and given
// back by DEL, with traffic checked at every step.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CniCode, CniError } from '../../../src/cni/errors.js';
import type { CniResult } from '../../../src/cni/types.js';
import { run } from '../../../src/host/exec.js';
import { IpBatch } from '../../../src/host/ip.js';
import { ChainedPodNetwork } from '../../../src/chaining/cnimode/driver.js';
import { releaseNode } from '../../../src/chaining/cnimode/release.js';
import { DEFAULT_AGENT_CONFIG } from '../../../src/primary/agent/config.js';
import { CHAINED_ROUTE_PROTO, ChainedHost } from '../../../src/chaining/cnimode/host.js';
import type { MovedRoute } from '../../../src/chaining/cnimode/pod-link.js';
import { FlowWriter } from '../../../src/ovs/openflow/writer.js';
import { Vswitch } from '../../../src/ovs/ovsdb/index.js';
import type { CniRequest } from '../../../src/primary/cniserver/index.js';
import { InterfaceStore } from '../../../src/primary/interfacestore/store.js';
import { pipelineSync, podScope, type NodeConfig } from '../../../src/primary/pipeline/index.js';
import { OvsSandbox, type SandboxPod } from '../../harness/sandbox.js';
import { gatewayMac, ping } from '../../primary/pipeline/harness.js';

const BR = 'br-int';
const GW = 'seine-gw0';
const NODE_IP = '172.30.0.1';
const POD_GW = '169.254.1.1';

/** A pod as the AWS VPC CNI leaves it, with the odd prevResult it returns (a route table id as the MAC). */
async function awsPod(sb: OvsSandbox, ip: string): Promise<{ pod: SandboxPod; prev: CniResult }> {
  const pod = await sb.addPod(`${ip}/32`);
  const hostMac = (await sb.ip.link(pod.hostIf))!.address!;
  await pod.ip.apply(new IpBatch().replaceRoute(POD_GW, { dev: 'eth0', scope: 'link' }).replaceRoute('default', { via: POD_GW, dev: 'eth0' }).replaceNeigh(POD_GW, hostMac, 'eth0'));
  await sb.ip.apply(new IpBatch().replaceRoute(`${ip}/32`, { dev: pod.hostIf, scope: 'link' }));
  const prev: CniResult = {
    cniVersion: '0.4.0',
    interfaces: [
      { name: pod.hostIf, mac: hostMac },
      { name: 'eth0', mac: '0', sandbox: pod.netns },
      { name: 'dummy0', mac: '0', sandbox: '1' },
    ],
    ips: [{ address: `${ip}/32`, interface: 1 }],
  };
  return { pod, prev };
}

function request(command: CniRequest['command'], pod: SandboxPod, prev: CniResult | undefined, n: number): CniRequest {
  return {
    command,
    cniVersion: '0.4.0',
    config: { cniVersion: '0.4.0', name: 'aws-cni', type: 'seine' },
    cniPath: [],
    signal: new AbortController().signal,
    containerId: `c${n}`.padEnd(64, '0'),
    netns: pod.netns,
    ifname: 'eth0',
    pod: { namespace: 'default', name: `p${n}`, uid: `u${n}` },
    args: '',
    argPairs: [],
    ...(prev ? { prevResult: prev } : {}),
    capabilityArgs: {},
  };
}

const hostRoutes = async (sb: OvsSandbox): Promise<string> =>
  (await run('ip', ['-4', 'route', 'show', 'table', 'main'], { netns: sb.netns })).stdout.split('\n').filter(Boolean).sort().join('\n');

describe('chained pod network (EKS-style links, real OVS)', () => {
  let sb: OvsSandbox;
  let vs: Vswitch;
  let flows: FlowWriter;
  let net: ChainedPodNetwork;
  let host: ChainedHost;
  const store = new InterfaceStore();
  const moved = new Map<string, MovedRoute[]>();
  let a: { pod: SandboxPod; prev: CniResult };
  let b: { pod: SandboxPod; prev: CniResult };

  beforeAll(async () => {
    sb = await OvsSandbox.start();
    await sb.addBridge(BR);
    // The node's uplink (no dummy links here): one end of a veth pair that goes nowhere.
    await sb.ip.apply(new IpBatch().addVeth('eth0', 'eth0-peer').addAddr('eth0', `${NODE_IP}/24`).setLink('eth0', { up: true }).setLink('eth0-peer', { up: true }));
    await sb.ovs.vsctl(['add-port', BR, GW, '--', 'set', 'interface', GW, 'type=internal', 'ofport_request=2', `mac="${gatewayMac(NODE_IP)}"`]);
    vs = await Vswitch.connect({ remote: sb.ovs.dbRemote });
    flows = FlowWriter.forBridge(sb.ovs, BR);
    host = new ChainedHost(sb.ip, GW, true);
    await host.ensureGateway(NODE_IP, 1500);
    const node: NodeConfig = { mode: 'chained', round: 1, gatewayOfport: 2, tunnelOfport: 0, gatewayIp: NODE_IP, gatewayMac: gatewayMac(NODE_IP) };
    await flows.sync(pipelineSync({ node, pods: [], peers: [] }));
    net = new ChainedPodNetwork({
      bridge: BR,
      vswitch: vs,
      flows,
      store,
      moved,
      host: sb.ip,
      chainedHost: host,
      node: () => node,
      userspaceDatapath: true,
      ready: () => true,
      defaultNetwork: () => 'aws-cni',
    });
    a = await awsPod(sb, '10.100.1.10');
    b = await awsPod(sb, '10.100.1.11');
  }, 60_000);

  afterAll(async () => {
    await vs?.close();
    await sb?.close();
  });

  it('refuses an ADD without prevResult, changing nothing', async () => {
    const before = await hostRoutes(sb);
    const err = await net.add(request('ADD', a.pod, undefined, 1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).code).toBe(CniCode.InvalidNetworkConfig);
    expect((err as CniError).message).toMatch(/prevResult/);
    expect(await hostRoutes(sb)).toBe(before);
    expect(vs.cache.port(a.pod.hostIf)).toBeUndefined();
  });

  it('takes pods over, returns prevResult unchanged, and pods still reach each other and the node', async () => {
    expect(await ping(a.pod.netns, '10.100.1.11')).toBe(true);
    const resultA = await net.add(request('ADD', a.pod, a.prev, 1));
    expect(resultA).toEqual(a.prev);
    const routes = await hostRoutes(sb);
    expect(routes).toContain(`10.100.1.10 dev ${GW} proto ${CHAINED_ROUTE_PROTO} scope link`);
    expect(vs.cache.iface(a.pod.hostIf)?.ofport).toBeGreaterThan(0);
    // One pod taken over, the other still the primary's: both ways work.
    expect(await ping(a.pod.netns, '10.100.1.11')).toBe(true);
    expect(await ping(b.pod.netns, '10.100.1.10')).toBe(true);
    await net.add(request('ADD', b.pod, b.prev, 2));
    expect(await ping(a.pod.netns, '10.100.1.11')).toBe(true);
    expect(await ping(a.pod.netns, NODE_IP)).toBe(true);
    expect(await ping(sb.netns, '10.100.1.11')).toBe(true);
    await net.check(request('CHECK', a.pod, a.prev, 1));
    // The pod's next hop, resolved again, is where its CNI put it: the host veth's MAC (what the veth accepts once given back).
    await a.pod.ip.apply(new IpBatch().command('neigh', 'del', POD_GW, 'dev', 'eth0'));
    expect(await ping(a.pod.netns, '10.100.1.11')).toBe(true);
    const neigh = (await run('ip', ['-4', 'neigh', 'show', POD_GW, 'dev', 'eth0'], { netns: a.pod.netns })).stdout;
    expect(neigh).toContain((await sb.ip.link(a.pod.hostIf))!.address!);
    // A repeated ADD changes nothing.
    expect(await net.add(request('ADD', a.pod, a.prev, 1))).toEqual(a.prev);
  }, 60_000);

  it('CHECK reports a route that no longer goes through the gateway', async () => {
    await sb.ip.apply(new IpBatch().replaceRoute('10.100.1.11/32', { dev: b.pod.hostIf, scope: 'link' }));
    await expect(net.check(request('CHECK', b.pod, b.prev, 2))).rejects.toThrow(/not through seine-gw0/);
    await sb.ip.apply(new IpBatch().command('route', 'replace', '10.100.1.11/32', 'dev', GW, 'scope', 'link', 'proto', String(CHAINED_ROUTE_PROTO)));
    await net.check(request('CHECK', b.pod, b.prev, 2));
  });

  it('DEL gives the link back exactly as the primary CNI made it', async () => {
    const ofport = store.get(request('DEL', a.pod, a.prev, 1).containerId, 'eth0')!.ofport;
    await net.del(request('DEL', a.pod, a.prev, 1));
    await net.del(request('DEL', b.pod, b.prev, 2));
    const routes = await hostRoutes(sb);
    expect(routes).toContain(`10.100.1.10 dev ${a.pod.hostIf} scope link`);
    expect(routes).toContain(`10.100.1.11 dev ${b.pod.hostIf} scope link`);
    expect(routes).not.toContain(`proto ${CHAINED_ROUTE_PROTO}`);
    expect(vs.cache.port(a.pod.hostIf)).toBeUndefined();
    expect((await flows.countFlows({ cookie: podScope(ofport) })).flows).toBe(0);
    expect((await run('nft', ['list', 'tables', 'netdev'], { netns: sb.netns })).stdout).not.toContain('seine-pod-');
    expect(await ping(a.pod.netns, '10.100.1.11')).toBe(true);
    // A second DEL finds nothing to do.
    await net.del(request('DEL', a.pod, a.prev, 1));
  }, 60_000);

  it('refuses a veth enslaved to a Linux bridge (Azure bridge mode), changing nothing', async () => {
    const c = await awsPod(sb, '10.100.1.12');
    await sb.ip.apply(new IpBatch().addLink('azure0', 'bridge').setLink('azure0', { up: true }).setLink(c.pod.hostIf, { master: 'azure0' }));
    const before = await hostRoutes(sb);
    const err = await net.add(request('ADD', c.pod, c.prev, 3)).catch((e: unknown) => e);
    expect((err as CniError).code).toBe(CniCode.InvalidNetworkConfig);
    expect((err as CniError).message).toMatch(/azure0.*transparent/s);
    expect(await hostRoutes(sb)).toBe(before);
    expect(vs.cache.port(c.pod.hostIf)).toBeUndefined();
  });

  it('GC gives back the attachments of its network that the runtime no longer lists, and only those', async () => {
    await net.add(request('ADD', a.pod, a.prev, 1));
    await net.add(request('ADD', b.pod, b.prev, 2));
    const gc = (network: string, valid: CniRequest[]): Promise<void> =>
      net.gc({ command: 'GC', cniVersion: '1.1.0', config: { cniVersion: '1.1.0', name: network, type: 'seine' }, cniPath: [], signal: new AbortController().signal, validAttachments: valid.map((r) => ({ containerID: r.containerId, ifname: r.ifname })) });
    // Another network's GC does not touch them.
    await gc('other-net', []);
    expect(vs.cache.port(b.pod.hostIf)).toBeDefined();
    await gc('aws-cni', [request('ADD', a.pod, a.prev, 1)]);
    expect(vs.cache.port(a.pod.hostIf)).toBeDefined();
    expect(vs.cache.port(b.pod.hostIf)).toBeUndefined();
    expect(await hostRoutes(sb)).toContain(`10.100.1.11 dev ${b.pod.hostIf} scope link`);
    expect(await ping(b.pod.netns, '10.100.1.10')).toBe(true);
    await net.del(request('DEL', a.pod, a.prev, 1));
  }, 60_000);

  it('releasing the node gives every pod back and removes the bridge, with traffic kept', async () => {
    const before = await hostRoutes(sb);
    await net.add(request('ADD', a.pod, a.prev, 1));
    await net.add(request('ADD', b.pod, b.prev, 2));
    expect(await hostRoutes(sb)).not.toBe(before);
    const report = await releaseNode({
      ...DEFAULT_AGENT_CONFIG,
      nodeName: 'n1',
      mode: 'chained',
      hostNetns: sb.netns,
      ovs: { dbSocket: sb.ovs.dbSocket, rundir: sb.ovs.rundir, datapathType: 'netdev', bridge: BR },
    });
    expect(report.pods.sort()).toEqual(['default/p1', 'default/p2']);
    // The gateway's /32 went with the bridge; every other route is as the primary CNI left it.
    expect(await hostRoutes(sb)).toBe(before);
    expect((await run('nft', ['list', 'tables', 'netdev'], { netns: sb.netns })).stdout).not.toContain('seine-pod-');
    expect((await sb.ovs.vsctl(['list-br'])).trim()).toBe('');
    expect(await ping(a.pod.netns, '10.100.1.11')).toBe(true);
  }, 60_000);
});
