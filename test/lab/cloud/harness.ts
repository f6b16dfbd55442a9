// Cloud nodes without a cluster: the lab's fabric and node namespaces, provisioned as EKS or AKS nodes, and pods
// wired by running the node's conflist as a runtime does. Everything is recorded in a test ledger.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { k8sCniArgs } from '../../../src/cni/args.js';
import { loadDefaultConfList } from '../../../src/cni/conf.js';
import { CniRuntime } from '../../../src/cni/runtime.js';
import type { CniResult } from '../../../src/cni/types.js';
import { run } from '../../../src/host/exec.js';
import { IpRoute } from '../../../src/host/ip.js';
import { ResourceLedger, reapStaleLedgers } from '../../../src/host/ledger.js';
import { createNetns, deleteNetns, netnsPath } from '../../../src/host/netns.js';
import type { CloudPlanOptions } from '../../../src/lab/cloud/plan.js';
import { buildCloudNetwork, provisionCloudNode } from '../../../src/lab/cloud/profile.js';
import { buildFabric, wireNode } from '../../../src/lab/fabric.js';
import { nodeDirs, type NodeDirs } from '../../../src/lab/node.js';
import { SYSTEM_CNI_BIN } from '../../../src/lab/pod-network.js';
import { planLab, type LabPlan, type NodePlan } from '../../../src/lab/topology.js';
import { TEST_LEDGER_ROOT } from '../../harness/sandbox.js';

export interface CloudTestPod {
  namespace: string;
  name: string;
  containerId: string;
  netnsName: string;
  netns: string;
  node: CloudTestNode;
}

export interface CloudTestNode {
  plan: NodePlan;
  dirs: NodeDirs;
  netns: string;
  ip: IpRoute;
  runtime: CniRuntime;
}

export class CloudNodes {
  private constructor(
    readonly plan: LabPlan,
    readonly ledger: ResourceLedger,
    readonly nodes: CloudTestNode[],
  ) {}

  static async start(cloud: CloudPlanOptions, count = 2): Promise<CloudNodes> {
    await reapStaleLedgers(TEST_LEDGER_ROOT);
    const name = `c${randomBytes(3).toString('hex')}`;
    const ledger = ResourceLedger.create(join(TEST_LEDGER_ROOT, name));
    try {
      const plan = planLab({ name, nodes: count, cloud });
      await buildFabric(plan, ledger);
      const nodes: CloudTestNode[] = [];
      for (const n of plan.nodes) {
        ledger.netns(n.netns);
        await createNetns(n.netns);
        await wireNode(plan, n);
        const dirs = nodeDirs(ledger.dir, n);
        for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
        await provisionCloudNode(plan, n, dirs);
        const netns = netnsPath(n.netns);
        nodes.push({ plan: n, dirs, netns, ip: new IpRoute(netns), runtime: new CniRuntime({ cniPath: [dirs.cniBinDir, SYSTEM_CNI_BIN], cacheDir: dirs.cniCacheDir, pluginNetns: netns }) });
      }
      await buildCloudNetwork(plan);
      return new CloudNodes(plan, ledger, nodes);
    } catch (e) {
      await ledger.release();
      throw e;
    }
  }

  /** A pod sandbox on `node`, attached with the node's conflist; resolves to the runtime's result. */
  async addPod(node: CloudTestNode, name: string, namespace = 'default'): Promise<{ pod: CloudTestPod; result: CniResult }> {
    const netnsName = `${this.plan.name}-${name}`;
    this.ledger.netns(netnsName);
    const netns = await createNetns(netnsName);
    const pod: CloudTestPod = { namespace, name, containerId: randomBytes(16).toString('hex'), netnsName, netns, node };
    const { list } = await loadDefaultConfList(node.dirs.cniConfDir);
    const result = await node.runtime.addNetworkList(list, this.attachment(pod));
    return { pod, result };
  }

  attachment(pod: CloudTestPod) {
    return { containerId: pod.containerId, netns: pod.netns, ifname: 'eth0', args: k8sCniArgs({ namespace: pod.namespace, name: pod.name, infraContainerId: pod.containerId }) };
  }

  async delPod(pod: CloudTestPod): Promise<void> {
    const { list } = await loadDefaultConfList(pod.node.dirs.cniConfDir);
    await pod.node.runtime.delNetworkList(list, this.attachment(pod));
  }

  async removePodNetns(pod: CloudTestPod): Promise<void> {
    await deleteNetns(pod.netnsName);
    this.ledger.forgetNetns(pod.netnsName);
  }

  async ping(pod: CloudTestPod, target: string): Promise<boolean> {
    return run('ping', ['-c', '1', '-W', '2', target], { netns: pod.netns, timeoutMs: 10_000 }).then(
      () => true,
      () => false,
    );
  }

  async close(): Promise<void> {
    await this.ledger.release();
  }
}

/** `ip -json rule` of a namespace. */
export async function rules(netns: string): Promise<Array<{ priority: number; src?: string; dst?: string; table: string; fwmark?: string; fwmask?: string }>> {
  return JSON.parse((await run('ip', ['-json', 'rule', 'show'], { netns })).stdout) as Array<{ priority: number; src?: string; dst?: string; table: string }>;
}

export async function neighbours(netns: string, dev: string): Promise<Array<{ dst: string; lladdr?: string; state?: string[] }>> {
  return JSON.parse((await run('ip', ['-json', 'neigh', 'show', 'dev', dev], { netns })).stdout) as Array<{ dst: string; lladdr?: string; state?: string[] }>;
}

export async function sysctl(netns: string, key: string): Promise<string> {
  return (await run('sysctl', ['-n', key], { netns })).stdout.trim();
}

/** The first 11 hex digits of sha1: the clouds' host veth suffix, written out independently of the code under test. */
export function sha11(s: string): string {
  return createHash('sha1').update(s).digest('hex').slice(0, 11);
}
