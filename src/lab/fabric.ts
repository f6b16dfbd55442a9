import { IpBatch, IpRoute } from '../host/ip.js';
import { createNetns, netnsPath } from '../host/netns.js';
import type { ResourceLedger } from '../host/ledger.js';
import { UNDERLAY_BRIDGE, VLAN_FABRIC_BRIDGE, underlayPrefixLength, type LabPlan, type NodePlan } from './topology.js';

/**
 * The lab's physical network: a fabric namespace holding two Linux bridges, the underlay (node IPs, tunnels)
 * and the VLAN fabric (802.1Q-tagged secondary networks pass through it untouched), and an external host on
 * the underlay that stands for everything outside the cluster.
 */
export async function buildFabric(plan: LabPlan, ledger: ResourceLedger): Promise<void> {
  ledger.netns(plan.fabricNetns);
  const fabric = new IpRoute(await createNetns(plan.fabricNetns));
  await fabric.apply(
    new IpBatch()
      .addLink(UNDERLAY_BRIDGE, 'bridge', 'stp_state', '0', 'forward_delay', '0')
      .addLink(VLAN_FABRIC_BRIDGE, 'bridge', 'stp_state', '0', 'forward_delay', '0')
      .setLink(UNDERLAY_BRIDGE, { up: true, mtu: plan.underlayMtu })
      .setLink(VLAN_FABRIC_BRIDGE, { up: true, mtu: plan.underlayMtu }),
  );

  // A machine-wide br_netfilter would send every bridged frame through iptables/conntrack: a switch does not.
  await fabric.sysctl({ 'net.bridge.bridge-nf-call-iptables': 0, 'net.bridge.bridge-nf-call-ip6tables': 0, 'net.bridge.bridge-nf-call-arptables': 0 }).catch(() => undefined);

  ledger.netns(plan.externalNetns);
  const extPath = await createNetns(plan.externalNetns);
  await fabric.apply(
    new IpBatch()
      .addVeth('ext-eth0', 'eth0', { peerNetns: extPath, mtu: plan.underlayMtu })
      .setLink('ext-eth0', { master: UNDERLAY_BRIDGE, up: true }),
  );
  const ext = new IpRoute(extPath);
  await ext.apply(new IpBatch().addAddr('eth0', `${plan.externalIp}/${underlayPrefixLength(plan)}`).setLink('eth0', { up: true }));
  await ext.txOffloadOff('eth0');
}

/** Joins a node namespace to both fabrics: eth0 (underlay, with the node IP) and eth1 (VLAN trunk, no IP). */
export async function wireNode(plan: LabPlan, node: NodePlan): Promise<void> {
  const fabric = new IpRoute(netnsPath(plan.fabricNetns));
  const nodeNs = netnsPath(node.netns);
  await fabric.apply(
    new IpBatch()
      .addVeth(node.fabricPort, node.uplink, { peerNetns: nodeNs, mtu: plan.underlayMtu })
      .addVeth(node.vlanFabricPort, node.vlanUplink, { peerNetns: nodeNs, mtu: plan.underlayMtu })
      .setLink(node.fabricPort, { master: UNDERLAY_BRIDGE, up: true })
      .setLink(node.vlanFabricPort, { master: VLAN_FABRIC_BRIDGE, up: true }),
  );
  const ip = new IpRoute(nodeNs);
  await ip.apply(
    new IpBatch()
      .addAddr(node.uplink, `${node.ip}/${underlayPrefixLength(plan)}`)
      .setLink(node.uplink, { up: true })
      .setLink(node.vlanUplink, { up: true })
      .replaceRoute('default', { via: plan.externalIp }),
  );
  // Both uplinks may end up on a userspace OVS bridge, where TX checksum offload breaks TCP.
  await ip.txOffloadOff(node.uplink, node.vlanUplink);
  await ip.sysctl({ 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.all.rp_filter': 0, 'net.ipv4.conf.default.rp_filter': 0 });
}
