// The lab's stand-in for Azure CNI's plugins (azure-vnet and its IPAM azure-vnet-ipam): a test double of the
// cloud, not part of Seine. It builds what azure-container-networking builds on a Linux node (network/
// transparent_endpointclient_linux.go, bridge_endpointclient_linux.go, cni/network) and answers with the same
// result; the addresses are the node's share of the VNet subnet, which the lab's provisioning puts in a store.
import { join } from 'node:path';
import { invokeAdd, invokeNoResult } from '../../cni/invoke.js';
import type { AttachmentArgs, PluginSpec } from '../../cni/skel.js';
import type { CniResult, IpamConf, NetConf } from '../../cni/types.js';
import { IpBatch, IpRoute } from '../../host/ip.js';
import { JsonFile } from '../../primary/ipam/store.js';
import { networkOf } from '../../ipam/subnets.js';
import { AddressStore, PoolExhaustedError, withFileLock } from './address-store.js';
import { stateDir } from './aws-vpc-cni.js';
import { createPodLink, hostVethName, podOf } from './pod-link.js';

/** Every host veth of Azure CNI has this MAC (defaultHostVethHwAddr): pods resolve 169.254.1.1 to it. */
export const AZURE_HOST_VETH_MAC = 'aa:aa:aa:aa:aa:aa';
/** The Linux bridge of Azure CNI's bridge mode. */
export const AZURE_BRIDGE = 'azure0';

/** What azure-vnet-ipam knows of the node's share of the subnet. */
export interface SubnetTag {
  /** The VNet subnet (the pod's address carries its prefix). */
  subnet: string;
  gateway: string;
  dnsServers: string[];
}

interface AzureVnetConf extends NetConf {
  mode?: 'transparent' | 'bridge';
  bridge?: string;
  ipam?: IpamConf;
}

/** azure-vnet's record of an endpoint (its /var/run/azure-vnet.json), needed by DEL: 0.3.0 DELs carry no prevResult. */
interface Endpoint {
  hostIf: string;
  address: string;
  mode: 'transparent' | 'bridge';
}

export function azureIpamStore(dir: string): AddressStore<SubnetTag> {
  return new AddressStore<SubnetTag>(join(dir, 'azure-vnet-ipam.json'));
}

class EndpointStore {
  private readonly file: JsonFile;
  constructor(readonly path: string) {
    this.file = new JsonFile(path);
  }
  private async all(): Promise<Record<string, Endpoint>> {
    const text = await this.file.read();
    return text ? (JSON.parse(text) as Record<string, Endpoint>) : {};
  }
  async get(id: string): Promise<Endpoint | undefined> {
    return (await this.all())[id];
  }
  async set(id: string, ep: Endpoint | undefined): Promise<void> {
    await this.file.prepare();
    await withFileLock(this.path, async () => {
      const eps = await this.all();
      if (ep) eps[id] = ep;
      else delete eps[id];
      await this.file.write(eps);
    });
  }
}

/** Azure's endpoint id: the container id's first 8 characters and the interface (ConstructEndpointID). */
function endpointId(args: AttachmentArgs): string {
  return `${args.containerId.slice(0, 8)}-${args.ifname}`;
}

/** The node's interface toward the VNet (where its default route goes): pods get its MTU. */
async function primaryInterfaceMtu(): Promise<number> {
  const host = new IpRoute();
  const dev = (await host.routes()).find((r) => r.dst === 'default')?.dev;
  const mtu = dev ? (await host.link(dev))?.mtu : undefined;
  if (!mtu) throw new Error('cannot find the node\'s primary interface (no default route)');
  return mtu;
}

function ipamRequest(args: AttachmentArgs<AzureVnetConf>) {
  const { prevResult: _prev, ...config } = args.config;
  return { containerId: args.containerId, netns: args.netns, ifname: args.ifname, args: args.args, config };
}

async function vnetAdd(args: AttachmentArgs<AzureVnetConf>): Promise<CniResult> {
  const mode = args.config.mode ?? 'bridge';
  const ipamType = args.config.ipam?.type;
  if (!ipamType) throw new Error('no ipam configured');
  const pod = podOf(args.argPairs);
  if (!pod.name || !pod.namespace) throw new Error('Failed to get POD info: K8S_POD_NAME and K8S_POD_NAMESPACE are required');
  const ipam = await invokeAdd(ipamType, ipamRequest(args), args.cniVersion, { cniPath: args.path });
  const ip = ipam.ips?.[0];
  const release = () => invokeNoResult(ipamType, { command: 'DEL', ...ipamRequest(args) }, { cniPath: args.path }).catch(() => undefined);
  if (!ip) {
    await release();
    throw new Error(`${ipamType} returned no address`);
  }
  const address = ip.address.split('/')[0]!;
  // Transparent mode names the veth after the pod; bridge mode after network, container and interface.
  const hostIf = hostVethName('azv', mode === 'transparent' ? `${pod.namespace}.${pod.name}` : `${args.config.name}${args.containerId}${args.ifname}`);
  const host = new IpRoute();
  try {
    const gateway = ip.gateway ?? ipam.routes?.find((r) => r.dst === '0.0.0.0/0')?.gw;
    if (mode === 'bridge' && !gateway) throw new Error(`${ipamType} returned no gateway`);
    await createPodLink({
      netns: args.netns,
      ifname: args.ifname,
      hostIf,
      hostMac: AZURE_HOST_VETH_MAC,
      mtu: await primaryInterfaceMtu(),
      address: ip.address,
      hostSysctls: { [`net.ipv6.conf.${hostIf}.accept_ra`]: 0 },
      routing: mode === 'transparent' ? { kind: 'fake-gateway', neighbour: 'probe', dropSubnetRoute: networkOf(ip.address) } : { kind: 'subnet', gateway: gateway! },
    });
    if (mode === 'transparent') {
      // Routed, global scope as Azure's own netlink adds it; proxy ARP answers the pod for 169.254.1.1 later.
      await host.apply(new IpBatch().replaceRoute(`${address}/32`, { dev: hostIf, scope: 'global' }), ['sysctl', '-q', '-w', `net.ipv4.conf.${hostIf}.proxy_arp=1`]);
    } else {
      const bridge = args.config.bridge ?? AZURE_BRIDGE;
      if (!(await host.link(bridge))) throw new Error(`bridge ${bridge} does not exist on this node`);
      await host.apply(new IpBatch().setLink(hostIf, { master: bridge }).command('link', 'set', 'dev', hostIf, 'type', 'bridge_slave', 'hairpin', 'on'));
    }
    await new EndpointStore(join(stateDir(args.env), 'azure-vnet.json')).set(endpointId(args), { hostIf, address, mode });
  } catch (e) {
    await host.applyBestEffort(new IpBatch().delLink(hostIf));
    await release();
    throw e;
  }
  // Azure's result: the container interface without sandbox or MAC (its IPAM reports none), the address with the
  // subnet's prefix and gateway, the subnet's default route and DNS: no host interface at all.
  return {
    cniVersion: '1.0.0',
    interfaces: [{ name: args.ifname }],
    ips: [{ address: ip.address, ...(ip.gateway ? { gateway: ip.gateway } : {}) }],
    ...(ipam.routes?.length ? { routes: ipam.routes.map((r) => ({ dst: r.dst, ...(r.gw ? { gw: r.gw } : {}) })) } : {}),
    ...(ipam.dns ? { dns: ipam.dns } : {}),
  };
}

async function vnetDel(args: AttachmentArgs<AzureVnetConf>): Promise<void> {
  const endpoints = new EndpointStore(join(stateDir(args.env), 'azure-vnet.json'));
  const ep = await endpoints.get(endpointId(args));
  // The veth goes with the pod's namespace (deleteHostVeth false); the route to the pod does not.
  if (ep?.mode === 'transparent') await new IpRoute().applyBestEffort(new IpBatch().delRoute(`${ep.address}/32`, { dev: ep.hostIf }));
  if (args.config.ipam?.type) await invokeNoResult(args.config.ipam.type, { command: 'DEL', ...ipamRequest(args) }, { cniPath: args.path });
  if (ep) await endpoints.set(endpointId(args), undefined);
}

export const azureVnetPlugin: PluginSpec<AzureVnetConf> = {
  about: 'Azure CNI azure-vnet (Seine lab stand-in)',
  handlers: { add: vnetAdd, del: vnetDel, check: () => undefined },
};

/** azure-vnet-ipam: an address of the node's share of the subnet, keyed by container as Azure's address id is. */
export const azureVnetIpamPlugin: PluginSpec = {
  about: 'Azure CNI azure-vnet-ipam (Seine lab stand-in)',
  handlers: {
    add: async (args) => {
      let a;
      try {
        a = await azureIpamStore(stateDir(args.env)).assign(args.containerId, podOf(args.argPairs).name || undefined);
      } catch (e) {
        if (e instanceof PoolExhaustedError) throw new Error(`Failed to allocate address: ${e.message}`, { cause: e });
        throw e;
      }
      const prefix = a.tag.subnet.split('/')[1]!;
      return {
        cniVersion: '1.0.0',
        ips: [{ address: `${a.address}/${prefix}`, gateway: a.tag.gateway }],
        routes: [{ dst: '0.0.0.0/0', gw: a.tag.gateway }],
        dns: { nameservers: a.tag.dnsServers },
      };
    },
    del: async (args) => {
      await azureIpamStore(stateDir(args.env)).release(args.containerId);
    },
    check: () => undefined,
  },
};
