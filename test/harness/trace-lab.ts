// A lab started by the CLI for the Traceflow tests: `seine trace` and the stock kubectl against it, commands in its
// pods, and the trace flows left on a node's bridge. Named and kept under the test ledgers; close() takes it down.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { LabStatus } from '../../src/lab/lab.js';
import type { Traceflow } from '../../src/traceflow/api/types.js';
import { eventually } from '../../src/util/wait.js';
import { runCommand as run } from './command.js';
import { TEST_LEDGER_ROOT } from './sandbox.js';

export const SEINE = join(process.cwd(), 'bin', 'seine');
/** Bound on what the lab does on a busy two-core machine (pods Running, policies realized, flows removed). */
export const SETTLE_MS = 120_000;
/** A trace's own timeout: every agent must install its flows and report, on a busy machine. */
const TRACE_TIMEOUT_S = '60';

type Result = ReturnType<typeof run>;

export class TraceLab {
  private constructor(
    readonly name: string,
    readonly status: LabStatus,
    readonly kubeconfig: string,
  ) {}

  /** `seine lab up` with `nodes` nodes, under a random name starting with `prefix`. */
  static async start(nodes: number, prefix: string): Promise<TraceLab> {
    const name = `${prefix}${randomBytes(3).toString('hex')}`;
    const common = ['--name', name, '--state-root', TEST_LEDGER_ROOT];
    const up = await run(SEINE, ['lab', 'up', '--nodes', String(nodes), ...common]);
    expect(up.stdout).toMatch(new RegExp(`is up with ${nodes} nodes`));
    const kubeconfig = (await run(SEINE, ['lab', 'kubeconfig', ...common])).stdout.trim();
    const status = JSON.parse((await run(SEINE, ['lab', 'status', '--json', ...common])).stdout) as LabStatus;
    return new TraceLab(name, status, kubeconfig);
  }

  /** The lab's options of `seine lab` commands. */
  get common(): string[] {
    return ['--name', this.name, '--state-root', TEST_LEDGER_ROOT];
  }

  get nodes(): string[] {
    return this.status.nodes.map((n) => n.name);
  }

  private get cache(): string {
    return join(TEST_LEDGER_ROOT, `${this.name}-kcache`);
  }

  kubectl(args: string[], input?: string): Result {
    return run('kubectl', ['--kubeconfig', this.kubeconfig, '--cache-dir', this.cache, ...args], input);
  }

  trace(args: string[]): Result {
    return run(SEINE, ['trace', '--kubeconfig', this.kubeconfig, '--timeout', TRACE_TIMEOUT_S, ...args]);
  }

  /** `seine trace ... -o json`: the finished Traceflow. */
  async traceJson(args: string[]): Promise<Traceflow> {
    const r = await this.trace([...args, '-o', 'json']);
    expect(r.stderr).not.toMatch(/^error/m);
    return JSON.parse(r.stdout) as Traceflow;
  }

  /** A command in a pod (`ns/name`). */
  exec(pod: string, command: string[]): Result {
    return run(SEINE, ['lab', 'exec', ...this.common, pod, '--', ...command]);
  }

  /** Packets an interface of a pod has received. */
  async rxPackets(pod: string, ifname = 'eth0'): Promise<number> {
    return Number((await this.exec(pod, ['cat', `/sys/class/net/${ifname}/statistics/rx_packets`])).stdout.trim());
  }

  /**
   * IPv4 packets a pod's network stack has received (Ip InReceives of /proc/net/snmp, per network namespace): unlike an
   * interface's counter, it does not move with the IPv6 and ARP multicast other pods' interfaces send on a network.
   */
  async ipv4Received(pod: string): Promise<number> {
    return ipv4InReceives((await this.exec(pod, ['cat', '/proc/net/snmp'])).stdout);
  }

  /** Trace flows (cookie owner traceflow) on a node's bridge. */
  async traceFlows(node: string, bridge = 'br-int'): Promise<string[]> {
    const sock = `unix:${join(this.status.stateDir, 'nodes', node, `var/run/openvswitch/${bridge}.mgmt`)}`;
    const r = await run('ovs-ofctl', ['-O', 'OpenFlow15', '--no-stats', 'dump-flows', sock, 'cookie=0x0700000000000000/0xff00000000000000']);
    expect(r.code).toBe(0);
    return r.stdout.split('\n').filter((l) => l.includes('cookie='));
  }

  /** Every node's bridges of `bridges` lose their trace flows (once the traces have ended). */
  async noTraceFlowsLeft(bridges: readonly string[] = ['br-int']): Promise<void> {
    for (const node of this.nodes) {
      for (const bridge of bridges) {
        await eventually(`${node} ${bridge}: no traceflow flow left`, async (saw) => {
          const flows = await this.traceFlows(node, bridge);
          saw(flows);
          return flows.length === 0 ? true : undefined;
        }, SETTLE_MS, 500);
      }
    }
  }

  async close(): Promise<void> {
    await run(SEINE, ['lab', 'down', ...this.common]);
    rmSync(this.cache, { recursive: true, force: true });
  }
}

/** Ip InReceives from the text of /proc/net/snmp (a header line and a value line per protocol). */
export function ipv4InReceives(snmp: string): number {
  const [names, values] = snmp.split('\n').filter((l) => l.startsWith('Ip:')).map((l) => l.trim().split(/\s+/));
  const at = names?.indexOf('InReceives') ?? -1;
  if (!values || at < 0) throw new Error(`no Ip InReceives in /proc/net/snmp: ${snmp.slice(0, 200)}`);
  return Number(values[at]);
}
