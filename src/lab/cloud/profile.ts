// A lab node made into a cloud node (EKS or AKS): the cloud CNI's conflist and plugins (the lab's stand-ins),
// its address pools, and what the cloud's node agent sets up at boot (aws-node: iptables SNAT and CONNMARK
// chains, the fwmark rule, loose rp_filter, secondary ENIs). And the cloud network itself: the fabric's router
// delivers every node's pod addresses to the interface that owns them, and (EKS) enforces the VPC's
// source/destination check. Removal undoes all of it.
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, shellQuote } from '../../host/exec.js';
import { IpBatch, IpRoute } from '../../host/ip.js';
import type { NetConfList } from '../../cni/types.js';
import { netnsPath } from '../../host/netns.js';
import { repoRoot } from '../../util/paths.js';
import type { NodeDirs } from '../node.js';
import { UNDERLAY_BRIDGE, underlayPrefixLength, type LabPlan, type NodePlan } from '../topology.js';
import { CLOUD_STATE_ENV, ipamdStore, type EniTag } from './aws-vpc-cni.js';
import { AZURE_BRIDGE, azureIpamStore, type SubnetTag } from './azure-cni.js';
import { INTERNET_IP, type CloudEni, type CloudPlan } from './plan.js';

/** The cloud CNIs' conflist files, as aws-node and Azure CNI install them. */
export const AWS_CONFLIST = '10-aws.conflist';
export const AZURE_CONFLIST = '10-azure.conflist';
/** aws-node's connmark for traffic that must leave through the primary ENI (AWS_VPC_K8S_CNI_CONNMARK). */
export const AWS_CONNMARK = 0x80;
const HOST_RULE_PRIORITY = 1024;
const FROM_ENI_PRIMARY_IP_PRIORITY = 32765;
/** Azure's wireserver: the DNS server its IPAM reports. */
const AZURE_DNS = '168.63.129.16';
/** The fabric's nft table enforcing the VPC's source/destination check. */
const VPC_CHECK_TABLE = 'lab-vpc';

const PLUGINS = { eks: ['aws-cni', 'egress-cni'], aks: ['azure-vnet', 'azure-vnet-ipam'] } as const;

function cloudOf(plan: LabPlan, node: NodePlan): { cloud: CloudPlan; enis: CloudEni[] } {
  if (!plan.cloud || !node.cloud) throw new Error(`lab '${plan.name}' has no cloud profile`);
  return { cloud: plan.cloud, enis: node.cloud.enis };
}

/** Where a node's stand-in plugins keep their state (aws-node's /var/run/aws-node, Azure's /var/run/azure-vnet*). */
export function cloudStateDir(plan: LabPlan, dirs: NodeDirs): string {
  return join(dirs.root, 'var/run', plan.cloud?.profile === 'aks' ? 'azure-vnet' : 'aws-node');
}

/** A plugin executable in the node's CNI bin directory: a shell wrapper that runs the built stand-in with its state directory. */
function installWrapper(binDir: string, type: string, state: string): void {
  const js = join(repoRoot(), 'dist', 'src', 'lab', 'cloud', 'plugins', `${type}.js`);
  const path = join(binDir, type);
  writeFileSync(
    path,
    `#!/bin/sh\n# Seine lab: stand-in for the cloud's ${type} CNI plugin (a test double of the cloud, not part of Seine).\n${CLOUD_STATE_ENV}=${shellQuote(state)} exec ${shellQuote(process.execPath)} ${shellQuote(js)}\n`,
  );
  chmodSync(path, 0o755);
}

/** 10-aws.conflist as aws-node renders it for an IPv4 cluster (no IPv6 egress, no bandwidth plugin). */
export function awsConflist(mtu: number, dirs: Pick<NodeDirs, 'root' | 'logDir'>): NetConfList {
  return {
    cniVersion: '0.4.0',
    name: 'aws-cni',
    disableCheck: true,
    plugins: [
      {
        name: 'aws-cni',
        type: 'aws-cni',
        vethPrefix: 'eni',
        mtu: String(mtu),
        podSGEnforcingMode: 'strict',
        pluginLogFile: join(dirs.logDir, 'aws-routed-eni/plugin.log'),
        pluginLogLevel: 'Debug',
        capabilities: { 'io.kubernetes.cri.pod-annotations': true },
      },
      {
        name: 'egress-cni',
        type: 'egress-cni',
        mtu: String(mtu),
        enabled: 'false',
        randomizeSNAT: 'prng',
        nodeIP: '',
        ipam: { type: 'host-local', ranges: [[{ subnet: 'fd00::ac:00/118' }]], routes: [{ dst: '::/0' }], dataDir: join(dirs.root, 'run/cni/v4pd/egress-v6-ipam') },
        pluginLogFile: join(dirs.logDir, 'aws-routed-eni/egress-v6-plugin.log'),
        pluginLogLevel: 'Debug',
      },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  };
}

/** 10-azure.conflist as Azure CNI ships it (azure-linux.conflist), in transparent or the older bridge mode. */
export function azureConflist(mode: 'transparent' | 'bridge'): NetConfList {
  return {
    cniVersion: '0.3.0',
    name: 'azure',
    plugins: [
      { type: 'azure-vnet', mode, ...(mode === 'bridge' ? { bridge: AZURE_BRIDGE } : {}), ipsToRouteViaHost: ['169.254.20.10'], ipam: { type: 'azure-vnet-ipam' } },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  };
}

/**
 * aws-node's iptables rules (pkg/networkutils: SNAT of traffic leaving the VPC to the primary IP, CONNMARK of
 * connections from pods to outside the VPC, and the mangle rules that send replies of NodePort connections back out
 * of the primary ENI), as `iptables-restore --noflush` input.
 */
export function awsIptablesRules(cloud: CloudPlan, primaryIf: string, primaryIp: string): string {
  const mark = `0x${AWS_CONNMARK.toString(16)}`;
  const nat = [
    '*nat',
    ':AWS-SNAT-CHAIN-0 - [0:0]',
    ':AWS-CONNMARK-CHAIN-0 - [0:0]',
    '-A PREROUTING -i eni+ -m comment --comment "AWS, outbound connections" -j AWS-CONNMARK-CHAIN-0',
    `-A PREROUTING -m comment --comment "AWS, CONNMARK" -j CONNMARK --restore-mark --nfmask ${mark} --ctmask ${mark}`,
    ...cloud.vpcCidrs.map((c) => `-A AWS-CONNMARK-CHAIN-0 -d ${c} -m comment --comment "AWS CONNMARK CHAIN" -j RETURN`),
    `-A AWS-CONNMARK-CHAIN-0 -m comment --comment "AWS, CONNMARK" -j CONNMARK --set-xmark ${mark}/${mark}`,
    '-A POSTROUTING -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0',
    ...cloud.vpcCidrs.map((c) => `-A AWS-SNAT-CHAIN-0 -d ${c} -m comment --comment "AWS SNAT CHAIN" -j RETURN`),
    `-A AWS-SNAT-CHAIN-0 ! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL -j SNAT --to-source ${primaryIp} --random-fully`,
    'COMMIT',
  ];
  const mangle = [
    '*mangle',
    `-A PREROUTING -i ${primaryIf} -m comment --comment "AWS, primary ENI" -m addrtype --dst-type LOCAL --limit-iface-in -j CONNMARK --set-xmark ${mark}/${mark}`,
    `-A PREROUTING -i eni+ -m comment --comment "AWS, primary ENI" -j CONNMARK --restore-mark --nfmask ${mark} --ctmask ${mark}`,
    `-A PREROUTING -i vlan+ -m comment --comment "AWS, primary ENI" -j CONNMARK --restore-mark --nfmask ${mark} --ctmask ${mark}`,
    'COMMIT',
  ];
  return [...nat, ...mangle].join('\n') + '\n';
}

/** The same rules turned into deletions (`-A` to `-D`), then the chains flushed and removed. */
function awsIptablesRemoval(rules: string): string {
  const lines = rules.split('\n').filter((l) => l && !l.startsWith(':')).map((l) => l.replace(/^-A (PREROUTING|POSTROUTING) /, '-D $1 '));
  // Rules inside aws-node's own chains go with the chains.
  const kept = lines.filter((l) => !/^-A AWS-/.test(l));
  const at = kept.indexOf('COMMIT');
  kept.splice(at, 0, '-F AWS-SNAT-CHAIN-0', '-F AWS-CONNMARK-CHAIN-0', '-X AWS-SNAT-CHAIN-0', '-X AWS-CONNMARK-CHAIN-0');
  return kept.join('\n') + '\n';
}

function eniRule(eni: CloudEni): string[] {
  return ['from', `${eni.ip}/32`, 'priority', String(FROM_ENI_PRIMARY_IP_PRIORITY), 'table', String(eni.routeTable)];
}

/**
 * A secondary ENI: another leg of the node on the underlay with its own address, and (as ipamd's
 * setupENINetwork does) its own route table with the subnet's gateway as default, the ENI's own-address rule, and
 * no route for the subnet in main. ARP answered only for an interface's own address, as on a multi-homed instance.
 */
async function attachSecondaryEni(plan: LabPlan, node: NodePlan, eni: CloudEni): Promise<void> {
  const fabric = new IpRoute(netnsPath(plan.fabricNetns));
  const nodeNs = netnsPath(node.netns);
  await fabric.apply(new IpBatch().addVeth(eni.fabricPort!, eni.name, { peerNetns: nodeNs, mtu: plan.underlayMtu }).setLink(eni.fabricPort!, { master: UNDERLAY_BRIDGE, up: true }));
  const ip = new IpRoute(nodeNs);
  const subnet = plan.underlayCidr;
  await ip.apply(
    new IpBatch()
      .addAddr(eni.name, `${eni.ip}/${underlayPrefixLength(plan)}`)
      .setLink(eni.name, { up: true })
      .delRoute(subnet, { dev: eni.name })
      .replaceRoute(`${plan.externalIp}/32`, { dev: eni.name, scope: 'link', table: eni.routeTable })
      .replaceRoute('default', { via: plan.externalIp, dev: eni.name, table: eni.routeTable })
      .command('rule', 'add', ...eniRule(eni)),
    ['ethtool', '-K', eni.name, 'tx', 'off'],
  );
  await ip.sysctl({ [`net.ipv4.conf.${node.uplink}.arp_ignore`]: 1, [`net.ipv4.conf.${node.uplink}.arp_announce`]: 2, [`net.ipv4.conf.${eni.name}.arp_ignore`]: 1, [`net.ipv4.conf.${eni.name}.arp_announce`]: 2 });
}

/** Azure's older bridge mode: `azure0` carries the node's pods on L2; the node answers for the subnet gateway and routes. */
async function createAzureBridge(node: NodePlan, cloud: CloudPlan): Promise<void> {
  const ip = new IpRoute(netnsPath(node.netns));
  await ip.apply(
    new IpBatch()
      .addLink(AZURE_BRIDGE, 'bridge', 'stp_state', '0', 'forward_delay', '0')
      .setLink(AZURE_BRIDGE, { up: true })
      .addAddr(AZURE_BRIDGE, `${cloud.gateway!}/32`)
      .replaceRoute(node.cloud!.podBlock, { dev: AZURE_BRIDGE, scope: 'link' }),
    ['sysctl', '-q', '-w', `net.ipv4.conf.${AZURE_BRIDGE}.proxy_arp=1`],
  );
}

/** Makes a lab node a cloud node: the cloud CNI's files and plugins, its pools, and its node agent's host set-up. */
export async function provisionCloudNode(plan: LabPlan, node: NodePlan, dirs: NodeDirs): Promise<void> {
  const { cloud, enis } = cloudOf(plan, node);
  const state = cloudStateDir(plan, dirs);
  mkdirSync(state, { recursive: true });
  mkdirSync(dirs.cniBinDir, { recursive: true });
  for (const type of PLUGINS[cloud.profile]) installWrapper(dirs.cniBinDir, type, state);
  const ip = new IpRoute(netnsPath(node.netns));
  if (cloud.profile === 'eks') {
    await ipamdStore(state).initialize(enis.map((e) => ({ cidr: e.podCidr, tag: { deviceNumber: e.deviceNumber, routeTable: e.routeTable } satisfies EniTag })));
    for (const eni of enis.filter((e) => e.deviceNumber > 0)) await attachSecondaryEni(plan, node, eni);
    // aws-vpc-cni-init: loose reverse-path filter on the primary ENI; ipamd: marked traffic uses main.
    await ip.apply(
      new IpBatch().command('rule', 'add', 'fwmark', `0x${AWS_CONNMARK.toString(16)}/0x${AWS_CONNMARK.toString(16)}`, 'priority', String(HOST_RULE_PRIORITY), 'table', 'main'),
      ['sysctl', '-q', '-w', `net.ipv4.conf.${node.uplink}.rp_filter=2`],
    );
    await run('iptables-restore', ['--noflush'], { netns: netnsPath(node.netns), input: awsIptablesRules(cloud, node.uplink, node.ip) });
    writeFileSync(join(dirs.cniConfDir, AWS_CONFLIST), JSON.stringify(awsConflist(plan.underlayMtu, dirs), null, 2));
  } else {
    await azureIpamStore(state).initialize([{ cidr: node.cloud!.podBlock, tag: { subnet: cloud.podCidr, gateway: cloud.gateway!, dnsServers: [AZURE_DNS] } satisfies SubnetTag }]);
    if (cloud.azureMode === 'bridge') await createAzureBridge(node, cloud);
    writeFileSync(join(dirs.cniConfDir, AZURE_CONFLIST), JSON.stringify(azureConflist(cloud.azureMode ?? 'transparent'), null, 2));
  }
}

/** Undoes provisionCloudNode (pods must be gone first: their veths and rules are the plugins' to remove). */
export async function deprovisionCloudNode(plan: LabPlan, node: NodePlan, dirs: NodeDirs): Promise<void> {
  const { cloud, enis } = cloudOf(plan, node);
  const nodeNs = netnsPath(node.netns);
  const ip = new IpRoute(nodeNs);
  rmSync(join(dirs.cniConfDir, cloud.profile === 'eks' ? AWS_CONFLIST : AZURE_CONFLIST), { force: true });
  for (const type of PLUGINS[cloud.profile]) rmSync(join(dirs.cniBinDir, type), { force: true });
  rmSync(cloudStateDir(plan, dirs), { recursive: true, force: true });
  if (cloud.profile === 'eks') {
    await run('iptables-restore', ['--noflush'], { netns: nodeNs, input: awsIptablesRemoval(awsIptablesRules(cloud, node.uplink, node.ip)) }).catch(() => undefined);
    const undo = new IpBatch().command('rule', 'del', 'fwmark', `0x${AWS_CONNMARK.toString(16)}/0x${AWS_CONNMARK.toString(16)}`, 'priority', String(HOST_RULE_PRIORITY), 'table', 'main');
    for (const eni of enis.filter((e) => e.deviceNumber > 0)) undo.command('rule', 'del', ...eniRule(eni)).command('route', 'flush', 'table', String(eni.routeTable)).delLink(eni.name);
    await ip.applyBestEffort(undo);
    await ip.sysctl({ [`net.ipv4.conf.${node.uplink}.rp_filter`]: 0, [`net.ipv4.conf.${node.uplink}.arp_ignore`]: 0, [`net.ipv4.conf.${node.uplink}.arp_announce`]: 0 });
  } else if (cloud.azureMode === 'bridge') {
    await ip.applyBestEffort(new IpBatch().delLink(AZURE_BRIDGE));
  }
}

/** The pod addresses each node interface owns: what the VPC router delivers to it and lets it send from. */
function ownership(plan: LabPlan): Array<{ fabricPort: string; ip: string; podCidr: string }> {
  return plan.nodes.flatMap((n) => (n.cloud?.enis ?? []).map((e) => ({ fabricPort: e.fabricPort ?? n.fabricPort, ip: e.ip, podCidr: e.podCidr })));
}

/**
 * The cloud network: the external host (the VPC/VNet router and a host in it) routes every interface's pod
 * addresses to that interface's address, back out of the interface it came in by, so without ICMP redirects. On
 * EKS the fabric drops what a node interface sends from an address it does not own (EC2's source/destination
 * check), so traffic that leaves through the wrong ENI fails as it does on AWS.
 */
export async function buildCloudNetwork(plan: LabPlan): Promise<void> {
  if (!plan.cloud) return;
  const ext = new IpRoute(netnsPath(plan.externalNetns));
  const routes = new IpBatch();
  for (const o of ownership(plan)) routes.replaceRoute(o.podCidr, { via: o.ip });
  routes.addAddr('eth0', `${INTERNET_IP}/32`);
  await ext.apply(routes, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.send_redirects=0', 'net.ipv4.conf.default.send_redirects=0', 'net.ipv4.conf.eth0.send_redirects=0', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.eth0.rp_filter=0']);
  if (plan.cloud.profile !== 'eks') return;
  const checks = ownership(plan).map((o) => `  iifname "${o.fabricPort}" ip saddr != { ${o.ip}, ${o.podCidr} } counter drop`);
  const table = `table bridge ${VPC_CHECK_TABLE} {\n chain forward {\n  type filter hook forward priority 0; policy accept;\n${checks.join('\n')}\n }\n}\n`;
  await run('nft', ['-f', '-'], { netns: netnsPath(plan.fabricNetns), input: table });
}

/** Removes what buildCloudNetwork added. */
export async function removeCloudNetwork(plan: LabPlan): Promise<void> {
  if (!plan.cloud) return;
  const undo = new IpBatch();
  for (const o of ownership(plan)) undo.delRoute(o.podCidr);
  undo.command('addr', 'del', `${INTERNET_IP}/32`, 'dev', 'eth0');
  await new IpRoute(netnsPath(plan.externalNetns)).applyBestEffort(undo);
  if (plan.cloud.profile === 'eks') await run('nft', ['delete', 'table', 'bridge', VPC_CHECK_TABLE], { netns: netnsPath(plan.fabricNetns) }).catch(() => undefined);
}
