import ipaddr from 'ipaddr.js';
import type { IpRoute } from '../../host/ip.js';
import { IpBatch } from '../../host/ip.js';
import { run } from '../../host/exec.js';
import { nextRound } from '../../ovs/openflow/cookie.js';
import type { Vswitch } from '../../ovs/ovsdb/index.js';
import { logger } from '../../util/log.js';

export const GATEWAY_PORT = 'seine-gw0';
export const TUNNEL_PORT = 'seine-tun0';
/** Fixed OpenFlow port numbers (requested), so flows do not depend on attach order. */
export const TUNNEL_OFPORT = 1;
export const GATEWAY_OFPORT = 2;
/** The userspace datapath's underlay bridge: the uplink plus the node IP, so OVS can route its own tunnels. */
export const PHY_BRIDGE = 'br-phy';

const ROUND_KEY = 'seine-round';
const log = logger('bridge');

/** The gateway MAC is derived from the node IP so it is stable across restarts and distinct per node. */
export function gatewayMacFor(nodeIp: string): string {
  const o = ipaddr.IPv4.parse(nodeIp).octets;
  return ['0a', '00', ...o.map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

export interface IntegrationBridgeSpec {
  bridge: string;
  datapathType: 'system' | 'netdev';
  gatewayMac: string;
  mtu: number;
  /** Tunnel type, or undefined in no-encap mode (no tunnel port). */
  tunnel?: 'vxlan' | 'geneve';
}

export interface IntegrationBridge {
  gatewayOfport: number;
  tunnelOfport?: number;
  /** This agent run's flow round (stored in the bridge, bumped on every start). */
  round: number;
}

/**
 * Converges the integration bridge, its gateway port and its tunnel port to the spec, and starts a new flow
 * round. Existing ports and flows are left in place, so forwarding continues while the agent restarts.
 */
export async function ensureIntegrationBridge(vs: Vswitch, spec: IntegrationBridgeSpec): Promise<IntegrationBridge> {
  const previous = Number.parseInt(vs.cache.bridge(spec.bridge)?.externalIds[ROUND_KEY] ?? '', 10);
  const round = Number.isFinite(previous) ? nextRound(previous) : 1;
  await vs.ensureBridge(spec.bridge, {
    datapathType: spec.datapathType,
    protocols: ['OpenFlow10', 'OpenFlow13', 'OpenFlow15'],
    failMode: 'secure',
    externalIds: { 'seine-managed': 'true', [ROUND_KEY]: String(round) },
    // Keep forwarding without an OpenFlow controller; Seine programs flows with ovs-ofctl.
    otherConfig: { 'disable-in-band': 'true' },
  });

  const gw = vs.cache.port(GATEWAY_PORT);
  let gatewayOfport: number;
  const gwIface = gw ? vs.cache.iface(GATEWAY_PORT) : undefined;
  if (!gw || gwIface?.mac !== spec.gatewayMac || gwIface?.mtuRequest !== spec.mtu) {
    if (gw) await vs.removePort(GATEWAY_PORT);
    const added = await vs.addPort(spec.bridge, {
      name: GATEWAY_PORT,
      type: 'internal',
      ofportRequest: GATEWAY_OFPORT,
      mac: spec.gatewayMac,
      mtuRequest: spec.mtu,
      externalIds: { 'seine-owner': 'primary-gateway' },
    });
    gatewayOfport = added.ofport!;
  } else {
    gatewayOfport = (await vs.waitForOfport(GATEWAY_PORT)).ofport!;
  }

  let tunnelOfport: number | undefined;
  const tun = vs.cache.iface(TUNNEL_PORT);
  if (tun && tun.type !== spec.tunnel) {
    log.info({ from: tun.type, to: spec.tunnel ?? 'none' }, 'tunnel type changed; replacing the tunnel port');
    await vs.removePort(TUNNEL_PORT);
  }
  if (spec.tunnel) {
    if (!tun || tun.type !== spec.tunnel) {
      const added = await vs.addPort(spec.bridge, {
        name: TUNNEL_PORT,
        type: spec.tunnel,
        ofportRequest: TUNNEL_OFPORT,
        tunnel: { remoteIp: 'flow', key: 'flow' },
        externalIds: { 'seine-owner': 'primary-tunnel' },
      });
      tunnelOfport = added.ofport;
    } else {
      tunnelOfport = (await vs.waitForOfport(TUNNEL_PORT)).ofport;
    }
  }
  return { gatewayOfport, tunnelOfport, round };
}

export interface UplinkSpec {
  uplink: string;
  /** The node IP with its prefix, e.g. 172.28.0.11/24. */
  nodeCidr: string;
  /** The underlay default gateway, if the node has one. */
  defaultGateway?: string;
  mtu: number;
}

/**
 * Userspace datapath only: moves the uplink into `br-phy` and the node IP (and default route) onto br-phy's
 * internal port, so that ovs-vswitchd resolves tunnel routes and ARP itself. The spec is recorded on the
 * bridge, so the address can be put back after ovs-vswitchd restarts (its tap devices are recreated empty).
 */
export async function ensureUplinkBridge(vs: Vswitch, ip: IpRoute, spec: UplinkSpec): Promise<void> {
  const uplinkLink = await ip.link(spec.uplink);
  if (!uplinkLink) throw new Error(`uplink ${spec.uplink} does not exist`);
  await vs.ensureBridge(PHY_BRIDGE, {
    datapathType: 'netdev',
    failMode: 'standalone',
    // The bridge's own port takes over the uplink's MAC, so neighbours' ARP entries stay valid.
    otherConfig: uplinkLink.address ? { hwaddr: uplinkLink.address } : {},
    externalIds: { 'seine-managed': 'true', 'seine-node-cidr': spec.nodeCidr, 'seine-default-gw': spec.defaultGateway ?? '' },
  });
  // The uplink's frames now belong to OVS; the kernel must not answer or route them as well. The ingress drop
  // keeps them out of the IP stack entirely (no conntrack/NAT work on every tunnel packet); OVS's packet socket
  // sees frames before that hook. The sysctls cover kernels without netdev ingress hooks.
  await ip.isolateFromHostStack(spec.uplink);
  await run('nft', ['-f', '-'], {
    netns: ip.netns,
    input: `table netdev seine-uplink {}\nflush table netdev seine-uplink\ntable netdev seine-uplink {\n  chain ingress {\n    type filter hook ingress device "${spec.uplink}" priority -500; policy drop;\n  }\n}\n`,
  });
  if (!vs.cache.port(spec.uplink)) {
    await vs.addPort(PHY_BRIDGE, { name: spec.uplink, externalIds: { 'seine-owner': 'uplink' } });
  }
  await vs.waitForOfport(PHY_BRIDGE);
  const [uplinkAddrs] = await ip.addrs(spec.uplink);
  const batch = new IpBatch();
  for (const a of uplinkAddrs?.addr_info ?? []) if (a.family === 'inet') batch.command('addr', 'del', `${a.local}/${a.prefixlen}`, 'dev', spec.uplink);
  batch.setLink(PHY_BRIDGE, { up: true, mtu: spec.mtu }).addAddr(PHY_BRIDGE, spec.nodeCidr);
  if (spec.defaultGateway) batch.replaceRoute('default', { via: spec.defaultGateway, dev: PHY_BRIDGE });
  await ip.apply(batch);
}

/** The node IP/prefix and default gateway as found on the uplink, or as recorded on br-phy after a move. */
export async function discoverUplink(vs: Vswitch | undefined, ip: IpRoute, nodeIp: string): Promise<{ uplink: string; nodeCidr: string; defaultGateway?: string; mtu: number }> {
  const recorded = vs?.cache.bridge(PHY_BRIDGE)?.externalIds;
  for (const l of await ip.addrs()) {
    const a = l.addr_info.find((x) => x.family === 'inet' && x.local === nodeIp);
    if (!a) continue;
    const link = await ip.link(l.ifname);
    const routes = await ip.routes();
    const def = routes.find((r) => r.dst === 'default' && r.dev === l.ifname);
    if (l.ifname !== PHY_BRIDGE) return { uplink: l.ifname, nodeCidr: `${nodeIp}/${a.prefixlen}`, defaultGateway: def?.gateway, mtu: link?.mtu ?? 1500 };
    // Already moved: the uplink is br-phy's other port.
    const uplink = vs?.cache.portsOf(PHY_BRIDGE).map((p) => p.name).find((n) => n !== PHY_BRIDGE);
    if (uplink) return { uplink, nodeCidr: `${nodeIp}/${a.prefixlen}`, defaultGateway: def?.gateway ?? (recorded?.['seine-default-gw'] || undefined), mtu: link?.mtu ?? 1500 };
  }
  // ovs-vswitchd restarted and br-phy lost its address: use what was recorded.
  if (recorded?.['seine-node-cidr']) {
    const uplink = vs!.cache.portsOf(PHY_BRIDGE).map((p) => p.name).find((n) => n !== PHY_BRIDGE);
    if (uplink) {
      const link = await ip.link(uplink);
      return { uplink, nodeCidr: recorded['seine-node-cidr'], defaultGateway: recorded['seine-default-gw'] || undefined, mtu: link?.mtu ?? 1500 };
    }
  }
  throw new Error(`no interface holds the node IP ${nodeIp}`);
}
