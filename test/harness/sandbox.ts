import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { commandLine, run } from '../../src/host/exec.js';
import { createNetns, netnsPath } from '../../src/host/netns.js';
import { IpBatch, IpRoute } from '../../src/host/ip.js';
import { ResourceLedger, reapStaleLedgers } from '../../src/host/ledger.js';
import { OvsDaemons } from '../../src/ovs/daemons.js';
import type { NodeConfig } from '../../src/primary/pipeline/index.js';
import { eventually } from '../../src/util/wait.js';

/** Every test sandbox records what it makes under here; a later run reaps what a crashed run left. */
export const TEST_LEDGER_ROOT = '/run/seine-test';

/** A pod stand-in: its own netns with eth0 on a veth whose host end is `hostIf` in the sandbox netns. */
export interface SandboxPod {
  name: string;
  netns: string;
  ip: IpRoute;
  hostIf: string;
  mac: string;
  addr: string;
}

/**
 * An isolated network namespace with its own ovsdb-server + ovs-vswitchd (userspace datapath) and run
 * directory. `close()` removes all of it; so does the next sandbox if this process died first.
 */
export class OvsSandbox {
  private pods = 0;

  private constructor(
    readonly id: string,
    readonly netns: string,
    readonly ovs: OvsDaemons,
    readonly ledger: ResourceLedger,
  ) {}

  /** iproute2 inside the sandbox ("node") namespace. */
  get ip(): IpRoute {
    return new IpRoute(this.netns);
  }

  static async start(): Promise<OvsSandbox> {
    await reapStaleLedgers(TEST_LEDGER_ROOT);
    const id = `s${randomBytes(3).toString('hex')}`;
    const dir = join(TEST_LEDGER_ROOT, id);
    const ledger = ResourceLedger.create(dir);
    try {
      const nsName = `${id}-node`;
      ledger.netns(nsName);
      const ns = await createNetns(nsName);
      const ovs = new OvsDaemons({ rundir: join(dir, 'ovs'), netns: ns, ledger });
      await ovs.start();
      return new OvsSandbox(id, ns, ovs, ledger);
    } catch (e) {
      await ledger.release();
      throw e;
    }
  }

  /** Creates a netdev bridge that speaks OpenFlow 1.5 with no flows (fail_mode secure). */
  async addBridge(name: string): Promise<void> {
    await this.ovs.vsctl([
      'add-br', name, '--', 'set', 'bridge', name, 'datapath_type=netdev',
      'protocols=OpenFlow10,OpenFlow13,OpenFlow15', 'fail_mode=secure',
    ]);
  }

  /**
   * A pod namespace with eth0 (address `cidr`, e.g. 10.1.0.2/24) joined by a veth to the sandbox
   * namespace; TX offload is off on both ends as the userspace datapath needs. The host end is not yet
   * on a bridge.
   */
  async addPod(cidr: string): Promise<SandboxPod> {
    const n = ++this.pods;
    const name = `${this.id}-p${n}`;
    this.ledger.netns(name);
    const podNs = await createNetns(name);
    const hostIf = `${this.id}p${n}`;
    const mac = `02:00:00:00:${n.toString(16).padStart(2, '0')}:01`;
    await this.ip.apply(new IpBatch().addVeth(hostIf, 'eth0', { peerNetns: podNs, peerMac: mac }).setLink(hostIf, { up: true }));
    const podIp = new IpRoute(podNs);
    await podIp.apply(new IpBatch().addAddr('eth0', cidr).setLink('eth0', { up: true }));
    await this.ip.txOffloadOff(hostIf);
    await podIp.txOffloadOff('eth0');
    return { name, netns: podNs, ip: podIp, hostIf, mac, addr: cidr.split('/')[0]! };
  }

  /** TCP servers (nc -lk) on `ports` in a pod, until the sandbox closes; resolves once they listen. */
  async startTcpServers(pod: SandboxPod, ports: readonly number[]): Promise<void> {
    for (const port of ports) {
      const argv = commandLine('nc', ['-lk', '-p', String(port)], pod.netns);
      const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore', detached: true });
      child.unref();
      this.ledger.process(child.pid!, 'nc');
    }
    await eventually(`TCP servers listening in ${pod.name}`, async () => ((await run('ss', ['-Hltn'], { netns: pod.netns })).stdout.split('\n').filter(Boolean).length >= ports.length ? true : undefined), 10_000);
  }

  async close(): Promise<void> {
    await this.ledger.release();
  }
}

export { netnsPath };

/** A one-node pipeline for sandbox bridges: pods in 10.10.0.0/24 behind gateway port 1, no tunnel. */
export const SANDBOX_NODE: NodeConfig = {
  mode: 'noEncap',
  round: 1,
  gatewayOfport: 1,
  tunnelOfport: 0,
  gatewayIp: '10.10.0.1',
  gatewayMac: '0a:00:00:00:00:01',
  podCidr: '10.10.0.0/24',
  clusterCidr: '10.10.0.0/16',
};
