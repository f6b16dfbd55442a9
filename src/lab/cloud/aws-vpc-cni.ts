// The lab's stand-in for the AWS VPC CNI's plugins (aws-cni, egress-cni): a test double of the cloud, not part
// of Seine. It builds what amazon-vpc-cni-k8s's routed-eni plugin builds on a node (cmd/routed-eni-cni-plugin,
// its driver) and answers with the same, odd, result; ipamd's part (which ENI address a pod gets) is an address
// store per node that the lab's provisioning fills with the node's ENIs and their pod addresses.
import { join } from 'node:path';
import type { AttachmentArgs, PluginSpec } from '../../cni/skel.js';
import type { CniResult, NetConf } from '../../cni/types.js';
import { IpBatch, IpRoute } from '../../host/ip.js';
import { AddressStore, PoolExhaustedError } from './address-store.js';
import { MAIN_TABLE } from './plan.js';
import { createPodLink, deleteRulesAndRoutes, hostVethName, podOf, randomLocalMac, replaceRules } from './pod-link.js';

/** Where the lab tells a node's stand-in plugins their node's state directory (their wrapper sets it). */
export const CLOUD_STATE_ENV = 'SEINE_LAB_CLOUD_STATE';

/** ipamd's view of an ENI, attached to each of its pod addresses. */
export interface EniTag {
  deviceNumber: number;
  routeTable: number;
}

/** aws-node's rule priorities (pkg/networkutils). */
export const TO_CONTAINER_RULE_PRIORITY = 512;
export const FROM_POD_RULE_PRIORITY = 1536;

interface AwsCniConf extends NetConf {
  vethPrefix?: string;
  mtu?: string;
}

interface EgressCniConf extends NetConf {
  mtu?: string;
  enabled?: string;
}

export function stateDir(env: Readonly<Record<string, string | undefined>>): string {
  const dir = env[CLOUD_STATE_ENV];
  if (!dir) throw new Error(`${CLOUD_STATE_ENV} is not set: this plugin is the lab's stand-in and runs only through the wrapper the lab installs`);
  return dir;
}

export function ipamdStore(dir: string): AddressStore<EniTag> {
  return new AddressStore<EniTag>(join(dir, 'ipamd.json'));
}

/** ipamd keys an assignment by container, interface and network name. */
function ipamKey(args: AttachmentArgs): string {
  return `${args.containerId}/${args.ifname}/${args.config.name}`;
}

function podRules(address: string, routeTable: number): string[][] {
  const rules = [['to', `${address}/32`, 'priority', String(TO_CONTAINER_RULE_PRIORITY), 'table', 'main']];
  if (routeTable !== MAIN_TABLE) rules.push(['from', `${address}/32`, 'priority', String(FROM_POD_RULE_PRIORITY), 'table', String(routeTable)]);
  return rules;
}

function parseMtu(value: string | undefined, fallback: number): number {
  const mtu = Number.parseInt(value ?? String(fallback), 10);
  if (!Number.isInteger(mtu) || mtu < 576 || mtu > 9001) throw new Error(`invalid mtu ${JSON.stringify(value)}`);
  return mtu;
}

async function awsAdd(args: AttachmentArgs<AwsCniConf>): Promise<CniResult> {
  const prefix = args.config.vethPrefix ?? 'eni';
  if (prefix.length > 4) throw new Error('conf.VethPrefix can be at most 4 characters long');
  const mtu = parseMtu(args.config.mtu, 9001);
  const pod = podOf(args.argPairs);
  const store = ipamdStore(stateDir(args.env));
  const key = ipamKey(args);
  let eni;
  try {
    eni = await store.assign(key, `${pod.namespace}/${pod.name}`);
  } catch (e) {
    if (e instanceof PoolExhaustedError) throw new Error(`add cmd: failed to assign an IP address to container: ${e.message}`, { cause: e });
    throw e;
  }
  const hostIf = hostVethName(prefix, `${pod.namespace}.${pod.name}`);
  try {
    await createPodLink({
      netns: args.netns,
      ifname: args.ifname,
      hostIf,
      hostMac: randomLocalMac(),
      mtu,
      address: `${eni.address}/32`,
      routing: { kind: 'fake-gateway', neighbour: 'permanent' },
      hostSysctls: { [`net.ipv6.conf.${hostIf}.accept_ra`]: 0, [`net.ipv6.conf.${hostIf}.accept_redirects`]: 1, [`net.ipv6.conf.${hostIf}.forwarding`]: 0 },
    });
    await new IpRoute().apply(new IpBatch().replaceRoute(`${eni.address}/32`, { dev: hostIf, scope: 'link' }));
    await replaceRules(podRules(eni.address, eni.tag.routeTable));
  } catch (e) {
    await new IpRoute().applyBestEffort(new IpBatch().delLink(hostIf));
    await store.release(key);
    throw new Error(`add command: failed to setup network: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  // The result as aws-cni gives it: the host veth; the container interface whose `mac` holds the route table id
  // (for DEL without ipamd); and a dummy interface whose `mac` is the pod's VLAN id (0: not a branch ENI pod) and
  // whose `sandbox` holds the ENI's device number. No gateway: the pod's next hop is 169.254.1.1.
  return {
    cniVersion: '1.0.0',
    interfaces: [
      { name: hostIf },
      { name: args.ifname, sandbox: args.netns, mac: String(eni.tag.routeTable) },
      { name: hostVethName('dummy', `${pod.namespace}.${pod.name}`), mac: '0', sandbox: String(eni.tag.deviceNumber) },
    ],
    ips: [{ address: `${eni.address}/32`, interface: 1 }],
  };
}

/** When ipamd has no record, aws-cni tears down from prevResult: the container interface's IP and route table. */
function fromPrevResult(args: AttachmentArgs): { address: string; routeTable: number } | undefined {
  const prev = args.prevResult;
  const pod = podOf(args.argPairs);
  if (!prev?.interfaces?.some((i) => i.name === hostVethName('dummy', `${pod.namespace}.${pod.name}`))) return undefined;
  const index = prev.interfaces.findIndex((i) => i.name === args.ifname && i.sandbox !== undefined);
  const ip = prev.ips?.find((i) => i.interface === index);
  const routeTable = Number.parseInt(prev.interfaces[index]?.mac ?? '', 10);
  if (!ip || !Number.isInteger(routeTable)) return undefined;
  return { address: ip.address.split('/')[0]!, routeTable };
}

async function awsDel(args: AttachmentArgs<AwsCniConf>): Promise<void> {
  const store = ipamdStore(stateDir(args.env));
  const held = await store.lookup(ipamKey(args));
  const pod = held ? { address: held.address, routeTable: held.tag.routeTable } : fromPrevResult(args);
  // The host veth goes with the pod's namespace, which the runtime deletes after DEL (aws-cni leaves it too).
  if (pod) await deleteRulesAndRoutes(podRules(pod.address, pod.routeTable), [{ dst: `${pod.address}/32` }]);
  await store.release(ipamKey(args));
}

export const awsCniPlugin: PluginSpec<AwsCniConf> = {
  about: 'AWS CNI (Seine lab stand-in)',
  handlers: {
    add: awsAdd,
    del: awsDel,
    // aws-cni registers no CHECK (its conflist sets disableCheck): it succeeds without looking.
    check: () => undefined,
  },
};

/**
 * egress-cni gives pods IPv6 egress in an IPv4 cluster (or IPv4 egress in an IPv6 one) when enabled; the lab's
 * clusters are IPv4 without IPv6 egress, where it passes prevResult through, as the real one does.
 */
export const egressCniPlugin: PluginSpec<EgressCniConf> = {
  about: 'egress CNI plugin (Seine lab stand-in)',
  handlers: {
    add: (args) => {
      if (!args.prevResult) throw new Error('must be called as a chained plugin');
      parseMtu(args.config.mtu, 9001);
      if (args.config.enabled !== 'true') return args.prevResult;
      throw new Error('the lab stands in for an IPv4 cluster without IPv6 egress: set "enabled" to "false"');
    },
    del: (args) => {
      if (args.config.enabled === 'true') throw new Error('the lab stands in for an IPv4 cluster without IPv6 egress: set "enabled" to "false"');
    },
    check: () => undefined,
  },
};
