import type { InspectedInterface } from '../../agent/feature.js';
import type { CniResult } from '../../cni/types.js';
import type { AttachedInterface } from '../datapath/types.js';

/** external_ids of a Seine secondary attachment's OVS port: enough to tear it down and report it after a restart. */
export const SEC = {
  containerId: 'container-id',
  podNamespace: 'pod-namespace',
  podName: 'pod-name',
  podUid: 'pod-uid',
  ifname: 'ifname',
  network: 'network',
  ipam: 'ipam',
  ips: 'ips',
  mac: 'mac',
  netns: 'netns',
  defaultRoute: 'default-route',
  request: 'request',
  netnsId: 'netns-id',
} as const;

/** One secondary interface of a pod, however it was made. */
export interface AttachmentRecord {
  containerId: string;
  podNamespace: string;
  podName: string;
  podUid: string;
  /** ns/name of the NAD. */
  network: string;
  ifname: string;
  netns: string;
  /** Seine's own network (a port on a secondary bridge) or a delegated CNI plugin list. */
  kind: 'seine' | 'delegated';
  /** Seine: the host veth / OVS port. */
  hostIfname?: string;
  /** Seine: how the addresses were assigned ("pool:<name>,...", "static", "plugin:<type>"). */
  ipam?: string;
  /** Delegated: the CNI network name of the list (the runtime's cache key). */
  cniNetwork?: string;
  result: CniResult;
  defaultRoute?: string[];
  /** Fingerprint of the annotation element that made it (requestFingerprint); hot-plug re-attaches on change. */
  request?: string;
  /** Identity of the namespace at `netns` when attached (device:inode), when known: a namespace re-made there differs. */
  netnsId?: string;
}

export const attachmentId = (r: Pick<AttachmentRecord, 'network' | 'ifname'>): string => `${r.network}@${r.ifname}`;

/** Rebuilds the record of a Seine attachment from its OVS port. */
export function recordFromPort(p: AttachedInterface): AttachmentRecord | undefined {
  const x = p.externalIds;
  if (!x[SEC.containerId] || !x[SEC.network] || !x[SEC.ifname]) return undefined;
  const ips = (x[SEC.ips] ?? '').split(',').filter(Boolean);
  return {
    containerId: x[SEC.containerId]!,
    podNamespace: x[SEC.podNamespace] ?? '',
    podName: x[SEC.podName] ?? '',
    podUid: x[SEC.podUid] ?? '',
    network: x[SEC.network]!,
    ifname: x[SEC.ifname]!,
    netns: x[SEC.netns] ?? '',
    kind: 'seine',
    hostIfname: p.hostIfname,
    ipam: x[SEC.ipam],
    result: {
      cniVersion: '1.0.0',
      interfaces: [{ name: p.hostIfname }, { name: x[SEC.ifname]!, mac: x[SEC.mac], sandbox: x[SEC.netns] }],
      ips: ips.map((address) => ({ address, interface: 1 })),
    },
    defaultRoute: x[SEC.defaultRoute] ? x[SEC.defaultRoute]!.split(',') : undefined,
    request: x[SEC.request],
    ...(x[SEC.netnsId] ? { netnsId: x[SEC.netnsId] } : {}),
  };
}

/** The secondary interfaces as the agent's read-only API shows them: a Seine one with its port as OVS has it now. */
export function inspectedAttachments(records: readonly AttachmentRecord[], ports: readonly AttachedInterface[]): InspectedInterface[] {
  const byName = new Map(ports.map((p) => [p.hostIfname, p]));
  return records.map((r) => {
    const mac = r.result.interfaces?.find((i) => i.name === r.ifname && i.sandbox !== undefined)?.mac ?? r.result.interfaces?.find((i) => i.name === r.ifname)?.mac;
    const port = r.hostIfname !== undefined ? byName.get(r.hostIfname) : undefined;
    return {
      containerId: r.containerId,
      netns: r.netns,
      podNamespace: r.podNamespace,
      podName: r.podName,
      podUid: r.podUid,
      ifname: r.ifname,
      kind: r.kind,
      network: r.network,
      ips: (r.result.ips ?? []).map((i) => i.address.split('/')[0]!),
      ...(mac ? { mac } : {}),
      ...(r.kind === 'seine' && r.hostIfname ? { port: r.hostIfname } : {}),
      ...(port?.bridge ? { bridge: port.bridge } : {}),
      ...(port && port.ofport > 0 ? { ofport: port.ofport } : {}),
    };
  });
}
