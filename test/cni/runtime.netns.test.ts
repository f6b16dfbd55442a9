import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ipaddr from 'ipaddr.js';
import { k8sCniArgs } from '../../src/cni/args.js';
import { loadDefaultConfList, parseConfList } from '../../src/cni/conf.js';
import { PluginError } from '../../src/cni/invoke.js';
import { CniRuntime, NetworkError, type RuntimeConf } from '../../src/cni/runtime.js';
import type { CniResult, NetConfList, PluginConf } from '../../src/cni/types.js';
import { run } from '../../src/host/exec.js';
import { IpRoute } from '../../src/host/ip.js';
import { deleteNetns, netnsExists } from '../../src/host/netns.js';
import { NetnsTestEnv } from './helpers.js';

const SUBNET = '10.123.0.0/24';

describe('CniRuntime with the reference plugins in namespaces', () => {
  let env: NetnsTestEnv;
  let runtime: CniRuntime;
  let node: IpRoute;
  let bridge: string;
  let network: string;
  let ipamDir: string;
  let tuningDir: string;
  let confDir: string;
  let ctr = 0;

  /** bridge + host-local, then tuning (consumes prevResult; applies the `mac` capability). */
  const plugins = (extra: PluginConf[] = []): PluginConf[] => [
    { type: 'bridge', bridge, isGateway: true, ipam: { type: 'host-local', subnet: SUBNET, dataDir: ipamDir } },
    { type: 'tuning', capabilities: { mac: true }, sysctl: { 'net.ipv4.conf.eth0.arp_notify': '1' }, dataDir: tuningDir },
    ...extra,
  ];
  const list = (extra: PluginConf[] = []): NetConfList => parseConfList({ cniVersion: '1.0.0', name: network, plugins: plugins(extra) });

  /** Addresses host-local holds for this network (its files named by IP). */
  const allocated = (): string[] => {
    const d = join(ipamDir, network);
    return existsSync(d) ? readdirSync(d).filter((f) => ipaddr.isValid(f)) : [];
  };
  const hostVeths = async () => (await node.links()).filter((l) => l.linkinfo?.info_kind === 'veth');

  async function newPod(mac?: string): Promise<{ name: string; path: string; rt: RuntimeConf }> {
    const pod = await env.pod();
    const containerId = `${env.id}-ctr${++ctr}`;
    const rt: RuntimeConf = {
      containerId,
      netns: pod.path,
      ifname: 'eth0',
      args: k8sCniArgs({ namespace: 'default', name: pod.name, infraContainerId: containerId, uid: `uid-${ctr}` }),
      ...(mac ? { capabilityArgs: { mac } } : {}),
    };
    return { ...pod, rt };
  }

  const podAddress = (r: CniResult) => r.ips![0]!.address.split('/')[0]!;

  beforeAll(async () => {
    env = await NetnsTestEnv.start();
    bridge = `br${env.id}`;
    network = `${env.id}-net`;
    ipamDir = env.subdir('ipam');
    tuningDir = env.subdir('tuning');
    confDir = env.subdir('net.d');
    node = new IpRoute(env.nodeNetns);
    runtime = new CniRuntime({ cniPath: ['/usr/lib/cni'], cacheDir: env.subdir('cache'), pluginNetns: env.nodeNetns, timeoutMs: 30_000 });
  });

  afterAll(async () => {
    await env?.close();
  });

  it('ADD, CHECK, DEL of a bridge/host-local/tuning list loaded from a config dir', async () => {
    writeFileSync(join(confDir, '10-test.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: network, plugins: plugins() }));
    writeFileSync(join(confDir, '99-other.conf'), JSON.stringify({ cniVersion: '1.0.0', name: 'other', type: 'loopback' }));
    const { list: l, path } = await loadDefaultConfList(confDir);
    expect(path).toBe(join(confDir, '10-test.conflist'));

    const mac = '02:00:0a:7b:00:aa';
    const pod = await newPod(mac);
    const result = await runtime.addNetworkList(l, pod.rt);

    // The result: eth0 in the pod netns, with the MAC tuning set, an address from the subnet on it.
    const eth0Index = result.interfaces!.findIndex((i) => i.sandbox === pod.path);
    expect(result.interfaces![eth0Index]).toMatchObject({ name: 'eth0', mac });
    const ip = result.ips![0]!;
    expect(ip.interface).toBe(eth0Index);
    expect(ip.gateway).toBe('10.123.0.1');
    expect(ipaddr.parse(podAddress(result)).match(ipaddr.parseCIDR(SUBNET))).toBe(true);

    // ... and the pod netns agrees.
    const podIp = new IpRoute(pod.path);
    expect((await podIp.addrs('eth0'))[0]!.addr_info).toContainEqual(expect.objectContaining({ family: 'inet', local: podAddress(result), prefixlen: 24 }));
    expect((await podIp.link('eth0'))!.address).toBe(mac);
    expect((await run('sysctl', ['-n', 'net.ipv4.conf.eth0.arp_notify'], { netns: pod.path })).stdout.trim()).toBe('1');

    // The bridge and the host end of the veth are in the node netns, not in ours.
    expect((await node.link(bridge))?.linkinfo?.info_kind).toBe('bridge');
    expect((await hostVeths()).map((v) => v.master)).toEqual([bridge]);
    expect(await new IpRoute().link(bridge)).toBeUndefined();

    expect(await runtime.cachedResult(l, pod.rt)).toEqual(result);
    expect(allocated()).toEqual([podAddress(result)]);

    await runtime.checkNetworkList(l, pod.rt);

    await runtime.delNetworkList(l, pod.rt);
    expect(await hostVeths()).toEqual([]);
    expect(await podIp.link('eth0')).toBeUndefined();
    expect(await runtime.cachedResult(l, pod.rt)).toBeUndefined();
    expect(allocated()).toEqual([]);

    // DEL is idempotent.
    await runtime.delNetworkList(l, pod.rt);
  });

  it('DEL succeeds after the pod netns is gone, and releases the address', async () => {
    const l = list();
    const pod = await newPod();
    const result = await runtime.addNetworkList(l, pod.rt);
    expect(allocated()).toContain(podAddress(result));
    await deleteNetns(pod.name);
    expect(netnsExists(pod.path)).toBe(false);

    await runtime.delNetworkList(l, pod.rt);
    expect(allocated()).not.toContain(podAddress(result));
    expect(await hostVeths()).toEqual([]);
    expect(await runtime.cachedAttachments(pod.rt.containerId)).toEqual([]);
  });

  it('two pods on the same bridge reach each other', async () => {
    const l = list();
    const a = await newPod();
    const b = await newPod();
    const ra = await runtime.addNetworkList(l, a.rt);
    const rb = await runtime.addNetworkList(l, b.rt);
    try {
      expect(podAddress(ra)).not.toBe(podAddress(rb));
      await run('ping', ['-c1', '-W2', podAddress(rb)], { netns: a.path, timeoutMs: 10_000 });
      await run('ping', ['-c1', '-W2', podAddress(ra)], { netns: b.path, timeoutMs: 10_000 });
    } finally {
      await runtime.delNetworkList(l, a.rt);
      await runtime.delNetworkList(l, b.rt);
    }
    expect(allocated()).toEqual([]);
  });

  it('a list whose second plugin fails ADD leaves nothing behind', async () => {
    // tuning refuses a sysctl that does not exist, after bridge made the veth and host-local gave an address.
    const l = parseConfList({
      cniVersion: '1.0.0',
      name: network,
      plugins: [plugins()[0]!, { type: 'tuning', sysctl: { 'net.ipv4.conf.eth0.no_such_sysctl': '1' }, dataDir: tuningDir }],
    });
    const pod = await newPod();
    const e = (await runtime.addNetworkList(l, pod.rt).catch((x: unknown) => x)) as NetworkError;
    expect(e).toBeInstanceOf(NetworkError);
    expect(e.pluginError?.plugin).toBe('tuning');
    expect(e.pluginError?.kind).toBe('plugin-error');
    expect(e.message).toMatch(/no_such_sysctl/);
    expect(e.cleanup).toEqual({ ran: true, errors: [] });

    expect(await hostVeths()).toEqual([]);
    expect(await new IpRoute(pod.path).link('eth0')).toBeUndefined();
    expect(allocated()).toEqual([]);
    expect(await runtime.cachedAttachments(pod.rt.containerId)).toEqual([]);
  });

  it('a missing plugin binary fails clearly and is cleaned up after', async () => {
    const pod = await newPod();
    const e = (await runtime.addNetworkList(list([{ type: 'no-such-cni-plugin' }]), pod.rt).catch((x: unknown) => x)) as NetworkError;
    expect(e.pluginError?.kind).toBe('not-found');
    expect(e.message).toContain('plugin type="no-such-cni-plugin" failed (add): no executable "no-such-cni-plugin" in CNI_PATH [/usr/lib/cni]');
    // The clean-up DEL could not run the missing plugin, but the others released their part.
    expect(e.cleanup!.errors.map((x) => (x instanceof PluginError ? x.kind : x.message))).toEqual(['not-found']);
    expect(await hostVeths()).toEqual([]);
    expect(allocated()).toEqual([]);
  });

  it('GC deletes the attachments that are no longer valid', async () => {
    const l = list();
    const keep = await newPod();
    const stale = await newPod();
    const rk = await runtime.addNetworkList(l, keep.rt);
    const rs = await runtime.addNetworkList(l, stale.rt);
    expect(allocated().sort()).toEqual([podAddress(rk), podAddress(rs)].sort());

    await runtime.gcNetworkList(l, [{ containerID: keep.rt.containerId, ifname: 'eth0' }]);
    expect(allocated()).toEqual([podAddress(rk)]);
    expect(await new IpRoute(stale.path).link('eth0')).toBeUndefined();
    expect((await hostVeths()).length).toBe(1);
    expect((await runtime.cachedAttachments()).map((a) => a.containerId)).toEqual([keep.rt.containerId]);

    await runtime.delNetworkList(l, keep.rt);
    expect(allocated()).toEqual([]);
  });

  it('version negotiation settles on what the reference plugins speak', async () => {
    const offered = parseConfList({ cniVersion: '1.0.0', cniVersions: ['0.4.0', '1.0.0', '1.1.0'], name: network, plugins: plugins() });
    expect(offered.cniVersion).toBe('1.1.0');
    await expect(runtime.validateNetworkList(offered)).rejects.toThrow(/does not support config version "1\.1\.0"/);
    const agreed = await runtime.negotiateVersion(offered);
    expect(agreed.cniVersion).toBe('1.0.0');
    expect(await runtime.validateNetworkList(agreed)).toEqual(['mac']);
    // STATUS is a 1.1 verb: a 1.0.0 list is taken as ready without asking.
    await runtime.statusNetworkList(agreed);
  });
});
