import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createNetns, netnsPath } from '../host/netns.js';
import { IpRoute } from '../host/ip.js';
import type { ResourceLedger } from '../host/ledger.js';
import { OvsDaemons } from '../ovs/daemons.js';
import { wireNode } from './fabric.js';
import type { LabPlan, NodePlan } from './topology.js';

/** The per-node directories a real node has under /etc/cni, /opt/cni, /var/lib, /var/run. */
export interface NodeDirs {
  root: string;
  cniConfDir: string;
  cniBinDir: string;
  cniCacheDir: string;
  /** Where the Seine agent listens (its CNI socket) and keeps runtime state. */
  agentRunDir: string;
  /** Persistent node state (IPAM stores etc.). */
  stateDir: string;
  logDir: string;
  ovsRunDir: string;
}

export function nodeDirs(labDir: string, node: NodePlan): NodeDirs {
  const root = join(labDir, 'nodes', node.name);
  return {
    root,
    cniConfDir: join(root, 'etc/cni/net.d'),
    cniBinDir: join(root, 'opt/cni/bin'),
    cniCacheDir: join(root, 'var/lib/cni'),
    agentRunDir: join(root, 'var/run/seine'),
    stateDir: join(root, 'var/lib/seine'),
    logDir: join(root, 'var/log'),
    ovsRunDir: join(root, 'var/run/openvswitch'),
  };
}

/** A lab node: its network namespace on both fabrics, its own Open vSwitch, and its directories. */
export class LabNode {
  readonly netns: string;
  readonly ip: IpRoute;
  readonly ovs: OvsDaemons;

  private constructor(
    readonly plan: NodePlan,
    readonly dirs: NodeDirs,
    ledger: ResourceLedger,
  ) {
    this.netns = netnsPath(plan.netns);
    this.ip = new IpRoute(this.netns);
    this.ovs = new OvsDaemons({ rundir: dirs.ovsRunDir, netns: this.netns, ledger });
  }

  static async create(lab: LabPlan, plan: NodePlan, labDir: string, ledger: ResourceLedger): Promise<LabNode> {
    const dirs = nodeDirs(labDir, plan);
    for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
    ledger.netns(plan.netns);
    await createNetns(plan.netns);
    await wireNode(lab, plan);
    const node = new LabNode(plan, dirs, ledger);
    await node.ovs.start();
    return node;
  }
}
