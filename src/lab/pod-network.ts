import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { k8sCniArgs } from '../cni/args.js';
import { loadDefaultConfList } from '../cni/conf.js';
import { CniRuntime, type RuntimeConf } from '../cni/runtime.js';
import type { LabNode } from './node.js';
import type { PodIdentity, PodSandboxNetwork } from './kubelet.js';

/** Where the reference CNI plugins are installed (Debian's containernetworking-plugins). */
export const SYSTEM_CNI_BIN = '/usr/lib/cni';

/**
 * A pod sandbox's network as containerd sets it up: the node's default conflist, run by a libcni-style
 * runtime with the plugins entered into the node's namespace (a lab node's "host network").
 */
export class ConflistNetwork implements PodSandboxNetwork {
  private readonly runtime: CniRuntime;

  constructor(private readonly node: LabNode) {
    this.runtime = new CniRuntime({
      cniPath: [node.dirs.cniBinDir, SYSTEM_CNI_BIN],
      cacheDir: node.dirs.cniCacheDir,
      pluginNetns: node.netns,
    });
  }

  private attachment(pod: PodIdentity, netns: string): RuntimeConf {
    return {
      containerId: pod.sandboxId,
      netns,
      ifname: 'eth0',
      args: k8sCniArgs({ namespace: pod.namespace, name: pod.name, infraContainerId: pod.sandboxId, uid: pod.uid }),
    };
  }

  async setUp(pod: PodIdentity, netns: string): Promise<string[]> {
    const { list } = await loadDefaultConfList(this.node.dirs.cniConfDir);
    const result = await this.runtime.addNetworkList(list, this.attachment(pod, netns));
    // The pod's IPs are those on interfaces inside its sandbox (or unattributed ones).
    const inSandbox = new Set((result.interfaces ?? []).flatMap((itf, i) => (itf.sandbox ? [i] : [])));
    return (result.ips ?? []).filter((ip) => ip.interface === undefined || inSandbox.size === 0 || inSandbox.has(ip.interface)).map((ip) => ip.address.split('/')[0]!);
  }

  async tearDown(pod: PodIdentity, netns: string): Promise<void> {
    const { list } = await loadDefaultConfList(this.node.dirs.cniConfDir);
    await this.runtime.delNetworkList(list, this.attachment(pod, netns));
  }
}

/** The pre-Seine pod network of a lab node: the reference bridge plugin with host-local IPAM on the node's pod CIDR. */
export function writeBridgeConflist(node: LabNode, podCIDR: string): void {
  const conflist = {
    cniVersion: '1.0.0',
    name: 'lab-bridge',
    plugins: [
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        mtu: 1500,
        ipam: { type: 'host-local', ranges: [[{ subnet: podCIDR }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(node.dirs.stateDir, 'host-local') },
      },
    ],
  };
  writeFileSync(join(node.dirs.cniConfDir, '10-lab-bridge.conflist'), JSON.stringify(conflist, null, 2));
}
