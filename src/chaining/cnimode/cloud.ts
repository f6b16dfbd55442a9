import type { AppsV1Api, V1DaemonSet } from '@kubernetes/client-node';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../host/exec.js';
import { isNotFound } from '../../k8s/api.js';
import { CHAINED_CONFLIST_NAME, chainedAfter } from './conflist.js';

/** The clouds whose primary CNI Seine knows the quirks of. */
export type Cloud = 'eks' | 'aks' | 'generic';

/** What Seine runs chained after, from the conflist that holds its plugin. */
export interface ChainedConf {
  file: string;
  /** The primary's network name, which the derived list keeps. */
  network: string;
  /** Plugin types before Seine's. */
  primaryTypes: string[];
  cloud: Cloud;
}

export function cloudOf(types: readonly string[]): Cloud {
  if (types.includes('aws-cni')) return 'eks';
  if (types.includes('azure-vnet')) return 'aks';
  return 'generic';
}

/** Seine's derived conflist in `confDir`, and what it runs after, if it is there and whole. */
export async function readChainedConf(confDir: string): Promise<ChainedConf | undefined> {
  const file = join(confDir, CHAINED_CONFLIST_NAME);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const after = chainedAfter(text);
  return after && { file, network: after.name, primaryTypes: after.primaryTypes, cloud: cloudOf(after.primaryTypes) };
}

/** The connection mark the AWS VPC CNI gives connections that must answer through the primary ENI. */
const AWS_CONNMARK = '0x80';
const CHAIN = 'SEINE-PREROUTING';
const POST_CHAIN = 'SEINE-POSTROUTING';

/**
 * EKS: the AWS VPC CNI restores its connection mark, and marks pods' outbound connections, for packets coming in
 * by `eni+`; taken over, they come in by Seine's gateway. The same two rules for the gateway keep NodePort replies
 * and the egress of pods on secondary ENIs on the right route table.
 */
export function awsRulesScript(gatewayIf: string, hasConnmarkChain: boolean): string {
  const lines = [
    '*mangle',
    `:${CHAIN} - [0:0]`,
    `-F ${CHAIN}`,
    `-A ${CHAIN} -i ${gatewayIf} -m comment --comment "Seine: AWS, primary ENI" -j CONNMARK --restore-mark --nfmask ${AWS_CONNMARK} --ctmask ${AWS_CONNMARK}`,
    'COMMIT',
    '*nat',
    `:${CHAIN} - [0:0]`,
    `-F ${CHAIN}`,
    ...(hasConnmarkChain ? [`-A ${CHAIN} -i ${gatewayIf} -m comment --comment "Seine: AWS, outbound connections" -j AWS-CONNMARK-CHAIN-0`] : []),
    // The AWS rule restoring the mark for the routing decision comes before this chain in PREROUTING: its copy.
    `-A ${CHAIN} -i ${gatewayIf} -m comment --comment "Seine: AWS, CONNMARK" -j CONNMARK --restore-mark --nfmask ${AWS_CONNMARK} --ctmask ${AWS_CONNMARK}`,
    `:${POST_CHAIN} - [0:0]`,
    `-F ${POST_CHAIN}`,
    // The AWS VPC CNI SNATs everything bound outside the VPC: into OVS, that is node-port and Service traffic on its
    // way to the proxy, which must keep its client's address (OVS's endpoint may be on another node).
    `-A ${POST_CHAIN} -o ${gatewayIf} -m comment --comment "Seine: no AWS SNAT into OVS" -j ACCEPT`,
    'COMMIT',
    '',
  ];
  return lines.join('\n');
}

/** Installs (idempotently) Seine's copies of the AWS VPC CNI's rules for its gateway. */
export async function ensureAwsRules(netns: string | undefined, gatewayIf: string): Promise<void> {
  const nat = (await run('iptables-save', ['-t', 'nat'], { netns })).stdout;
  await run('iptables-restore', ['--noflush'], { netns, input: awsRulesScript(gatewayIf, /^:AWS-CONNMARK-CHAIN-0 /m.test(nat)) });
  for (const [table, hook, chain] of JUMPS) {
    const present = await run('iptables', ['-t', table, '-C', hook, '-j', chain], { netns }).then(
      () => true,
      () => false,
    );
    if (!present) await run('iptables', ['-t', table, '-I', hook, '1', '-j', chain], { netns });
  }
}

/** Where Seine's chains are jumped to from: first in each. */
const JUMPS = [
  ['mangle', 'PREROUTING', CHAIN],
  ['nat', 'PREROUTING', CHAIN],
  ['nat', 'POSTROUTING', POST_CHAIN],
] as const;

/** Removes them (the node given back to the AWS VPC CNI alone). */
export async function removeAwsRules(netns: string | undefined): Promise<void> {
  for (const [table, hook, chain] of JUMPS) await run('iptables', ['-t', table, '-D', hook, '-j', chain], { netns }).catch(() => undefined);
  for (const [table, , chain] of JUMPS) {
    await run('iptables', ['-t', table, '-F', chain], { netns }).catch(() => undefined);
    await run('iptables', ['-t', table, '-X', chain], { netns }).catch(() => undefined);
  }
}

/**
 * Whether the AWS VPC CNI's network policy agent enforces policies on this cluster: its eBPF programs on the
 * pods' veths would filter the same traffic as Seine's policies, and one would silently override the other.
 * Found from the aws-node DaemonSet: the node agent container started with --enable-network-policy=true.
 */
export function awsPolicyAgentEnabled(ds: V1DaemonSet | undefined): string | undefined {
  for (const c of ds?.spec?.template.spec?.containers ?? []) {
    const args = [...(c.command ?? []), ...(c.args ?? [])];
    if (args.some((a) => /^--enable-network-policy=true$/i.test(a))) return `container ${c.name} of DaemonSet kube-system/aws-node runs with --enable-network-policy=true`;
    const mode = c.env?.find((e) => e.name === 'NETWORK_POLICY_ENFORCING_MODE')?.value;
    const enabled = c.env?.find((e) => e.name === 'ENABLE_NETWORK_POLICY')?.value;
    if (enabled === 'true') return `container ${c.name} of DaemonSet kube-system/aws-node sets ENABLE_NETWORK_POLICY=true${mode ? ` (NETWORK_POLICY_ENFORCING_MODE=${mode})` : ''}`;
  }
  return undefined;
}

export async function readAwsNode(apps: AppsV1Api): Promise<V1DaemonSet | undefined> {
  try {
    return await apps.readNamespacedDaemonSet({ name: 'aws-node', namespace: 'kube-system' });
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}
